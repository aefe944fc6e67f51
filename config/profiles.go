package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/voicebot/voicebot/tools"
	"github.com/voicebot/voicebot/vars"
)

// DefaultProfile names the agent under agent:.
const DefaultProfile = "default"

// Profiles are named agents. In YAML each is a partial agent: Load starts
// each from agent (after the environment has been applied to it) and
// applies the keys the profile sets. A map it sets (transfer_targets, dtmf)
// replaces the agent's.
type Profiles struct {
	raw    map[string]*yaml.Node
	byName map[string]Agent
}

// UnmarshalYAML keeps each profile's YAML until the agent it inherits from is final.
func (p *Profiles) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: profiles must be a map of name to agent settings", n.Line)
	}
	p.raw = map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		name := n.Content[i].Value
		if _, dup := p.raw[name]; dup {
			return fmt.Errorf("line %d: profile %q is defined twice", n.Content[i].Line, name)
		}
		if n.Content[i+1].Kind != yaml.MappingNode {
			return fmt.Errorf("line %d: profile %q must be a map of agent settings", n.Content[i+1].Line, name)
		}
		p.raw[name] = n.Content[i+1]
	}
	return nil
}

// MarshalYAML writes the resolved profiles.
func (p Profiles) MarshalYAML() (any, error) { return p.byName, nil }

// resolve builds every profile over base.
func (p *Profiles) resolve(base Agent) error {
	p.byName = map[string]Agent{}
	var errs []error
	for name, node := range p.raw {
		a := base.clone()
		for i := 0; i+1 < len(node.Content); i += 2 {
			switch node.Content[i].Value {
			case "transfer_targets":
				a.TransferTargets = nil
			case "dtmf":
				a.DTMF = nil
			case "tools":
				a.Tools = nil
			}
		}
		data, err := yaml.Marshal(node)
		if err == nil {
			dec := yaml.NewDecoder(bytes.NewReader(data))
			dec.KnownFields(true)
			err = dec.Decode(&a)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("profiles.%s (line %d): %w", name, node.Line, keyErrors(err, "profiles."+name)))
			continue
		}
		p.byName[name] = a
	}
	return errors.Join(errs...)
}

// Get returns a profile by name; DefaultProfile is not among them (it is Agent).
func (p Profiles) Get(name string) (Agent, bool) {
	a, ok := p.byName[name]
	return a, ok
}

// Names lists the profiles, sorted.
func (p Profiles) Names() []string {
	names := make([]string, 0, len(p.byName))
	for n := range p.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Set adds or replaces a resolved profile (for programs and tests that
// build a configuration in code).
func (p *Profiles) Set(name string, a Agent) {
	if p.byName == nil {
		p.byName = map[string]Agent{}
	}
	p.byName[name] = a
}

// Profile returns the agent called name: DefaultProfile is agent:.
func (c *Config) Profile(name string) (Agent, bool) {
	if name == "" || name == DefaultProfile {
		return c.Agent, true
	}
	return c.Profiles.Get(name)
}

// Route picks the profile for a call: the first route whose patterns match
// the called number (the Request-URI user, then the To user) and the
// caller's; DefaultProfile when none does.
func (c *Config) Route(requestUser, toUser, fromUser string) string {
	for _, r := range c.Routes {
		if !globMatch(r.From, fromUser) {
			continue
		}
		if globMatch(r.To, requestUser) || (toUser != requestUser && r.To != "" && globMatch(r.To, toUser)) {
			return r.Profile
		}
	}
	return DefaultProfile
}

func globMatch(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	ok, err := path.Match(pattern, s)
	return err == nil && ok
}

// expandSecrets takes "${NAME}" values of secrets from the environment.
func expandSecrets(cfg *Config, env map[string]string) error {
	var errs []error
	expand := func(key string, s *Secret) {
		v := s.Reveal()
		if !strings.HasPrefix(v, "${") || !strings.HasSuffix(v, "}") {
			return
		}
		name := v[2 : len(v)-1]
		got, ok := env[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: environment variable %s is not set", key, name))
			return
		}
		*s = Secret(got)
	}
	for i := range cfg.SIP.Trunks {
		expand(fmt.Sprintf("sip.trunks[%d].password", i), &cfg.SIP.Trunks[i].Password)
	}
	for name, t := range cfg.Tools {
		for h, v := range t.Headers {
			expand(fmt.Sprintf("tools.%s.headers.%s", name, h), &v)
			t.Headers[h] = v
		}
	}
	expand("api.token", &cfg.API.Token)
	expand("memory.redis.password", &cfg.Memory.Redis.Password)
	expand("cluster.redis.password", &cfg.Cluster.Redis.Password)
	expand("webhooks.call_ended.secret", &cfg.Webhooks.CallEnded.Secret)
	for u, v := range cfg.Admission.Auth.Users {
		expand("admission.auth.users."+u, &v)
		cfg.Admission.Auth.Users[u] = v
	}
	return errors.Join(errs...)
}

var namePattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// headerName is a SIP header name (RFC 3261 token characters).
var headerName = regexp.MustCompile(`^[A-Za-z0-9!%*_+` + "`" + `'~.-]{1,64}$`)

// validateCalls checks what calls are placed, routed and given tools by.
func (c *Config) validateCalls(bad func(key, format string, args ...any)) {
	seen := map[string]bool{}
	for i, t := range c.SIP.Trunks {
		key := fmt.Sprintf("sip.trunks[%d]", i)
		if !namePattern.MatchString(t.Name) {
			bad(key+".name", "want letters, digits, _ or -, got %q", t.Name)
		} else if seen[t.Name] {
			bad(key+".name", "trunk %q is defined twice", t.Name)
		}
		seen[t.Name] = true
		if host, port, err := net.SplitHostPort(t.Address); err != nil || host == "" || !validPort(port) {
			bad(key+".address", "want host:port, got %q", t.Address)
		}
		if t.Transport != "" && t.Transport != "udp" && t.Transport != "tcp" {
			bad(key+".transport", "%q is not one of udp, tcp", t.Transport)
		}
		if t.Register && t.Username == "" {
			bad(key+".username", "required to register")
		}
		if d := t.RegisterExpires.D(); d != 0 && (d < 10*time.Second || d > 24*time.Hour) {
			bad(key+".register_expires", "must be 10s-24h, got %s", t.RegisterExpires)
		}
		for _, s := range []string{t.Username, t.AuthUsername, t.FromUser, t.Domain} {
			if strings.ContainsAny(s, " <>;\"\r\n") {
				bad(key, "user names and domain must not contain spaces, <, >, ; or quotes")
				break
			}
		}
	}
	if d := c.SIP.SessionExpires.D(); d != 0 && d < c.SIP.MinSE.D() {
		bad("sip.session_expires", "must be 0 (off) or at least sip.min_se (%s), got %s", c.SIP.MinSE, c.SIP.SessionExpires)
	}
	// RFC 4028 puts the floor at 90 s; shorter is allowed here for tests
	// and lab setups, never below 2 s.
	if d := c.SIP.MinSE.D(); d < 2*time.Second || d > 2*time.Hour {
		bad("sip.min_se", "must be 2s-2h (RFC 4028 peers expect at least 90s), got %s", c.SIP.MinSE)
	}
	if d := c.SIP.RingTimeout.D(); d < time.Second || d > 10*time.Minute {
		bad("sip.ring_timeout", "must be 1s-10m, got %s", c.SIP.RingTimeout)
	}

	for name, t := range c.Tools {
		key := "tools." + name
		if !namePattern.MatchString(name) {
			bad(key, "tool names are letters, digits, _ or -")
		}
		if tools.IsBuiltin(name) {
			bad(key, "%s is a built-in tool; pick another name", name)
		}
		if t.Description == "" {
			bad(key+".description", "required: it tells the model what the tool does")
		}
		if u, err := url.Parse(t.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(key+".url", "want an http:// or https:// URL")
		}
		if d := t.Timeout.D(); d != 0 && (d < 100*time.Millisecond || d > time.Minute) {
			bad(key+".timeout", "must be 100ms-1m, got %s", t.Timeout)
		}
		if t.Parameters != nil {
			if typ, _ := t.Parameters["type"].(string); typ != "object" {
				bad(key+".parameters", "must be a JSON Schema with type: object")
			}
		}
		for field, text := range t.Payload {
			if err := vars.Check(text); err != nil {
				bad(key+".payload."+field, "%v", err)
			}
		}
	}
	for _, h := range c.SIP.ContextHeaders {
		if !headerName.MatchString(h) {
			bad("sip.context_headers", "%q is not a SIP header name", h)
		}
	}

	agents := map[string]Agent{DefaultProfile: c.Agent}
	for _, n := range c.Profiles.Names() {
		if n == DefaultProfile {
			bad("profiles."+n, "%q is the name of agent:, pick another", n)
			continue
		}
		if !namePattern.MatchString(n) {
			bad("profiles."+n, "profile names are letters, digits, _ or -")
		}
		a, _ := c.Profiles.Get(n)
		agents[n] = a
	}
	for name, a := range agents {
		key := "agent"
		if name != DefaultProfile {
			key = "profiles." + name
		}
		c.validateAgent(key, a, bad)
	}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		if _, ok := agents[r.Profile]; !ok {
			bad(key+".profile", "no profile named %q", r.Profile)
		}
		for field, p := range map[string]string{"to": r.To, "from": r.From} {
			if _, err := path.Match(p, ""); err != nil {
				bad(key+"."+field, "bad pattern %q", p)
			}
		}
	}

	if c.API.Listen != "" {
		if _, err := netip.ParseAddrPort(c.API.Listen); err != nil {
			bad("api.listen", "want IP:port, got %q", c.API.Listen)
		}
		if len(c.API.Token.Reveal()) < 16 {
			bad("api.token", "required with api.listen, at least 16 characters (set VOICEBOT_API_TOKEN)")
		}
	}
}

// validateAgent checks one agent's settings (the VAD and the rest are
// checked for agent: in Validate; profiles get the same checks here).
func (c *Config) validateAgent(key string, a Agent, bad func(key, format string, args ...any)) {
	for k, text := range map[string]string{"instructions": a.Instructions, "greeting_prompt": a.GreetingPrompt,
		"memory.greeting_prompt": a.Memory.GreetingPrompt} {
		if err := vars.Check(text); err != nil {
			bad(key+"."+k, "%v", err)
		}
	}
	for _, t := range a.Tools {
		if !tools.IsBuiltin(t) {
			if _, ok := c.Tools[t]; !ok {
				bad(key+".tools", "no tool named %q (built-in: %s; others under tools:)", t, strings.Join(tools.Builtin, ", "))
			}
		}
	}
	for name, t := range a.TransferTargets {
		if !namePattern.MatchString(name) {
			bad(key+".transfer_targets."+name, "target names are letters, digits, _ or -")
		}
		for h, text := range t.Headers {
			lower := strings.ToLower(h)
			if !headerName.MatchString(h) || (!strings.HasPrefix(lower, "x-") && lower != "user-to-user") {
				bad(key+".transfer_targets."+name+".headers."+h, "only X- headers and User-to-User go to the next party")
			}
			if err := vars.Check(text); err != nil {
				bad(key+".transfer_targets."+name+".headers."+h, "%v", err)
			}
		}
		if !strings.HasPrefix(strings.ToLower(t.URI), "sip:") || strings.ContainsAny(t.URI, " <>\"\r\n") || len(t.URI) < 6 {
			bad(key+".transfer_targets."+name+".uri", "want a sip: URI, got %q", t.URI)
		}
	}
	if a.OnTransferFailure != "hangup" && a.OnTransferFailure != "continue" {
		bad(key+".on_transfer_failure", "%q is not one of hangup, continue", a.OnTransferFailure)
	}
	for k, action := range a.DTMF {
		if len(k) != 1 || !strings.Contains("0123456789*#ABCD", k) {
			bad(key+".dtmf", "%q is not a key (0-9, *, #, A-D)", k)
		}
		switch {
		case action == "hangup" || action == "ignore" || action == "model":
		case strings.HasPrefix(action, "transfer:"):
			if _, ok := a.TransferTargets[strings.TrimPrefix(action, "transfer:")]; !ok {
				bad(key+".dtmf."+k, "%q names no transfer target", action)
			}
		default:
			bad(key+".dtmf."+k, "%q is not one of model, hangup, ignore, transfer:<target>", action)
		}
	}
	if a.Voice == "" {
		bad(key+".voice", "must not be empty")
	}
	oneOf(bad, key+".vad.type", a.VAD.Type, "server_vad", "semantic_vad")
	oneOf(bad, key+".vad.eagerness", a.VAD.Eagerness, "low", "medium", "high", "auto")
	oneOf(bad, key+".noise_reduction", a.NoiseReduction, "", "near_field", "far_field")
	if t := a.VAD.Threshold; t < 0 || t > 1 {
		bad(key+".vad.threshold", "must be 0-1, got %g", t)
	}
	if d := a.VAD.PrefixPadding.D(); d < 0 || d > 5*time.Second {
		bad(key+".vad.prefix_padding", "must be 0-5s, got %s", a.VAD.PrefixPadding)
	}
	if d := a.VAD.SilenceDuration.D(); d < 0 || d > 10*time.Second {
		bad(key+".vad.silence_duration", "must be 0-10s, got %s", a.VAD.SilenceDuration)
	}
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n < 65536
}

// envMap turns KEY=VALUE pairs into a map.
func envMap(environ []string) map[string]string {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// oneOf reports to bad a value of key that is not one of allowed.
func oneOf(bad func(key, format string, args ...any), key, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	bad(key, "%q is not one of %s", v, strings.Join(allowed, ", "))
}
