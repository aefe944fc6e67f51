// Package config loads voicebot's configuration: defaults, then a YAML file,
// then environment variables, then validation. Every key in the YAML file can
// be set by VOICEBOT_ plus its path upper-cased with dots as underscores
// (sip.listen → VOICEBOT_SIP_LISTEN); OPENAI_API_KEY and AZURE_OPENAI_API_KEY
// supply the model key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/voicebot/voicebot/secret"
	"github.com/voicebot/voicebot/tools"
)

// Config is the whole configuration. The zero value is not useful: start
// from Default().
type Config struct {
	Log      Log      `yaml:"log"`
	SIP      SIP      `yaml:"sip"`
	Media    Media    `yaml:"media"`
	Realtime Realtime `yaml:"realtime"`
	// Agent is the default profile: what the model is told on every call
	// no route sends elsewhere, and what every profile starts from.
	Agent Agent `yaml:"agent"`
	// Profiles are named agents; each inherits every key of agent and
	// overrides those it sets.
	Profiles Profiles `yaml:"profiles"`
	// Routes pick a profile by the called (and caller) number, first match wins.
	Routes []Route `yaml:"routes"`
	// Tools are webhook tools profiles may give the model, by name.
	Tools   map[string]Tool `yaml:"tools"`
	BargeIn BargeIn         `yaml:"barge_in"`
	API     API             `yaml:"api"`
	Demo    Demo            `yaml:"demo"`
	// Calls bounds every call's life: silence on the line, length.
	Calls Calls `yaml:"calls"`
	// Admission decides who may call at all.
	Admission Admission `yaml:"admission"`
	// Shutdown is how a stop signal ends the calls in progress.
	Shutdown Shutdown `yaml:"shutdown"`
	// Records keeps each call's events, transcript and recording.
	Records Records `yaml:"records"`
	Audio   Audio   `yaml:"audio"`
	// Memory is where callers' earlier conversations are kept, for the
	// profiles that remember (agent.memory.enabled), and the conversation
	// service's conversations.
	Memory Memory `yaml:"memory"`
	// Webhooks tell other systems what happened.
	Webhooks Webhooks `yaml:"webhooks"`
	// Conversations is the conversation service on the API listener:
	// post audio or text, get the agent's answer streamed back.
	Conversations Conversations `yaml:"conversations"`
	// Cluster lets several instances answer for each other's calls
	// through a call registry in Redis (off without cluster.redis.addr).
	Cluster Cluster `yaml:"cluster"`
}

// Cluster is the call registry several instances share, so that any of
// them answers the API for any call.
type Cluster struct {
	Redis MemoryRedis `yaml:"redis"` // empty addr: no cluster (one instance, as ever)
	// Instance names this instance, unique in the cluster; default: its
	// API's advertised address.
	Instance  string   `yaml:"instance"`
	TTL       Duration `yaml:"ttl"`       // an instance and its calls are forgotten this long after its last heartbeat
	Heartbeat Duration `yaml:"heartbeat"` // how often it says it lives
}

// ClusterOn reports whether this instance joins a cluster.
func (c *Config) ClusterOn() bool { return c.Cluster.Redis.Addr != "" }

// Webhooks are the HTTP notifications voicebot sends.
type Webhooks struct {
	// CallEnded is POSTed once per call that ended, answered or not.
	CallEnded CallEndedWebhook `yaml:"call_ended"`
}

// CallEndedWebhook is where and how the call-ended webhook is sent.
type CallEndedWebhook struct {
	URL     string   `yaml:"url"`     // empty: none sent
	Secret  Secret   `yaml:"secret"`  // signs each body: X-Voicebot-Signature: sha256=<hex HMAC-SHA256>
	Timeout Duration `yaml:"timeout"` // per attempt
	Retries int      `yaml:"retries"` // attempts after the first, on 5xx and timeouts, with backoff
}

// Conversations configures the conversation service (/v1/conversations,
// /v1/turns). It runs when the API does; its conversations are kept in the
// memory store (memory.store: redis shares them between instances).
type Conversations struct {
	Enabled bool     `yaml:"enabled"`
	TTL     Duration `yaml:"ttl"` // a conversation idle this long is forgotten
	// IdleSession keeps a conversation's model session open this long
	// after a turn, so a quick follow-up answers at once (0: closed after
	// every turn; the next one replays the history into a new session).
	IdleSession Duration `yaml:"idle_session"`
	MaxTurns    int      `yaml:"max_turns"` // turns running at once, each with a model session
	MaxBody     int64    `yaml:"max_body"`  // bytes a turn may upload (413 above)
	MaxAudio    Duration `yaml:"max_audio"` // audio a turn may upload (413 above)
}

// ConversationsOn reports whether the conversation service runs.
func (c *Config) ConversationsOn() bool { return c.Conversations.Enabled && c.API.Listen != "" }

// Memory is the store of callers' past turns.
type Memory struct {
	Store   string      `yaml:"store"`   // sqlite (a file, the default) or redis (shared by instances)
	Path    string      `yaml:"path"`    // the sqlite file
	Redis   MemoryRedis `yaml:"redis"`   // the redis server
	TTL     Duration    `yaml:"ttl"`     // turns older than this are deleted
	Timeout Duration    `yaml:"timeout"` // a store slower than this is skipped; the call goes on without memory
}

// MemoryRedis is the Redis server of the memory store.
type MemoryRedis struct {
	Addr     string `yaml:"addr"` // host:port
	Password Secret `yaml:"password"`
	DB       int    `yaml:"db"`
}

// AgentMemory is whether and how much a profile remembers of a caller.
type AgentMemory struct {
	Enabled  bool     `yaml:"enabled"`
	MaxTurns int      `yaml:"max_turns"` // at most this many past turns are given to the model
	MaxAge   Duration `yaml:"max_age"`   // turns older than this are not
	MaxChars int      `yaml:"max_chars"` // nor more text than this, oldest dropped first
	// Identity: empty keys callers by their number (the From user); else
	// the name of a SIP header carrying the identity (an IVR's account id).
	Identity string `yaml:"identity"`
	// GreetingPrompt replaces the greeting's instructions when the caller
	// has been here before.
	GreetingPrompt string `yaml:"greeting_prompt"`
}

// Audio is how call audio reaches the model.
type Audio struct {
	// Transcode: pcm16 (G.711 decoded and resampled to PCM16 24 kHz both
	// ways) or passthrough (the call's G.711 to a model that takes
	// audio/pcmu or audio/pcma; inbound calls).
	Transcode string `yaml:"transcode"`
}

// Records is where per-call records go.
type Records struct {
	Dir       string   `yaml:"dir"`       // one <call-id>.jsonl per call, by day; empty: none
	WAV       bool     `yaml:"wav"`       // also a stereo recording (caller left, bot right)
	Retention Duration `yaml:"retention"` // older records are deleted; 0s: kept
}

// Calls bounds each call.
type Calls struct {
	RTPTimeout         Duration `yaml:"rtp_timeout"`          // no caller RTP this long (not on hold): hang up; 0 off
	MaxDuration        Duration `yaml:"max_duration"`         // hang up after this; 0 off
	MaxDurationWarning Duration `yaml:"max_duration_warning"` // tell the model this long before max_duration
}

// Admission limits who gets a call answered.
type Admission struct {
	MaxCalls     int     `yaml:"max_calls"`     // concurrent calls, inbound and outbound; 0: no limit
	OverCapacity int     `yaml:"over_capacity"` // the answer beyond max_calls: 486 or 503
	InviteRate   float64 `yaml:"invite_rate"`   // new INVITEs per second per source IP; 0: no limit
	InviteBurst  int     `yaml:"invite_burst"`  // INVITEs a source may send at once
	// Allow lists the networks (CIDR or IP) calls may come from; empty: any.
	Allow []string `yaml:"allow"`
	// Auth, when it has users, challenges INVITEs from outside Allow
	// with digest authentication.
	Auth InboundAuth `yaml:"auth"`
}

// InboundAuth is digest authentication of inbound INVITEs.
type InboundAuth struct {
	Realm string            `yaml:"realm"`
	Users map[string]Secret `yaml:"users"` // user: password ("${NAME}" from the environment)
}

// Shutdown is the drain on SIGTERM/SIGINT.
type Shutdown struct {
	DrainTimeout Duration `yaml:"drain_timeout"` // calls may finish this long, then they are hung up
	RetryAfter   Duration `yaml:"retry_after"`   // Retry-After of the 503 new INVITEs get meanwhile
}

// API configures the HTTP API (outbound calls, the list of calls).
type API struct {
	Listen string `yaml:"listen"` // host:port; empty: no API
	Token  Secret `yaml:"token"`  // bearer token every request must carry
	// Advertise is the host:port the other instances of a cluster reach
	// this API at; default: Listen (which must then be a specific IP).
	Advertise string `yaml:"advertise"`
}

// Route sends calls to a profile. Patterns are globs (* any run, ? one
// character, [..] a class), matched against the whole number; an empty
// pattern matches anything.
type Route struct {
	To      string `yaml:"to"`   // the called number: the Request-URI user, else the To user
	From    string `yaml:"from"` // the caller's number (From user)
	Profile string `yaml:"profile"`
}

// Tool is a webhook the model may call: its arguments are POSTed as JSON to
// URL and the JSON answer is the result the model gets.
type Tool struct {
	Description string         `yaml:"description"`
	Parameters  map[string]any `yaml:"parameters"` // JSON Schema of the arguments, written in YAML
	URL         string         `yaml:"url"`
	Timeout     Duration       `yaml:"timeout"`
	// Headers are sent with every call (an Authorization token, say);
	// "${NAME}" takes the value from the environment.
	Headers map[string]Secret `yaml:"headers"`
	// Payload adds fields to the arguments POSTed, from the call's context:
	// templates such as {{header "X-Customer-Id"}}. They win over the
	// model's arguments of the same name: the model cannot make them up.
	Payload map[string]string `yaml:"payload"`
}

// Trunk is an upstream SIP server (PBX, carrier) calls are placed through
// and that voicebot may register with.
type Trunk struct {
	Name         string `yaml:"name"`
	Address      string `yaml:"address"`   // host:port of the server
	Transport    string `yaml:"transport"` // udp or tcp
	Domain       string `yaml:"domain"`    // our account's SIP domain; default: the address's host
	Username     string `yaml:"username"`
	AuthUsername string `yaml:"auth_username"` // digest user, when not username
	// Password: "${NAME}" takes it from the environment variable NAME.
	Password        Secret   `yaml:"password"`
	FromUser        string   `yaml:"from_user"` // caller ID of outbound calls; default: username
	Register        bool     `yaml:"register"`
	RegisterExpires Duration `yaml:"register_expires"`
}

// BargeIn decides what happens when the caller talks over the bot.
type BargeIn struct {
	// Mode: immediate stops the bot at the first sign of speech; pause holds
	// playout and resumes it if the speech turns out to be a cough or an
	// "mm-hm" shorter than MinSpeechMS.
	Mode          string `yaml:"mode"`
	MinSpeechMS   int    `yaml:"min_speech_ms"`   // pause mode: speech this long is a real interruption
	ResumeAfterMS int    `yaml:"resume_after_ms"` // pause mode: resume if the model decides nothing within this
	// LocalVAD detects speech in the caller's audio here, ahead of the model's event.
	LocalVAD            bool    `yaml:"local_vad"`
	LocalVADThresholdDB float64 `yaml:"local_vad_threshold_db"`  // dBFS a 20 ms frame must exceed to count as speech
	LocalVADMinSpeechMS int     `yaml:"local_vad_min_speech_ms"` // consecutive speech before it triggers
}

// Log selects the log level and format.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // console or json
}

// SIP configures the user agent.
type SIP struct {
	Listen          string   `yaml:"listen"`           // host:port for UDP and TCP
	Transports      []string `yaml:"transports"`       // udp, tcp
	ExternalAddress string   `yaml:"external_address"` // host for Contact and SDP c= when behind NAT
	UserAgent       string   `yaml:"user_agent"`       // User-Agent / Server header
	Codecs          []string `yaml:"codecs"`           // preference order: G722, PCMU, PCMA
	AckTimeout      Duration `yaml:"ack_timeout"`      // give up on a 200 OK that is never ACKed
	SessionExpires  Duration `yaml:"session_expires"`  // RFC 4028 session timer we ask for; 0: only when the peer asks
	MinSE           Duration `yaml:"min_se"`           // shortest session timer we accept (422 below it)
	RingTimeout     Duration `yaml:"ring_timeout"`     // outbound calls ring this long at most
	Trunks          []Trunk  `yaml:"trunks"`
	TLS             TLS      `yaml:"tls"`
	// ContextHeaders are the headers of an inbound INVITE that become the
	// call's variables ({{header "X-Customer-Id"}} in a profile's
	// templates; shown in the API, the records and the call-ended webhook).
	ContextHeaders []string `yaml:"context_headers"`
}

// TLS serves SIP over TLS (transport tls, usually port 5061).
type TLS struct {
	Listen   string `yaml:"listen"`    // host:port; empty: no TLS
	CertFile string `yaml:"cert_file"` // PEM certificate chain
	KeyFile  string `yaml:"key_file"`  // PEM private key
}

// Media configures RTP.
type Media struct {
	IP                string   `yaml:"ip"`                  // local address for RTP; empty: the SIP listen host
	PortMin           int      `yaml:"port_min"`            // RTP port range, inclusive
	PortMax           int      `yaml:"port_max"`            //
	ReorderWindow     int      `yaml:"reorder_window"`      // packets held to put late ones back in order
	InputSilenceAfter Duration `yaml:"input_silence_after"` // caller RTP gap after which silence is sent to the model
	SymmetricRTP      string   `yaml:"symmetric_rtp"`       // auto, on, off: send RTP back where the peer's comes from
	SRTP              string   `yaml:"srtp"`                // off, optional, required: SRTP with SDES keys (RFC 4568)
}

// Realtime configures the model connection.
type Realtime struct {
	Provider       string    `yaml:"provider"` // auto, openai, azure, demo
	URL            string    `yaml:"url"`      // full ws:// or wss:// URL; overrides the provider's
	Dialect        string    `yaml:"dialect"`  // ga or beta
	Model          string    `yaml:"model"`
	APIKey         Secret    `yaml:"api_key"`
	Azure          Azure     `yaml:"azure"`
	ConnectTimeout Duration  `yaml:"connect_timeout"`
	AppendInterval Duration  `yaml:"append_interval"` // caller audio batched per input_audio_buffer.append
	Reconnect      Reconnect `yaml:"reconnect"`
	// RolloverBefore replaces a session this long before it expires.
	RolloverBefore Duration `yaml:"rollover_before"`
}

// Reconnect is what happens when the model connection drops mid-call.
type Reconnect struct {
	Budget         Duration `yaml:"budget"`          // all attempts together; 0s: end the call at once
	FillerFile     string   `yaml:"filler_file"`     // WAV the caller hears meanwhile; empty: built in
	Buffer         Duration `yaml:"buffer"`          // caller audio kept during the gap, sent once back
	ApologyFile    string   `yaml:"apology_file"`    // WAV played when the budget runs out; empty: built in
	FallbackTarget string   `yaml:"fallback_target"` // transfer target of the agent to send the caller to; empty: hang up
}

// Azure holds the Azure OpenAI resource to reach.
type Azure struct {
	Endpoint   string `yaml:"endpoint"`    // https://<resource>.openai.azure.com
	Deployment string `yaml:"deployment"`  // the realtime deployment name
	APIVersion string `yaml:"api_version"` // beta (preview) dialect only
}

// Agent is what the model is told and how it listens.
type Agent struct {
	Instructions       string `yaml:"instructions"`
	Voice              string `yaml:"voice"`               // default marin; alloy with realtime.dialect: beta
	Greeting           bool   `yaml:"greeting"`            // speak first when the call is answered
	GreetingPrompt     string `yaml:"greeting_prompt"`     // instructions for that first response
	TranscriptionModel string `yaml:"transcription_model"` // empty turns caller transcription off
	Language           string `yaml:"language"`            // ISO-639-1 hint for transcription
	NoiseReduction     string `yaml:"noise_reduction"`     // "", near_field, far_field
	VAD                VAD    `yaml:"vad"`
	Model              string `yaml:"model"` // realtime model (Azure: deployment) for this agent; empty: realtime.model
	// Tools the model may call: end_call, transfer_call, send_dtmf and the
	// names of webhook tools.
	Tools             []string                  `yaml:"tools"`
	TransferTargets   map[string]TransferTarget `yaml:"transfer_targets"`
	OnTransferFailure string                    `yaml:"on_transfer_failure"` // hangup or continue
	// DTMF maps keys to actions: hangup, ignore, transfer:<target>. Other
	// keys reach the model as text ("The caller pressed 5").
	DTMF map[string]string `yaml:"dtmf"`
	// Memory: callers who ring back are given their earlier turns.
	Memory AgentMemory `yaml:"memory"`
}

// TransferTarget is where transfer_call may send a caller.
type TransferTarget struct {
	URI         string `yaml:"uri"`         // sip: URI the caller is referred to
	Description string `yaml:"description"` // tells the model when to pick it
	// Headers go to the next party with the caller (in the Refer-To URI,
	// so the transferee's INVITE carries them): X- headers and
	// User-to-User, templates of the call's context.
	Headers map[string]string `yaml:"headers"`
}

// clone copies an agent deeply, so a profile's overrides leave it alone.
func (a Agent) clone() Agent {
	a.Tools = append([]string(nil), a.Tools...)
	targets := make(map[string]TransferTarget, len(a.TransferTargets))
	for k, v := range a.TransferTargets {
		targets[k] = v
	}
	a.TransferTargets = targets
	dtmf := make(map[string]string, len(a.DTMF))
	for k, v := range a.DTMF {
		dtmf[k] = v
	}
	a.DTMF = dtmf
	return a
}

// VAD configures the model's turn detection.
type VAD struct {
	Type              string   `yaml:"type"` // server_vad or semantic_vad
	Threshold         float64  `yaml:"threshold"`
	PrefixPadding     Duration `yaml:"prefix_padding"`
	SilenceDuration   Duration `yaml:"silence_duration"`
	Eagerness         string   `yaml:"eagerness"` // semantic_vad: low, medium, high, auto
	CreateResponse    bool     `yaml:"create_response"`
	InterruptResponse bool     `yaml:"interrupt_response"`
}

// Demo tunes the built-in demo model.
type Demo struct {
	// Speed is how much faster than real time the demo streams its audio,
	// as real models do.
	Speed float64 `yaml:"speed"`
}

// Default returns the configuration voicebot runs with when nothing is set:
// SIP on 127.0.0.1:5060 and, without an API key, the built-in demo model.
func Default() Config {
	return Config{
		Log: Log{Level: "info", Format: "console"},
		SIP: SIP{
			Listen:         "127.0.0.1:5060",
			Transports:     []string{"udp", "tcp"},
			UserAgent:      "voicebot",
			Codecs:         []string{"G722", "PCMU", "PCMA"},
			AckTimeout:     Duration(32 * time.Second),
			SessionExpires: Duration(1800 * time.Second),
			MinSE:          Duration(90 * time.Second),
			RingTimeout:    Duration(30 * time.Second),
		},
		Media: Media{
			PortMin:           10000,
			PortMax:           20000,
			ReorderWindow:     3,
			InputSilenceAfter: Duration(500 * time.Millisecond),
			SymmetricRTP:      "auto",
			SRTP:              "optional",
		},
		Realtime: Realtime{
			Provider:       "auto",
			Dialect:        "ga",
			Model:          "gpt-realtime",
			ConnectTimeout: Duration(10 * time.Second),
			AppendInterval: Duration(20 * time.Millisecond),
			Reconnect:      Reconnect{Budget: Duration(15 * time.Second), Buffer: Duration(10 * time.Second)},
			RolloverBefore: Duration(2 * time.Minute),
		},
		Agent: Agent{
			Instructions: "You are a friendly voice assistant on a phone line. " +
				"Keep answers short and speak naturally.",
			Voice:          "marin",
			Greeting:       true,
			GreetingPrompt: "Greet the caller in one short sentence and ask how you can help.",
			Memory: AgentMemory{MaxTurns: 20, MaxAge: Duration(30 * 24 * time.Hour), MaxChars: 4000,
				GreetingPrompt: "The caller has called before; the earlier conversation is above. Greet them in one short sentence, welcome them back, and ask how you can help."},
			TranscriptionModel: "gpt-4o-mini-transcribe",
			VAD: VAD{
				Type:              "server_vad",
				Threshold:         0.5,
				PrefixPadding:     Duration(300 * time.Millisecond),
				SilenceDuration:   Duration(500 * time.Millisecond),
				Eagerness:         "auto",
				CreateResponse:    true,
				InterruptResponse: true,
			},
			Tools:             slices.Clone(tools.Builtin),
			OnTransferFailure: "hangup",
		},
		BargeIn: BargeIn{
			Mode: "immediate", MinSpeechMS: 400, ResumeAfterMS: 2000,
			LocalVADThresholdDB: -35, LocalVADMinSpeechMS: 120,
		},
		Demo:      Demo{Speed: 4},
		Calls:     Calls{RTPTimeout: Duration(30 * time.Second), MaxDuration: Duration(2 * time.Hour), MaxDurationWarning: Duration(time.Minute)},
		Admission: Admission{OverCapacity: 503, InviteRate: 5, InviteBurst: 10, Auth: InboundAuth{Realm: "voicebot"}},
		Shutdown:  Shutdown{DrainTimeout: Duration(30 * time.Second), RetryAfter: Duration(30 * time.Second)},
		Records:   Records{Retention: Duration(30 * 24 * time.Hour)},
		Audio:     Audio{Transcode: "pcm16"},
		Memory: Memory{Store: "sqlite", Path: "voicebot-memory.db", TTL: Duration(30 * 24 * time.Hour),
			Timeout: Duration(500 * time.Millisecond)},
		Webhooks: Webhooks{CallEnded: CallEndedWebhook{Timeout: Duration(5 * time.Second), Retries: 3}},
		Conversations: Conversations{Enabled: true, TTL: Duration(time.Hour), IdleSession: Duration(60 * time.Second),
			MaxTurns: 32, MaxBody: 10 << 20, MaxAudio: Duration(60 * time.Second)},
		Cluster: Cluster{TTL: Duration(30 * time.Second), Heartbeat: Duration(10 * time.Second)},
	}
}

// Load builds the configuration from defaults, the YAML file at path (none
// when path is empty), and environ (KEY=VALUE pairs, as os.Environ returns).
func Load(path string, environ []string) (Config, error) {
	cfg := Default()
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		defer f.Close()
		if err := decodeYAML(f, &cfg); err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	if err := cfg.finish(envMap(environ)); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// finish resolves what depends on the whole file and the environment
// (profiles over agent, secrets from the environment), then validates.
func (c *Config) finish(env map[string]string) error {
	c.resolveDialect()
	if err := c.Profiles.resolve(c.Agent); err != nil {
		return err
	}
	if err := expandSecrets(c, env); err != nil {
		return err
	}
	return c.Validate()
}

// Parse is Load for YAML already in memory, without the environment.
func Parse(data []byte) (Config, error) {
	cfg := Default()
	if err := decodeYAML(bytes.NewReader(data), &cfg); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	if err := cfg.finish(nil); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

func decodeYAML(r io.Reader, cfg *Config) error {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return keyErrors(err, "")
	}
	return nil
}

// Demo reports whether the built-in demo model serves the calls.
func (c *Config) UseDemo() bool {
	switch c.Realtime.Provider {
	case "demo":
		return true
	case "auto":
		return c.Realtime.URL == "" && c.Realtime.APIKey == "" && c.Realtime.Azure.Endpoint == ""
	}
	return false
}

// RemembersCallers reports whether any profile keeps callers' memory.
func (c *Config) RemembersCallers() bool {
	if c.Agent.Memory.Enabled {
		return true
	}
	for _, name := range c.Profiles.Names() {
		if p, _ := c.Profiles.Get(name); p.Memory.Enabled {
			return true
		}
	}
	return false
}

// Duration is a time.Duration written as "300ms", "2s" in YAML and env.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML accepts Go duration strings.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: want a duration like 500ms or 2s, got %q", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the Go duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Secret holds a credential. It prints as [redacted] whatever the verb, so a
// logged config can never carry it.
type Secret = secret.Value

// parseBool accepts the YAML-ish spellings people put in env files.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return strconv.ParseBool(s)
}
