package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestDefaultIsValidAndUsesDemo(t *testing.T) {
	cfg := Default()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if !cfg.UseDemo() {
		t.Error("no key and no URL: the demo model should serve")
	}
	if cfg.SIP.Listen != "127.0.0.1:5060" {
		t.Errorf("default listen %s", cfg.SIP.Listen)
	}
}

func TestLoadFileThenEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.yaml")
	os.WriteFile(path, []byte("sip:\n  listen: 127.0.0.1:5070\n  codecs: [PCMA]\nagent:\n  vad:\n    silence_duration: 700ms\n"), 0o644)
	cfg, err := Load(path, []string{"VOICEBOT_SIP_LISTEN=127.0.0.1:5080", "VOICEBOT_MEDIA_PORT_MIN=20000",
		"VOICEBOT_AGENT_GREETING=false", "VOICEBOT_SIP_TRANSPORTS=udp", "OPENAI_API_KEY=sk-test-123", "UNRELATED=1"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SIP.Listen != "127.0.0.1:5080" || cfg.SIP.Codecs[0] != "PCMA" || cfg.Media.PortMin != 20000 ||
		cfg.Agent.Greeting || len(cfg.SIP.Transports) != 1 || cfg.Agent.VAD.SilenceDuration.D() != 700*time.Millisecond {
		t.Errorf("got %+v", cfg)
	}
	if cfg.Realtime.APIKey.Reveal() != "sk-test-123" || cfg.UseDemo() {
		t.Error("OPENAI_API_KEY not taken")
	}
}

func TestAzureKeyGoesToAzure(t *testing.T) {
	cfg, err := Load("", []string{"VOICEBOT_REALTIME_PROVIDER=azure", "VOICEBOT_REALTIME_AZURE_ENDPOINT=https://r.openai.azure.com",
		"VOICEBOT_REALTIME_AZURE_DEPLOYMENT=rt", "OPENAI_API_KEY=openai", "AZURE_OPENAI_API_KEY=azure"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Realtime.APIKey.Reveal() != "azure" {
		t.Error("the Azure key should win for the azure provider")
	}
}

func TestBadConfigNamesTheKey(t *testing.T) {
	cases := []struct {
		yaml, env, want string
	}{
		{yaml: "sip:\n  lisen: x\n", want: "lisen"},
		{yaml: "sip:\n  listen: nowhere\n", want: "sip.listen"},
		{yaml: "sip:\n  codecs: [G729]\n", want: "sip.codecs"},
		{yaml: "media:\n  port_min: 30000\n  port_max: 20000\n", want: "media.port_min"},
		{yaml: "realtime:\n  dialect: gamma\n", want: "realtime.dialect"},
		{yaml: "realtime:\n  url: http://x\n", want: "realtime.url"},
		{yaml: "realtime:\n  append_interval: 30ms\n", want: "realtime.append_interval"},
		{yaml: "agent:\n  vad:\n    threshold: 2\n", want: "agent.vad.threshold"},
		{yaml: "agent:\n  vad:\n    prefix_padding: soon\n", want: "line 3"},
		{yaml: "realtime:\n  provider: openai\n", want: "realtime.api_key"},
		{yaml: "log: [1, 2]\n", want: "line 1"},
		{env: "VOICEBOT_SIP_LISTN=1", want: "VOICEBOT_SIP_LISTN"},
		{env: "VOICEBOT_MEDIA_PORT_MIN=lots", want: "VOICEBOT_MEDIA_PORT_MIN"},
		{env: "VOICEBOT_SIP_ACK_TIMEOUT=forever", want: "sip.ack_timeout"},
		{yaml: "memory:\n  store: postgres\n", want: "memory.store"},
		{yaml: "memory:\n  store: redis\n", want: "memory.redis.addr"},
		{yaml: "memory:\n  timeout: 0s\n", want: "memory.timeout"},
		{yaml: "agent:\n  memory: {enabled: true, max_turns: 0}\n", want: "agent.memory.max_turns"},
		{yaml: "profiles:\n  sales:\n    memory: {enabled: true, max_chars: 5}\n", want: "profiles.sales.memory.max_chars"},
		{yaml: "cluster:\n  redis: {addr: 127.0.0.1:6379}\n", want: "api.listen"},
		{yaml: "cluster:\n  redis: {addr: redis}\n", want: "cluster.redis.addr"},
		{yaml: "api: {listen: 0.0.0.0:8080, token: abcdefghijklmnopq}\ncluster:\n  redis: {addr: 127.0.0.1:6379}\n", want: "api.advertise"},
		{yaml: "api: {listen: 127.0.0.1:8080, token: abcdefghijklmnopq}\ncluster:\n  redis: {addr: 127.0.0.1:6379}\n  heartbeat: 20s\n", want: "cluster.heartbeat"},
		{yaml: "api: {listen: 127.0.0.1:8080, token: abcdefghijklmnopq}\ncluster:\n  redis: {addr: 127.0.0.1:6379}\n  ttl: 500ms\n", want: "cluster.ttl"},
	}
	for _, c := range cases {
		path := ""
		if c.yaml != "" {
			path = filepath.Join(t.TempDir(), "v.yaml")
			os.WriteFile(path, []byte(c.yaml), 0o644)
		}
		var env []string
		if c.env != "" {
			env = []string{c.env}
		}
		_, err := Load(path, env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q%q: error %v, want it to name %q", c.yaml, c.env, err, c.want)
		}
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	cfg := Default()
	cfg.Realtime.APIKey = "sk-very-secret"
	for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprint(cfg.Realtime.APIKey)} {
		if strings.Contains(s, "sk-very-secret") {
			t.Fatalf("secret printed: %s", s)
		}
	}
	_, err := Load("", []string{"VOICEBOT_REALTIME_URL=sk-very-secret"})
	if err == nil || strings.Contains(err.Error(), "sk-very-secret") {
		t.Errorf("bad value echoed in error: %v", err)
	}
}

// The documented example config must load as-is: it is the reference.
func TestExampleConfigLoads(t *testing.T) {
	if _, err := Load("../configs/voicebot.yaml", nil); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("sip:\n  listen: 127.0.0.1:5060\n"))
	f.Add([]byte("agent:\n  vad:\n    silence_duration: 1s\n"))
	f.Add([]byte("media: {port_min: 1, port_max: 0}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err == nil {
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Parse accepted an invalid config: %v", err)
			}
		}
	})
}

// Every key must be documented in the example file.
func TestExampleConfigDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../configs/voicebot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	fields, keys := map[string]reflect.Value{}, map[string]string{}
	collect(reflect.ValueOf(&cfg).Elem(), "", fields, keys)
	// Lists and maps are YAML-only (no environment variable): document them too.
	for _, k := range []string{"sip.trunks", "profiles", "routes", "tools", "agent.transfer_targets", "agent.dtmf"} {
		keys[k] = k
	}
	for _, key := range keys {
		var node any = doc
		for _, part := range strings.Split(key, ".") {
			m, ok := node.(map[string]any)
			if !ok {
				node = nil
				break
			}
			node, ok = m[part]
			if !ok {
				t.Errorf("configs/voicebot.yaml does not document %s", key)
				break
			}
		}
	}
}

// The call-centre example loads with its secrets from the environment, and
// resolves profiles, routes and tools as documented.
func TestCallCentreExample(t *testing.T) {
	env := []string{"PBX_PASSWORD=pbx-secret", "CRM_TOKEN=Bearer crm-secret", "VOICEBOT_API_TOKEN=0123456789abcdef-token"}
	cfg, err := Load("../configs/callcenter.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	if tr := cfg.SIP.Trunks[0]; tr.Password.Reveal() != "pbx-secret" || !tr.Register || tr.Username != "1001" {
		t.Errorf("trunk %+v", tr)
	}
	if cfg.Tools["lookup_order"].Headers["Authorization"].Reveal() != "Bearer crm-secret" {
		t.Error("webhook header not taken from the environment")
	}
	sales, ok := cfg.Profile("sales")
	if !ok || !strings.Contains(sales.Instructions, "take orders") {
		t.Fatalf("sales profile: %+v", sales)
	}
	// Inherited from agent: voice, tools, targets, dtmf.
	if sales.Voice != "marin" || len(sales.Tools) != 4 || sales.TransferTargets["operator"].URI != "sip:100@pbx.example.com" || sales.DTMF["0"] != "transfer:operator" {
		t.Errorf("sales did not inherit from agent: %+v", sales)
	}
	for _, c := range []struct{ req, to, from, want string }{
		{"2000", "2000", "+15550100", "sales"},
		{"+442079460123", "", "", "sales"},
		{"1001", "1001", "x", DefaultProfile},
		{"", "2000", "x", "sales"}, // through the registration: Request-URI user is ours, To is the number
	} {
		if got := cfg.Route(c.req, c.to, c.from); got != c.want {
			t.Errorf("Route(%q, %q, %q) = %q, want %q", c.req, c.to, c.from, got, c.want)
		}
	}
	if _, err := Load("../configs/callcenter.yaml", nil); err == nil || !strings.Contains(err.Error(), "PBX_PASSWORD is not set") {
		t.Errorf("missing secret: %v", err)
	}
	for _, s := range []string{fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%v", cfg.SIP.Trunks)} {
		if strings.Contains(s, "pbx-secret") || strings.Contains(s, "crm-secret") || strings.Contains(s, "0123456789abcdef-token") {
			t.Fatalf("a secret printed: %s", s)
		}
	}
}

func TestProfileOverridesAndRoutes(t *testing.T) {
	cfg, err := Parse([]byte(`
agent:
  voice: cedar
  transfer_targets: {ops: {uri: "sip:ops@pbx"}}
profiles:
  night:
    voice: marin
    transfer_targets: {desk: {uri: "sip:desk@pbx"}}
routes:
  - {to: "9*", from: "+1*", profile: night}
  - {to: "[0-4]??", profile: night}
`))
	if err != nil {
		t.Fatal(err)
	}
	night, _ := cfg.Profile("night")
	if night.Voice != "marin" || len(night.TransferTargets) != 1 || night.TransferTargets["desk"].URI != "sip:desk@pbx" {
		t.Errorf("a map a profile sets must replace the agent's: %+v", night.TransferTargets)
	}
	if cfg.Agent.Voice != "cedar" || len(cfg.Agent.TransferTargets) != 1 {
		t.Errorf("the profile changed agent: %+v", cfg.Agent)
	}
	for _, c := range []struct{ to, from, want string }{
		{"911", "+1555", "night"}, {"911", "+44", DefaultProfile}, {"123", "", "night"}, {"1234", "", DefaultProfile},
	} {
		if got := cfg.Route(c.to, c.to, c.from); got != c.want {
			t.Errorf("Route(%q, %q) = %q, want %q", c.to, c.from, got, c.want)
		}
	}
}

func TestBadCallSettingsNameTheKey(t *testing.T) {
	for yaml, want := range map[string]string{
		"routes: [{to: '1', profile: nobody}]":                                        "routes[0].profile",
		"routes: [{to: '[', profile: default}]":                                       "routes[0].to",
		"profiles: {default: {voice: x}}":                                             "profiles.default",
		"profiles: {p: {vioce: x}}":                                                   "profiles.p",
		"profiles: {p: 3}":                                                            "profile \"p\"",
		"agent: {tools: [launch_missiles]}":                                           "agent.tools",
		"agent: {dtmf: {'5': transfer:nowhere}}":                                      "agent.dtmf.5",
		"agent: {dtmf: {'55': hangup}}":                                               "agent.dtmf",
		"agent: {transfer_targets: {x: {uri: 'http://x'}}}":                           "agent.transfer_targets.x.uri",
		"agent: {on_transfer_failure: shrug}":                                         "agent.on_transfer_failure",
		"tools: {end_call: {description: d, url: 'http://x'}}":                        "built-in",
		"tools: {t: {description: d, url: 'ftp://x'}}":                                "tools.t.url",
		"tools: {t: {url: 'http://x'}}":                                               "tools.t.description",
		"tools: {t: {description: d, url: 'http://x', parameters: {type: s}}}":        "tools.t.parameters",
		"sip: {trunks: [{name: a, address: 'nowhere'}]}":                              "sip.trunks[0].address",
		"sip: {trunks: [{name: a, address: 'h:5060'}, {name: a, address: 'h:5060'}]}": "defined twice",
		"sip: {trunks: [{name: a, address: 'h:5060', register: true}]}":               "sip.trunks[0].username",
		"sip: {min_se: 1s}":                                                           "sip.min_se",
		"sip: {session_expires: 60s}":                                                 "sip.session_expires",
		"media: {symmetric_rtp: maybe}":                                               "media.symmetric_rtp",
		"api: {listen: '127.0.0.1:8080'}":                                             "api.token",
		"api: {listen: 'x', token: 0123456789abcdef}":                                 "api.listen",
		"sip: {trunks: [{name: a, address: 'h:1', password: '${NOPE}'}]}":             "NOPE is not set",
	} {
		_, err := Parse([]byte(yaml))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to name %q", yaml, err, want)
		}
	}
}

// An unknown key is named by its path in the file, as the operator wrote
// it, not by the Go type it failed to fit.
func TestUnknownKeyNamesItsPath(t *testing.T) {
	for yml, want := range map[string]string{
		"sip:\n  listn: 1\n": "line 2: sip.listn: unknown key",
		"listn: 1\n":         "line 1: listn: unknown key",
		"sip:\n  trunks:\n    - {name: a, adress: x}\n": "sip.trunks[].adress: unknown key",
		"profiles:\n  sales:\n    instructons: hi\n":    "profiles.sales.instructons: unknown key",
		"agent:\n  memory: {enabld: true}\n":            "line 2: agent.memory.enabld: unknown key",
	} {
		_, err := Parse([]byte(yml))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "not found in type") {
			t.Errorf("%q: %v, want %q", yml, err, want)
		}
	}
}

// Templates and context headers are checked at load: a call never meets a
// template that does not parse.
func TestTemplatesAreCheckedAtLoad(t *testing.T) {
	for yml, want := range map[string]string{
		"agent:\n  instructions: 'Hello {{caller'\n":                                     "agent.instructions",
		"agent:\n  greeting_prompt: '{{nosuch}}'\n":                                      "agent.greeting_prompt",
		"profiles:\n  sales:\n    instructions: '{{var}}{{end}}'\n":                      "profiles.sales.instructions",
		"sip:\n  context_headers: ['X Bad']\n":                                           "sip.context_headers",
		"tools:\n  t:\n    description: d\n    url: http://x/\n    payload: {a: '{{'}\n": "tools.t.payload.a",
	} {
		if _, err := Parse([]byte(yml)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error naming %s", yml, err, want)
		}
	}
	if _, err := Parse([]byte("sip:\n  context_headers: [X-Customer-Id, User-to-User]\nagent:\n  instructions: 'Hi {{header \"X-Customer-Id\"}} {{var \"x\"}}'\n")); err != nil {
		t.Errorf("a good template refused: %v", err)
	}
}
