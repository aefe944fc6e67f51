package server

import (
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/realtime/realtimetest"
)

// keyItems returns the text of the user items the model received.
func keyItems(sess *realtimetest.Session) []string {
	var out []string
	for _, r := range sess.ReceivedOfType("conversation.item.create") {
		if i := strings.Index(string(r.Raw), "The caller pressed "); i >= 0 {
			out = append(out, string(r.Raw[i:i+len("The caller pressed 5.")]))
		}
	}
	return out
}

// Keys pressed on the phone reach the model as text, whether sent as
// RFC 4733 events in the RTP stream or as SIP INFO, and the model answers.
func TestKeysReachTheModel(t *testing.T) {
	r := startRig(t, func(c *config.Config) { c.Agent.Greeting = false }, nil)
	c := r.caller()
	if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	c.SendAudio(make([]int16, 800), 1, 0, 9) // some audio first, as a phone sends
	c.PressKey('5', 101, 6, 800, 9)
	code, err := c.Info("application/dtmf-relay", "Signal=#\r\nDuration=160\r\n", 3*time.Second)
	if err != nil || code != 200 {
		t.Fatalf("INFO: %d %v", code, err)
	}
	sess := r.server.Sessions()[0]
	waitFor(t, "both keys at the model", 5*time.Second, func() bool { return len(keyItems(sess)) == 2 })
	if got := keyItems(sess); got[0] != "The caller pressed 5." || got[1] != "The caller pressed #." {
		t.Errorf("model got %v", got)
	}
	if _, err := sess.WaitFor("response.create", 3*time.Second); err != nil {
		t.Error("the model was not asked to answer the keys")
	}
	// The model's answer (a beep from the demo) comes back as audio.
	waitFor(t, "the answer", 5*time.Second, func() bool { return rmsOf(audible(c.Received())) > 50 })
	if code, _ := c.Info("text/plain", "hello", 3*time.Second); code != 415 {
		t.Errorf("INFO with a non-DTMF body: %d, want 415", code)
	}
	if code, _ := c.Info("application/dtmf-relay", "Signal=Z", 3*time.Second); code != 400 {
		t.Errorf("INFO with a bad signal: %d, want 400", code)
	}
	_, _ = c.Bye(5 * time.Second)
	waitFor(t, "call log", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), `"keys":2`) })
}

// A flood of keys (SIP INFO and RFC 4733 at once) is answered and bounded:
// every INFO gets its 200, the model gets at most 10 keys a second, the
// excess is counted, and the call goes on.
func TestKeyFloodIsBounded(t *testing.T) {
	r := startRig(t, func(c *config.Config) { c.Agent.Greeting = false; c.Agent.Tools = nil }, nil)
	c := r.caller()
	if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	c.SendAudio(make([]int16, 800), 1, 0, 9)
	for i := 0; i < 60; i++ {
		_ = c.SendRaw(c.Request("INFO", "application/dtmf-relay", "Signal=7\r\nDuration=100\r\n"))
	}
	ok := 0
	for i := 0; i < 60; i++ {
		if res, err := c.FinalFor("INFO", 3*time.Second); err == nil && res.StatusCode == 200 {
			ok++
		}
	}
	if ok != 60 {
		t.Errorf("%d of 60 INFOs answered 200", ok)
	}
	sess := r.server.Sessions()[0]
	time.Sleep(300 * time.Millisecond)
	if n := len(keyItems(sess)); n == 0 || n > 10 {
		t.Errorf("the model got %d keys from a flood in under a second, want 1-10", n)
	}
	if code, err := c.Bye(5 * time.Second); err != nil || code != 200 {
		t.Fatalf("the call did not survive the flood: BYE %d %v", code, err)
	}
	waitFor(t, "call log", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), `"message":"call: ended"`) })
	if strings.Contains(r.logs.String(), `"keys_dropped":0,`) {
		t.Error("no dropped keys counted")
	}
}
