package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/api"
	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/internal/testpeer"
)

const apiToken = "test-token-0123456789"

func pbx(t *testing.T) *testpeer.PBX {
	t.Helper()
	p, err := testpeer.NewPBX("1001", "pbx-password-xyzzy")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// withTrunk points voicebot at p as its trunk, and turns the API on.
func withTrunk(p *testpeer.PBX, register bool) func(*config.Config) {
	return func(c *config.Config) {
		c.SIP.Trunks = []config.Trunk{{Name: "pbx", Address: p.Addr().String(), Username: "1001",
			Password: "pbx-password-xyzzy", Register: register, RegisterExpires: config.Duration(time.Minute)}}
		c.API.Listen, c.API.Token = "127.0.0.1:0", apiToken
	}
}

// apiCall sends one API request and decodes its JSON answer.
func apiCall(t *testing.T, r *rig, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+r.api+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

// voicebot registers to the PBX, answering its 401 with digest, refreshes
// before the granted lifetime runs out, and un-registers when it stops.
func TestRegistration(t *testing.T) {
	p := pbx(t)
	p.Set(func(p *testpeer.PBX) { p.Grant = 2 * time.Second })
	r := startRig(t, withTrunk(p, true), nil)
	waitFor(t, "a refresh", 5*time.Second, func() bool { return len(p.Registers()) >= 2 })
	regs := p.Registers()
	// Due at 85 % (1.7 s; the fake-clock tests pin that down): here, before
	// the binding ran out and not at once.
	if gap := regs[1].At.Sub(regs[0].At); gap < time.Second || gap >= 2*time.Second {
		t.Errorf("refreshed %v after a 2 s registration", gap)
	}
	if !strings.Contains(regs[0].Contact, "sip:1001@127.0.0.1:"+r.sip.String()[len("127.0.0.1:"):]) {
		t.Errorf("Contact %q is not ours", regs[0].Contact)
	}
	waitFor(t, "log", time.Second, func() bool { return strings.Contains(r.logs.String(), "registration: registered") })
	// Calls that come in through the registration are answered.
	c, err := testpeer.New(r.sip)
	if err != nil {
		t.Fatal(err)
	}
	call(t, c)
	_, _ = c.Bye(5 * time.Second)
	c.Close()

	r.stop()
	regs = p.Registers()
	if last := regs[len(regs)-1]; last.Expires != 0 {
		t.Errorf("no un-REGISTER at shutdown: last REGISTER asked %d s", last.Expires)
	}
	if strings.Contains(r.logs.String(), "pbx-password-xyzzy") {
		t.Error("the SIP password reached the log")
	}
}

// An outbound call through the API: the trunk's 407 is answered with
// digest, early media is not talked into, the model session is open while
// it rings, the callee hears the greeting at answer, and pressing # ends
// the call by the model's end_call. The API shows the call and its outcome.
func TestOutboundCallThroughTheAPI(t *testing.T) {
	p := pbx(t)
	p.Set(func(p *testpeer.PBX) { p.Challenge, p.Ring, p.EarlyMedia = 407, 800*time.Millisecond, true })
	r := startRig(t, withTrunk(p, false), nil)

	code, out := apiCall(t, r, "POST", "/v1/calls", apiToken, api.CallRequest{To: "5551234", From: "4000", Instructions: "You call to confirm an appointment."})
	if code != 201 || out["id"] == "" || out["direction"] != "outbound" {
		t.Fatalf("POST /v1/calls: %d %v", code, out)
	}
	id := out["id"].(string)
	waitFor(t, "the authenticated INVITE", 3*time.Second, func() bool { return len(p.Invites()) == 2 })
	inv := p.Invites()
	if inv[1].GetHeader("Proxy-Authorization") == nil || inv[1].Recipient.User != "5551234" || inv[1].From().Address.User != "4000" {
		t.Fatalf("second INVITE: %s", inv[1].String())
	}
	if inv[0].CallID().Value() != id {
		t.Errorf("API id %q is not the Call-ID %q", id, inv[0].CallID().Value())
	}
	_, got := apiCall(t, r, "GET", "/v1/calls/"+id, apiToken, nil)
	if got["state"] != "ringing" && got["state"] != "dialing" {
		t.Errorf("before the answer the API says %v", got["state"])
	}
	waitFor(t, "the model session", 3*time.Second, func() bool { return len(r.server.Sessions()) == 1 })
	sess := r.server.Sessions()[0]
	up, err := sess.WaitFor("session.update", 2*time.Second)
	if err != nil || !strings.Contains(string(up.Raw), "confirm an appointment") {
		t.Errorf("the instructions override did not reach the model: %v", err)
	}
	time.Sleep(600 * time.Millisecond) // the 200 comes 800 ms after the INVITE
	if n := len(p.Received()); n != 0 {
		t.Errorf("%d RTP packets sent into early media, before the answer", n)
	}
	waitFor(t, "the greeting at the callee", 5*time.Second, func() bool { return rmsOf(audible(p.Received())) > 100 })
	if first := p.Received()[0]; !first.Header.Marker {
		t.Error("the callee's first packet is not the start of the greeting")
	}
	okAcks := func() int {
		acks := 0
		for _, a := range p.Requests("ACK") {
			if a.CSeq().SeqNo == inv[1].CSeq().SeqNo && a.GetHeader("Proxy-Authorization") == nil {
				acks++ // the 407's ACK carries the first INVITE's CSeq; the 200's is a request of its own
			}
		}
		return acks
	}
	// The ACK and the first RTP leave together; either may arrive first.
	waitFor(t, "the ACK of the 200 OK", 2*time.Second, func() bool { return okAcks() > 0 })
	time.Sleep(100 * time.Millisecond) // a duplicate would come now
	if acks := okAcks(); acks != 1 {
		t.Errorf("%d ACKs for the 200 OK", acks)
	}
	_, list := apiCall(t, r, "GET", "/v1/calls", apiToken, nil)
	if calls, _ := list["calls"].([]any); len(calls) != 1 || calls[0].(map[string]any)["state"] != "answered" {
		t.Errorf("GET /v1/calls: %v", list)
	}
	time.Sleep(time.Second) // the greeting plays out
	p.PressKey('#', 1, 64000)
	waitFor(t, "BYE from voicebot", 10*time.Second, func() bool { return len(p.Requests("BYE")) == 1 })
	if got = ended(t, r, id); got["outcome"] != "bot_hung_up" || got["sip_code"] != 0.0 {
		t.Errorf("outcome %v", got)
	}
}

// Calls that do not connect end with their reason: busy, no answer in the
// ring timeout (CANCEL), cancelled through the API while ringing (CANCEL);
// the API gives the outcome, the SIP code and the detail as fields.
func TestOutboundCallsThatDoNotConnect(t *testing.T) {
	p := pbx(t)
	r := startRig(t, func(c *config.Config) { withTrunk(p, false)(c); c.SIP.RingTimeout = config.Duration(time.Second) }, nil)
	check := func(what, id, outcome string, code float64, detail string) {
		t.Helper()
		got := ended(t, r, id)
		if got["outcome"] != outcome || got["sip_code"] != code || !strings.Contains(got["detail"].(string), detail) {
			t.Errorf("%s: %v, want %s %v %q", what, got, outcome, code, detail)
		}
	}
	p.Set(func(p *testpeer.PBX) { p.Final, p.Ring = 486, 100*time.Millisecond })
	_, out := apiCall(t, r, "POST", "/v1/calls", apiToken, api.CallRequest{To: "1"})
	check("busy callee", out["id"].(string), "busy", 486, "Busy Here")
	p.Set(func(p *testpeer.PBX) { p.Final = 0 })
	_, out = apiCall(t, r, "POST", "/v1/calls", apiToken, api.CallRequest{To: "2"})
	check("ring timeout", out["id"].(string), "no_answer", 408, "no answer within 1s")
	_, out = apiCall(t, r, "POST", "/v1/calls", apiToken, api.CallRequest{To: "3"})
	time.Sleep(300 * time.Millisecond)
	if code, _ := apiCall(t, r, "DELETE", "/v1/calls/"+out["id"].(string), apiToken, nil); code != 202 {
		t.Errorf("DELETE while ringing: %d", code)
	}
	check("DELETE while ringing", out["id"].(string), "cancelled", 487, "before answer")
	// The outcome is known when the CANCEL leaves; under load the PBX may
	// not have it yet.
	waitFor(t, "2 CANCELs (ring timeout and DELETE)", 3*time.Second, func() bool { return len(p.Requests("CANCEL")) == 2 })
	waitFor(t, "no calls left", 3*time.Second, func() bool {
		_, list := apiCall(t, r, "GET", "/v1/calls", apiToken, nil)
		calls, _ := list["calls"].([]any)
		if len(calls) != 0 {
			t.Logf("still listed: %v", calls)
		}
		return len(calls) == 0
	})
}

// The API refuses requests without the token and bad requests, with a reason.
func TestAPIRefusals(t *testing.T) {
	p := pbx(t)
	r := startRig(t, withTrunk(p, false), nil)
	for _, c := range []struct {
		method, path, token string
		body                any
		code                int
		says                string
	}{
		{"GET", "/v1/calls", "", nil, 401, "token"},
		{"GET", "/v1/calls", "wrong-token-0123456789", nil, 401, "token"},
		{"POST", "/v1/calls", apiToken, map[string]any{"too": "5"}, 400, "unknown field"},
		{"POST", "/v1/calls", apiToken, api.CallRequest{}, 400, `"to" is required`},
		{"POST", "/v1/calls", apiToken, api.CallRequest{To: "5", Agent: "nobody"}, 400, "no agent"},
		{"POST", "/v1/calls", apiToken, api.CallRequest{To: "5", Trunk: "nowhere"}, 400, "no trunk"},
		{"POST", "/v1/calls", apiToken, api.CallRequest{To: "5 <sip:evil>"}, 400, "bad number"},
		{"DELETE", "/v1/calls/nope", apiToken, nil, 404, "no such call"},
		{"GET", "/v1/nothing", apiToken, nil, 404, "no such endpoint"},
	} {
		code, out := apiCall(t, r, c.method, c.path, c.token, c.body)
		if msg, _ := out["error"].(string); code != c.code || !strings.Contains(msg, c.says) {
			t.Errorf("%s %s %v: %d %v, want %d saying %q", c.method, c.path, c.body, code, out, c.code, c.says)
		}
	}
	if len(p.Invites()) != 0 {
		t.Error("a refused request placed a call")
	}
	if strings.Contains(r.logs.String(), apiToken) {
		t.Error("the API token reached the log")
	}
}

// The callee hangs up an outbound call: voicebot answers the BYE and the
// call ends as hung up by the far end. (The trunk also wants a longer
// session timer than voicebot asks for: the 422 is answered with its Min-SE.)
func TestOutboundCalleeHangsUp(t *testing.T) {
	p := pbx(t)
	p.Set(func(p *testpeer.PBX) { p.MinSE = 3600 })
	r := startRig(t, withTrunk(p, false), nil)
	_, out := apiCall(t, r, "POST", "/v1/calls", apiToken, api.CallRequest{To: "5551234"})
	id := out["id"].(string)
	waitFor(t, "audio at the callee", 5*time.Second, func() bool { return len(p.Received()) > 10 })
	p.Bye(r.sip)
	if got := ended(t, r, id); got["outcome"] != "caller_hung_up" {
		t.Errorf("outcome %v, want caller_hung_up", got["outcome"])
	}
	if n := len(p.Requests("BYE")); n != 0 {
		t.Errorf("voicebot sent %d BYEs for a call the callee ended", n)
	}
	if inv := p.Invites(); len(inv) != 2 || inv[1].GetHeader("Session-Expires").Value() != "3600" {
		t.Errorf("the 422 was not answered with the trunk's Min-SE: %d INVITEs", len(inv))
	}
}

// A number written as people write it is dialled (as memory keys it), and
// the API shows the caller ID the INVITE carries: the trunk's from_user
// when the request gives none.
func TestOutboundNumberAndCallerID(t *testing.T) {
	p := pbx(t)
	p.Set(func(p *testpeer.PBX) { p.Ring = 300 * time.Millisecond })
	r := startRig(t, func(c *config.Config) {
		withTrunk(p, false)(c)
		c.SIP.Trunks[0].FromUser = "4000"
	}, nil)
	code, out := apiCall(t, r, "POST", "/v1/calls", apiToken, api.CallRequest{To: "+1 (555) 010-0100"})
	if code != 201 || out["from"] != "4000" {
		t.Fatalf("POST /v1/calls: %d %v, want from 4000", code, out)
	}
	waitFor(t, "the INVITE", 3*time.Second, func() bool { return len(p.Invites()) >= 1 })
	if got := p.Invites()[0].Recipient.User; got != "+15550100100" {
		t.Errorf("dialled %q, want +15550100100", got)
	}
	if _, got := apiCall(t, r, "GET", "/v1/calls/"+out["id"].(string), apiToken, nil); got["from"] != "4000" {
		t.Errorf("GET says from %v", got["from"])
	}
}
