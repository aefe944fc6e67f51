package bridge

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/outcome"
	"github.com/voicebot/voicebot/realtime/realtimetest"
)

// Keys, tools and limits in whole calls (see rig_test.go). The test peer
// model uses the tools it is given on key presses: # calls end_call, 0
// calls transfer_call to the first target, * calls send_dtmf with 1234.

// toolOutputs returns the function_call_output items a session received,
// by tool result text.
func toolOutputs(s *realtimetest.Session) []string {
	var out []string
	for _, r := range s.ReceivedOfType("conversation.item.create") {
		var ev struct {
			Item struct{ Type, Output string }
		}
		if json.Unmarshal(r.Raw, &ev) == nil && ev.Item.Type == "function_call_output" {
			out = append(out, ev.Item.Output)
		}
	}
	return out
}

// userTexts returns the text of the user message items a session received.
func userTexts(s *realtimetest.Session) []string {
	var out []string
	for _, r := range s.ReceivedOfType("conversation.item.create") {
		var ev struct {
			Item struct {
				Type, Role string
				Content    []struct{ Text string }
			}
		}
		if json.Unmarshal(r.Raw, &ev) == nil && ev.Item.Type == "message" && ev.Item.Role == "user" && len(ev.Item.Content) > 0 {
			out = append(out, ev.Item.Content[0].Text)
		}
	}
	return out
}

// # sent as SIP INFO reaches the model as text; the model ends the call,
// and the call hangs up once its goodbye has played to the end.
func TestKeyByInfoEndsTheCallAfterTheGoodbye(t *testing.T) {
	r := newRig(t, rigOptions{})
	r.start()
	r.greeted()
	before := r.phone.audio()
	r.call.obs().KeyPressed('#')
	s := r.session(0)
	r.asked(s, 2)
	r.spoken(s, 1)
	r.finish()
	if got := userTexts(s); len(got) != 1 || got[0] != "The caller pressed #." {
		t.Errorf("the model was told %q", got)
	}
	if got := r.call.requests(); got[len(got)-1] != "Hangup" {
		t.Errorf("the call was asked %v, want a hang-up last", got)
	}
	goodbye := len(realtimetest.GoodbyeAudio()) / 24 / 20 // frames
	if heard := r.phone.audio() - before; heard < goodbye {
		t.Errorf("the caller heard %d frames of the %d-frame goodbye before the hang-up", heard, goodbye)
	}
	if outs := toolOutputs(s); len(outs) != 1 || !strings.Contains(outs[0], "ends") {
		t.Errorf("end_call's outputs %v", outs)
	}
	if !r.endedWith(outcome.BotHungUp) || r.metric(`voicebot_tool_calls_total{tool="end_call"}`) != 1 {
		t.Error("the call is not counted as ended by the bot's end_call")
	}
}

// 0 pressed as RFC 4733 events: the model transfers the caller to the
// operator once it has said so; the call then ends.
func TestKeyByRTPTransfersAfterTheAnnouncement(t *testing.T) {
	r := newRig(t, rigOptions{})
	heardAtTransfer := -1
	r.call.onTransfer = func() { heardAtTransfer = r.phone.audio() }
	r.start()
	port := r.greeted()
	before := r.phone.audio()
	r.phone.key(port, '0')
	r.asked(r.session(0), 2)
	r.spoken(r.session(0), 1)
	r.finish()
	got := strings.Join(r.call.requests(), ",")
	if got != "Ringing,Answer,Transfer:sip:0@pbx.example?X-Summary=The%20caller%20pressed%200%20and%20asked%20for%20a%20person.,Hangup" {
		t.Fatalf("the call was asked %s", got)
	}
	if announced := heardAtTransfer - before; announced < 500/20 { // "Transferring you now.": 0.5 s
		t.Errorf("the caller heard %d frames of the announcement before the REFER", announced)
	}
	if !r.endedWith(outcome.Transferred) {
		t.Error("the call is not counted as transferred")
	}
}

// A transfer the far end refuses keeps the call (the profile does not hang
// up on failure): the model is told why and asked to carry on.
func TestRefusedTransferKeepsTheCall(t *testing.T) {
	r := newRig(t, rigOptions{})
	r.call.transferErr = errTest("603 Decline")
	r.start()
	r.greeted()
	r.call.obs().KeyPressed('0')
	s := r.session(0)
	r.runUntil("the model to learn the transfer failed", func() bool { return len(toolOutputs(s)) == 1 })
	if out := toolOutputs(s)[0]; !strings.Contains(out, "failed") || !strings.Contains(out, "603 Decline") {
		t.Errorf("the model was told %s", out)
	}
	r.runUntil("the model's answer to the failure", func() bool {
		for _, resp := range s.Responses() {
			if strings.Contains(resp.Transcript, "tool answered") && resp.Status != "" {
				return true
			}
		}
		return false
	})
	r.run(time.Second)
	if r.ended() || r.call.saw("Hangup") {
		t.Fatalf("the call ended after a refused transfer: %v", r.call.requests())
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }

// * makes the model press 1234 on the line: the far end gets the four keys
// as RFC 4733 events.
func TestModelPressesKeys(t *testing.T) {
	r := newRig(t, rigOptions{})
	r.start()
	r.greeted()
	r.call.obs().KeyPressed('*')
	r.runUntil("the keys on the line", func() bool { return len(r.phone.keysSent()) == 4 })
	if got := r.phone.keysSent(); got != "1234" {
		t.Errorf("the far end got keys %q, want 1234", got)
	}
	if outs := toolOutputs(r.session(0)); len(outs) != 1 || !strings.Contains(outs[0], `"sent"`) {
		t.Errorf("the model was told %v", outs)
	}
	if r.ended() {
		t.Error("the call ended")
	}
}

// A caller gone without a BYE (no RTP) is hung up on after the timeout.
// (That RTP keeps a call alive is TestRTPTimeoutEndsASilentCall's: here
// packets carry the kernel's arrival time, which the fake clock outruns.)
func TestSilentCallerIsHungUpOn(t *testing.T) {
	r := newRig(t, rigOptions{config: func(c *Config) { c.RTPTimeout = 3 * time.Second }})
	r.start()
	r.greeted()
	r.finish()
	if got := r.call.requests(); got[len(got)-1] != "Hangup" {
		t.Errorf("the call was asked %v", got)
	}
	if !r.endedWith(outcome.Timeout) {
		t.Error("the call is not counted as ended for want of RTP")
	}
}

// At the maximum duration the model is first warned, then asked for a
// goodbye, which plays before the hang-up.
func TestMaximumDurationInAWholeCall(t *testing.T) {
	r := newRig(t, rigOptions{config: func(c *Config) { c.MaxDuration, c.MaxDurationWarning = 10*time.Second, 4*time.Second }})
	r.start()
	r.greeted()
	s := r.session(0)
	r.runUntil("the warning", func() bool { return len(s.ReceivedOfType("conversation.item.create")) == 1 })
	if r.ended() {
		t.Fatal("the call ended at the warning")
	}
	var note struct {
		Item struct {
			Role    string
			Content []struct{ Text string }
		}
	}
	if err := json.Unmarshal(s.ReceivedOfType("conversation.item.create")[0].Raw, &note); err != nil || note.Item.Role != "system" ||
		!strings.Contains(note.Item.Content[0].Text, "4s") {
		t.Errorf("the warning note: %s", s.ReceivedOfType("conversation.item.create")[0].Raw)
	}
	before := r.phone.audio()
	r.asked(s, 2)
	r.spoken(s, 1)
	r.finish()
	creates := s.ReceivedOfType("response.create")
	if last := string(creates[len(creates)-1].Raw); !strings.Contains(last, "time limit") {
		t.Errorf("the last response asked for: %s", last)
	}
	if heard := r.phone.audio() - before; heard < len(realtimetest.GoodbyeAudio())/24/20 {
		t.Errorf("the caller heard %d frames of the goodbye", heard)
	}
	if !r.endedWith(outcome.BotHungUp) {
		t.Error("the call is not counted as ended at its maximum duration")
	}
}

// WrapUpAll (a drain that waited long enough) ends a call politely: a
// goodbye that says why, then the hang-up.
func TestWrapUpAllSaysGoodbyeAndHangsUp(t *testing.T) {
	r := newRig(t, rigOptions{})
	r.start()
	r.greeted()
	r.b.WrapUpAll()
	r.b.WrapUpAll() // twice: as harmless as once
	before := r.phone.audio()
	r.asked(r.session(0), 2)
	r.spoken(r.session(0), 1)
	r.finish()
	if heard := r.phone.audio() - before; heard < len(realtimetest.GoodbyeAudio())/24/20 {
		t.Errorf("the caller heard %d frames of the goodbye", heard)
	}
	creates := r.session(0).ReceivedOfType("response.create")
	if len(creates) != 2 || !strings.Contains(string(creates[1].Raw), "maintenance") {
		t.Errorf("responses asked for: %v", creates)
	}
	if got := r.call.requests(); got[len(got)-1] != "Hangup" {
		t.Errorf("the call was asked %v", got)
	}
	if !r.endedWith(outcome.Drained) {
		t.Error("the call is not counted as ended by the shutdown")
	}
}

// A live call reports its media to the metrics every few seconds, not
// only when it ends.
func TestLiveCallReportsItsMedia(t *testing.T) {
	r := newRig(t, rigOptions{})
	r.start()
	port := r.greeted()
	r.phone.talk(port, 40, false)
	r.runUntil("the caller's packets in the metrics", func() bool {
		return r.metric(`voicebot_rtp_packets_total{direction="in"}`) >= 40
	})
	if r.ended() {
		t.Fatal("the call ended")
	}
	if out := r.metric(`voicebot_rtp_packets_total{direction="out"}`); out < rigGreetingMS/20 {
		t.Errorf("%v packets out counted while the greeting alone was %d", out, rigGreetingMS/20)
	}
}
