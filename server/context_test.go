package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/voicebot/voicebot/api"
	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/internal/testpeer"
)

// An inbound call's configured headers and numbers reach the agent's
// instructions and greeting (templates), and show in the API.
func TestInboundContextReachesTheAgent(t *testing.T) {
	r := startRig(t, func(c *config.Config) {
		c.API.Listen, c.API.Token = "127.0.0.1:0", apiToken
		c.SIP.ContextHeaders = []string{"X-Customer-Id", "User-to-User"}
		c.Agent.Instructions = `You help customer {{header "X-Customer-Id"}} calling from {{caller}} to {{called}}.{{if header "X-Vip"}} VIP.{{end}}`
		c.Agent.GreetingPrompt = `Greet customer {{header "x-customer-id"}} by their number.`
	}, nil)
	c := r.caller()
	c.FromUser = "+15550100"
	res, err := c.Invite("", 5*time.Second, "X-Customer-Id: C-42", "X-Vip: yes")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	waitFor(t, "the model session", 3*time.Second, func() bool { return len(r.server.Sessions()) == 1 })
	sess := r.server.Sessions()[0]
	up, err := sess.WaitFor("session.update", 2*time.Second)
	if err != nil || !strings.Contains(string(up.Raw), "You help customer C-42 calling from +15550100 to bot.") ||
		strings.Contains(string(up.Raw), "VIP") {
		t.Errorf("instructions: %s (%v); want the rendered template, without the unconfigured X-Vip", up.Raw, err)
	}
	waitFor(t, "the greeting", 3*time.Second, func() bool { return len(sess.ReceivedOfType("response.create")) > 0 })
	if rc := sess.ReceivedOfType("response.create")[0]; !strings.Contains(string(rc.Raw), "Greet customer C-42 by their number.") {
		t.Errorf("greeting prompt: %s", rc.Raw)
	}
	_, calls := apiCall(t, r, "GET", "/v1/calls", apiToken, nil)
	list, _ := calls["calls"].([]any)
	if len(list) != 1 {
		t.Fatalf("calls: %v", calls)
	}
	if h, _ := list[0].(map[string]any)["headers"].(map[string]any); h["X-Customer-Id"] != "C-42" || len(h) != 1 {
		t.Errorf("the API shows headers %v", h)
	}
	_, _ = c.Bye(2 * time.Second)
}

// An API call's variables reach the agent, its headers the far end (only
// X- headers and User-to-User), and both show in the API.
func TestOutboundContext(t *testing.T) {
	p := pbx(t)
	p.Set(func(p *testpeer.PBX) { p.Ring = 200 * time.Millisecond })
	r := startRig(t, func(c *config.Config) {
		withTrunk(p, false)(c)
		c.Agent.Instructions = `You call about order {{var "order"}} ({{var "missing"}}).`
	}, nil)
	code, out := apiCall(t, r, "POST", "/v1/calls", apiToken, api.CallRequest{To: "5551234",
		Variables: map[string]string{"order": "4711"}, Headers: map[string]string{"X-Order": "4711", "User-to-User": "3132;encoding=hex"}})
	if code != http.StatusCreated {
		t.Fatalf("POST /v1/calls: %d %v", code, out)
	}
	waitFor(t, "the INVITE", 3*time.Second, func() bool { return len(p.Invites()) >= 1 })
	inv := p.Invites()[0]
	if header(inv, "X-Order") != "4711" || header(inv, "User-to-User") != "3132;encoding=hex" {
		t.Errorf("INVITE headers: %s", inv.String())
	}
	waitFor(t, "the model session", 3*time.Second, func() bool { return len(r.server.Sessions()) == 1 })
	up, err := r.server.Sessions()[0].WaitFor("session.update", 2*time.Second)
	if err != nil || !strings.Contains(string(up.Raw), "You call about order 4711 ().") {
		t.Errorf("instructions: %s (%v)", up.Raw, err)
	}
	_, got := apiCall(t, r, "GET", "/v1/calls/"+out["id"].(string), apiToken, nil)
	if v, _ := got["variables"].(map[string]any); v["order"] != "4711" {
		t.Errorf("GET shows variables %v", got["variables"])
	}
	for _, bad := range []api.CallRequest{
		{To: "5551234", Headers: map[string]string{"Via": "SIP/2.0/UDP evil"}},
		{To: "5551234", Headers: map[string]string{"X-Evil": "a\r\nVia: x"}},
		{To: "5551234", Variables: map[string]string{"no spaces": "x"}},
		{To: "5551234", Instructions: "{{broken"},
	} {
		if code, out := apiCall(t, r, "POST", "/v1/calls", apiToken, bad); code != http.StatusBadRequest {
			t.Errorf("%+v: %d %v, want 400", bad, code, out)
		}
	}
}

func header(m interface{ GetHeader(string) sip.Header }, name string) string {
	if h := m.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}
