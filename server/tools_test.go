package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/internal/testpeer"
	"github.com/voicebot/voicebot/realtime/realtimetest"
)

// withTargets gives the default agent transfer targets, no greeting.
func withTargets(c *config.Config) {
	c.Agent.Greeting = false
	c.Agent.TransferTargets = map[string]config.TransferTarget{"operator": {URI: "sip:operator@127.0.0.1:5999", Description: "a human"}}
}

// audioSpan is when the first and last packets carrying audio (not the
// silence voicebot sends between talkspurts) arrived, and how many there were.
func audioSpan(pkts []testpeer.Packet) (first, last time.Time, n int) {
	for _, p := range pkts {
		if p.Header.PayloadType != 0 || rmsOf(p.Audio) < 50 {
			continue
		}
		if n == 0 {
			first = p.At
		}
		last = p.At
		n++
	}
	return first, last, n
}

// The caller presses #: the demo model says goodbye and calls end_call;
// voicebot hangs up once the goodbye has been played, all of it.
func TestEndCallToolHangsUpAfterTheGoodbye(t *testing.T) {
	r := startRig(t, func(c *config.Config) { c.Agent.Greeting = false }, nil)
	c := r.caller()
	call(t, c)
	c.SendAudio(make([]int16, 800), 1, 0, 9)
	c.PressKey('#', 101, 6, 800, 9)
	waitForBye(t, c, 10*time.Second)
	bye := time.Now()
	_, last, n := audioSpan(c.Received())
	goodbye := len(realtimetest.GoodbyeAudio()) / 24 / 20 // packets
	if n < goodbye-1 {
		t.Errorf("the caller heard %d of the goodbye's %d packets before the BYE", n, goodbye)
	}
	if gap := bye.Sub(last); gap < 0 || gap > 2*time.Second {
		t.Errorf("BYE %v after the last goodbye packet", gap)
	}
	sess := r.server.Sessions()[0]
	if outs := sess.ReceivedOfType("conversation.item.create"); !strings.Contains(string(outs[len(outs)-1].Raw), "function_call_output") {
		t.Errorf("end_call got no function_call_output")
	}
	waitFor(t, "call log", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), `"outcome":"bot_hung_up"`) })
}

// notifier answers voicebot's REFER with code and, when it is 202, reports
// the target's progress in NOTIFYs as a transferee does.
func notifier(c *testpeer.Caller, code int, final string) {
	c.SetAnswer(func(req *sip.Request) (int, []string, string) {
		if req.Method != sip.REFER {
			return 200, nil, ""
		}
		if code == 202 {
			go func() {
				time.Sleep(100 * time.Millisecond)
				for _, frag := range []string{"SIP/2.0 100 Trying\r\n", final} {
					_, _ = c.Send("NOTIFY", "message/sipfrag;version=2.0", frag, 3*time.Second,
						"Event: refer", "Subscription-State: active;expires=60")
				}
			}()
		}
		return code, nil, ""
	})
}

// The caller presses 0: the demo model says it is transferring and calls
// transfer_call; voicebot REFERs the caller to the profile's target, with
// the model's summary and the target's headers (the call's context) for
// the next party, and when the NOTIFY says the target answered, hangs up.
func TestTransferByREFER(t *testing.T) {
	r := startRig(t, func(c *config.Config) {
		withTargets(c)
		c.SIP.ContextHeaders = []string{"X-Customer-Id"}
		c.Agent.TransferTargets["operator"] = config.TransferTarget{URI: "sip:operator@127.0.0.1:5999", Description: "a human",
			Headers: map[string]string{"X-Customer-Id": `{{header "X-Customer-Id"}}`}}
	}, nil)
	c := r.caller()
	notifier(c, 202, "SIP/2.0 200 OK\r\n")
	call(t, c, "X-Customer-Id: C-42")
	c.SendAudio(make([]int16, 800), 1, 0, 9)
	c.PressKey('0', 101, 6, 800, 9)
	waitFor(t, "REFER", 10*time.Second, func() bool { return len(c.RequestsOf("REFER")) == 1 })
	refer := c.RequestsOf("REFER")[0]
	want := "<sip:operator@127.0.0.1:5999?X-Customer-Id=C-42&X-Summary=The%20caller%20pressed%200%20and%20asked%20for%20a%20person.>"
	if rt := refer.GetHeader("Refer-To"); rt == nil || rt.Value() != want {
		t.Errorf("Refer-To %v, want %s", rt, want)
	}
	if refer.GetHeader("Referred-By") == nil {
		t.Error("REFER without Referred-By")
	}
	if _, _, n := audioSpan(c.Received()); n < 20 {
		t.Errorf("the REFER came before the bot had said it transfers (%d audio packets)", n)
	}
	waitForBye(t, c, 5*time.Second)
	waitFor(t, "call log", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), `"outcome":"transferred"`) })
}

// A refused REFER: the model is told, apologises, and voicebot hangs up
// after the apology.
func TestRefusedREFERApologisesAndHangsUp(t *testing.T) {
	r := startRig(t, withTargets, nil)
	c := r.caller()
	notifier(c, 603, "")
	call(t, c)
	c.SendAudio(make([]int16, 800), 1, 0, 9)
	c.PressKey('0', 101, 6, 800, 9)
	waitFor(t, "REFER", 10*time.Second, func() bool { return len(c.RequestsOf("REFER")) == 1 })
	referred := time.Now()
	waitForBye(t, c, 10*time.Second)
	var after int
	for _, p := range c.Received() {
		if p.At.After(referred) && rmsOf(p.Audio) > 50 {
			after++
		}
	}
	if after < 20 {
		t.Errorf("only %d audio packets between the refusal and the BYE: no apology", after)
	}
	sess := r.server.Sessions()[0]
	found := false
	for _, ev := range sess.ReceivedOfType("conversation.item.create") {
		if strings.Contains(string(ev.Raw), "function_call_output") && strings.Contains(string(ev.Raw), "603") {
			found = true
		}
	}
	if !found {
		t.Error("the model was not told the transfer failed")
	}
}

// The caller presses *: the demo model presses 1234 with send_dtmf, and
// the caller receives them as RFC 4733 events.
func TestSendDTMFToolReachesTheCaller(t *testing.T) {
	r := startRig(t, func(c *config.Config) { c.Agent.Greeting = false }, nil)
	c := r.caller()
	call(t, c)
	c.SendAudio(make([]int16, 800), 1, 0, 9)
	c.PressKey('*', 101, 6, 800, 9)
	var keys []byte
	waitFor(t, "four keys", 10*time.Second, func() bool {
		keys = keys[:0]
		var lastTS uint32
		for _, p := range c.Received() {
			if p.Header.PayloadType == 101 && len(p.Payload) == 4 && p.Payload[1]&0x80 != 0 && p.Header.Timestamp != lastTS {
				keys = append(keys, "0123456789*#"[p.Payload[0]])
				lastTS = p.Header.Timestamp
			}
		}
		return len(keys) >= 4
	})
	if string(keys) != "1234" {
		t.Errorf("the caller received keys %q, want 1234", keys)
	}
	_, _ = c.Bye(5 * time.Second)
}

// A webhook tool end to end: the demo model calls it (key 5), the webhook
// gets the arguments with the call's identity, the model gets its answer
// and speaks. A webhook that answers garbage (key 6) gives the model an
// error and the call goes on.
func TestWebhookToolEndToEnd(t *testing.T) {
	var mu sync.Mutex
	var got []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.URL.Path+" "+r.Header.Get("X-Voicebot-Call-Id")+" "+string(body))
		mu.Unlock()
		if r.URL.Path == "/garbage" {
			w.Write([]byte("<<<not json"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"order":"A17","status":"shipped"}`))
	}))
	defer hook.Close()
	script := func(text string, tools []realtimetest.Tool) *realtimetest.ToolCall {
		switch {
		case strings.Contains(text, "pressed 5"):
			return &realtimetest.ToolCall{Name: "lookup_order", Arguments: `{"order_number":"A17"}`}
		case strings.Contains(text, "pressed 6"):
			return &realtimetest.ToolCall{Name: "broken", Arguments: `{}`}
		}
		return nil
	}
	r := startRig(t, func(c *config.Config) {
		c.Agent.Greeting = false
		c.Tools = map[string]config.Tool{
			"lookup_order": {Description: "Look up an order.", URL: hook.URL + "/orders",
				Parameters: map[string]any{"type": "object", "properties": map[string]any{"order_number": map[string]any{"type": "string"}}}},
			"broken": {Description: "Always broken.", URL: hook.URL + "/garbage"},
		}
		c.Agent.Tools = []string{"end_call", "lookup_order", "broken"}
	}, nil, func(o *realtimetest.Options) { o.ToolScript = script })
	c := r.caller()
	call(t, c)
	sess := r.server.Sessions()[0]
	up, _ := sess.WaitFor("session.update", time.Second)
	if !strings.Contains(string(up.Raw), `"name":"lookup_order"`) || !strings.Contains(string(up.Raw), `"order_number"`) {
		t.Errorf("the webhook tool was not declared: %s", up.Raw)
	}
	c.SendAudio(make([]int16, 800), 1, 0, 9)
	seq := c.PressKey('5', 101, 6, 800, 9)
	outputs := func() []string {
		var out []string
		for _, ev := range sess.ReceivedOfType("conversation.item.create") {
			var m struct {
				Item struct{ Type, Output string }
			}
			if json.Unmarshal(ev.Raw, &m) == nil && m.Item.Type == "function_call_output" {
				out = append(out, m.Item.Output)
			}
		}
		return out
	}
	waitFor(t, "the webhook's answer at the model", 10*time.Second, func() bool { return len(outputs()) == 1 })
	if outputs()[0] != `{"order":"A17","status":"shipped"}` {
		t.Errorf("the model got %q", outputs()[0])
	}
	mu.Lock()
	if len(got) != 1 || got[0] != "/orders "+c.CallID+` {"order_number":"A17"}` {
		t.Errorf("the webhook got %q", got)
	}
	mu.Unlock()
	c.PressKey('6', 101, seq, 20000, 9)
	waitFor(t, "the error at the model", 10*time.Second, func() bool { return len(outputs()) == 2 })
	if !strings.Contains(outputs()[1], `"error"`) || !strings.Contains(outputs()[1], "not JSON") {
		t.Errorf("a garbage answer gave the model %q", outputs()[1])
	}
	time.Sleep(500 * time.Millisecond)
	if len(c.RequestsOf("BYE")) != 0 {
		t.Fatal("a failing webhook ended the call")
	}
	if code, err := c.Bye(5 * time.Second); err != nil || code != 200 {
		t.Errorf("BYE: %d %v", code, err)
	}
}
