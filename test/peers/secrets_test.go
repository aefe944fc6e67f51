package peers

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icholy/digest"
	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/internal/testpeer"
	"github.com/voicebot/voicebot/internal/testredis"
	"github.com/voicebot/voicebot/realtime/realtimetest"
)

// Every secret voicebot is given is used for real (the model's API key,
// a trunk's password for its registration, an inbound digest user, the
// API token) and exercised on its error paths too (a wrong API token, a
// wrong inbound password, a model connection that drops and is
// reopened). None of them, nor their base64, may appear in any log line
// at debug level.
func TestNoSecretInAnyLogLine(t *testing.T) {
	const (
		apiKey      = "sk-proj-LEAKCHECK-4f1c9e2b7a"
		sipPassword = "trunk-LEAKCHECK-pw-91d3"
		inboundPass = "inbound-LEAKCHECK-pw-77aa"
		token       = "api-LEAKCHECK-token-0123456789"
		redisPass   = "redis-LEAKCHECK-pw-5b2e"
	)
	need(t, "redis-server")
	redis := testredis.Start(t, "--requirepass", redisPass)
	model := realtimetest.NewServer(realtimetest.Options{APIKey: apiKey, Logger: zerolog.Nop()})
	url, err := model.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	pbx, err := testpeer.NewPBX("1001", sipPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	apiPort := freeTCPPort(t)
	vb := startVoicebot(t, 34100,
		withEnv("OPENAI_API_KEY="+apiKey, "VOICEBOT_REALTIME_URL="+url, "PBX_PASSWORD="+sipPassword, "INBOUND_PASSWORD="+inboundPass,
			fmt.Sprintf("VOICEBOT_API_LISTEN=127.0.0.1:%d", apiPort), "VOICEBOT_API_TOKEN="+token, "REDIS_PASSWORD="+redisPass),
		withYAML(fmt.Sprintf(`
sip:
  trunks:
    - {name: pbx, address: %s, username: "1001", password: "${PBX_PASSWORD}", register: true, register_expires: 60s}
admission:
  auth:
    users: {caller: "${INBOUND_PASSWORD}"}
agent:
  memory: {enabled: true}
memory:
  store: redis
  redis: {addr: %s, password: "${REDIS_PASSWORD}"}
`, pbx.Addr(), redis.Addr)))
	vb.waitLog(t, `"message":"registration: registered"`, 1, 8*time.Second)

	// The API, with a wrong token and the right one.
	for _, tok := range []string{"wrong-token-wrong-token", token} {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/v1/calls", apiPort), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
	}

	// An inbound call: challenged, a wrong password, then the right one.
	caller, err := testpeer.New(netip.MustParseAddrPort(vb.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	res, err := caller.Invite("", 5*time.Second)
	if err != nil || res.StatusCode != 401 {
		t.Fatalf("INVITE: %v %v, want 401", res, err)
	}
	chal, _ := digest.ParseChallenge(res.GetHeader("WWW-Authenticate").Value())
	auth := func(pass string) string {
		cred, _ := digest.Digest(chal, digest.Options{Method: "INVITE", URI: "sip:bot@" + vb.addr, Username: "caller", Password: pass, Count: 1})
		return "Authorization: " + cred.String()
	}
	caller.Invite("", 5*time.Second, auth("not-it"))
	if res, err := caller.Invite("", 5*time.Second, auth(inboundPass)); err != nil || res.StatusCode != 200 {
		t.Fatalf("authenticated INVITE: %v %v", res, err)
	}
	time.Sleep(time.Second)
	// The model connection drops; voicebot reconnects with the key.
	model.Sessions()[0].Drop()
	vb.waitLog(t, "model: session back", 1, 10*time.Second)
	caller.Bye(5 * time.Second)
	vb.waitLog(t, "memory: call kept", 1, 5*time.Second) // Redis, with its password
	vb.stop(t)

	logs := vb.logs()
	if !strings.Contains(logs, `"level":"debug"`) {
		t.Fatal("the log is not at debug level: the scan would prove little")
	}
	for _, s := range []string{apiKey, sipPassword, inboundPass, token, redisPass} {
		for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s)), s[len(s)-12:]} {
			if strings.Contains(logs, form) {
				line := logs[max(0, strings.Index(logs, form)-200):][:min(400, len(logs)-max(0, strings.Index(logs, form)-200))]
				t.Errorf("a secret reached the log (%q) in:\n%s", form[:6]+"…", bytes.ReplaceAll([]byte(line), []byte(form), []byte("<SECRET>")))
			}
		}
	}
	for _, want := range []string{"registration: registered", "call: answered", "sip: INVITE challenged", "authentication failed", "model: session back"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q: a path the scan should cover did not run", want)
		}
	}
	t.Logf("scanned %d log lines for 5 secrets", strings.Count(logs, "\n"))
}
