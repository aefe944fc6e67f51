package server

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/api"
	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/internal/testpeer"
)

// ended waits for the call to end in the API and returns what it says of
// it. (The state may say ended a moment before the outcome is known: the
// signalling is over, the call's accounting not yet.)
func ended(t *testing.T, r *rig, id string) map[string]any {
	t.Helper()
	var got map[string]any
	waitFor(t, "the call's end", 8*time.Second, func() bool {
		_, got = apiCall(t, r, "GET", "/v1/calls/"+id, apiToken, nil)
		return got["state"] == "ended" && got["outcome"] != nil
	})
	return got
}

// endedEvent is the "ended" event of the call's JSONL record in dir.
func endedEvent(t *testing.T, dir, id string) map[string]any {
	t.Helper()
	var ev map[string]any
	waitFor(t, "the record's ended event", 3*time.Second, func() bool {
		files, _ := filepath.Glob(filepath.Join(dir, "*", "*"+id+"*.jsonl"))
		if len(files) == 0 {
			files, _ = filepath.Glob(filepath.Join(dir, "*"+id+"*.jsonl"))
		}
		for _, f := range files {
			fh, err := os.Open(f)
			if err != nil {
				continue
			}
			sc := bufio.NewScanner(fh)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var e map[string]any
				if json.Unmarshal(sc.Bytes(), &e) == nil && e["type"] == "ended" {
					ev = e
				}
			}
			fh.Close()
		}
		return ev != nil
	})
	return ev
}

// A DELETE of an answered call is api_hung_up, the same in the API, the
// record (JSONL and .txt), the log and the metrics; not "caller hung up".
func TestAPIHangupOutcome(t *testing.T) {
	dir := t.TempDir()
	p := pbx(t)
	p.Set(func(p *testpeer.PBX) { p.Final, p.Ring = 200, 100*time.Millisecond })
	r := startRig(t, func(c *config.Config) { withTrunk(p, false)(c); c.Records.Dir = dir }, nil)
	_, out := apiCall(t, r, "POST", "/v1/calls", apiToken, api.CallRequest{To: "5551234"})
	id := out["id"].(string)
	waitFor(t, "audio at the callee", 5*time.Second, func() bool { return len(p.Received()) > 10 })
	if code, _ := apiCall(t, r, "DELETE", "/v1/calls/"+id, apiToken, nil); code != 202 {
		t.Fatalf("DELETE: %d", code)
	}
	got := ended(t, r, id)
	if got["outcome"] != "api_hung_up" || got["sip_code"] != 0.0 {
		t.Errorf("API: %v", got)
	}
	if _, ok := got["detail"]; !ok {
		t.Errorf("API: no detail in %v", got)
	}
	waitFor(t, "BYE at the callee", 3*time.Second, func() bool { return len(p.Requests("BYE")) == 1 })
	if ev := endedEvent(t, dir, id); ev["outcome"] != "api_hung_up" || ev["sip_code"] != 0.0 {
		t.Errorf("record: %v", ev)
	}
	txt, _ := filepath.Glob(filepath.Join(dir, "*", "*"+id+"*.txt"))
	if more, _ := filepath.Glob(filepath.Join(dir, "*"+id+"*.txt")); len(more) > 0 {
		txt = append(txt, more...)
	}
	if len(txt) != 1 {
		t.Errorf("transcripts: %v", txt)
	} else if b, _ := os.ReadFile(txt[0]); !strings.Contains(string(b), "ended: api_hung_up") {
		t.Errorf("transcript:\n%s", b)
	}
	waitFor(t, "call log", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), `"message":"call: ended"`) })
	if logs := r.logs.String(); !strings.Contains(logs, `"outcome":"api_hung_up"`) {
		t.Error("the log does not say api_hung_up")
	}
	if v, _ := metric(scrape(t, r), `voicebot_calls_total{agent="default",direction="outbound",outcome="api_hung_up"}`); v != 1 {
		t.Errorf("metrics: %v", callsTotal(scrape(t, r)))
	}
}

// A trunk that answers nothing (a closed port) is unreachable, with no SIP
// code: not no_answer, which a dialler would retry with the customer.
// The ring timeout bounds it (Timer B would take 32 s).
func TestDeadTrunkIsUnreachable(t *testing.T) {
	dead, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := dead.LocalAddr().String()
	dead.Close()
	r := startRig(t, func(c *config.Config) {
		c.SIP.Trunks = []config.Trunk{{Name: "dead", Address: addr}}
		c.API.Listen, c.API.Token = "127.0.0.1:0", apiToken
		c.SIP.RingTimeout = config.Duration(time.Second)
	}, nil)
	_, out := apiCall(t, r, "POST", "/v1/calls", apiToken, api.CallRequest{To: "5551234"})
	got := ended(t, r, out["id"].(string))
	if got["outcome"] != "unreachable" || got["sip_code"] != 0.0 {
		t.Errorf("dead trunk: %v", got)
	}
	waitFor(t, "metrics", 3*time.Second, func() bool {
		v, _ := metric(scrape(t, r), `voicebot_calls_total{agent="default",direction="outbound",outcome="unreachable"}`)
		return v == 1
	})
}

// An outbound call's state is ringing once the callee's side says 180.
func TestOutboundRingingState(t *testing.T) {
	p := pbx(t)
	p.Set(func(p *testpeer.PBX) { p.Final, p.Ring = 0, 0 })
	r := startRig(t, withTrunk(p, false), nil)
	_, out := apiCall(t, r, "POST", "/v1/calls", apiToken, api.CallRequest{To: "5551234"})
	id := out["id"].(string)
	waitFor(t, "the INVITE", 3*time.Second, func() bool { return len(p.Invites()) == 1 })
	var got map[string]any
	waitFor(t, "ringing", 3*time.Second, func() bool {
		_, got = apiCall(t, r, "GET", "/v1/calls/"+id, apiToken, nil)
		return got["state"] == "ringing"
	})
	_, list := apiCall(t, r, "GET", "/v1/calls", apiToken, nil)
	if calls, _ := list["calls"].([]any); len(calls) != 1 || calls[0].(map[string]any)["state"] != "ringing" {
		t.Errorf("GET /v1/calls while ringing: %v", list)
	}
	apiCall(t, r, "DELETE", "/v1/calls/"+id, apiToken, nil)
	if got := ended(t, r, id); got["outcome"] != "cancelled" {
		t.Errorf("DELETE while ringing: %v", got)
	}
}

// callsTotal is the voicebot_calls_total lines of a scrape.
func callsTotal(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "voicebot_calls_total{") {
			out = append(out, l)
		}
	}
	return out
}

// An INVITE refused before it becomes a call (here by admission.allow) is
// counted as a call ended rejected, beside the refusal's own counter.
func TestAdmissionRefusalCountsAsRejected(t *testing.T) {
	r := startRig(t, func(c *config.Config) {
		c.API.Listen, c.API.Token = "127.0.0.1:0", apiToken
		c.Admission.Allow = []string{"192.0.2.1"}
	}, nil)
	c := r.caller()
	if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 403 {
		t.Fatalf("INVITE from outside admission.allow: %v %v", res, err)
	}
	text := scrape(t, r)
	if v, _ := metric(text, `voicebot_calls_total{agent="",direction="inbound",outcome="rejected"}`); v != 1 {
		t.Errorf("calls_total: %v", callsTotal(text))
	}
	if v, _ := metric(text, `voicebot_sip_invites_refused_total{reason="source_not_allowed"}`); v != 1 {
		t.Error("the refusal's own counter moved")
	}
}
