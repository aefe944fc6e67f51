package bridge

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/outcome"
	"github.com/voicebot/voicebot/realtime/realtimetest"
)

// A call outliving its model session, in whole calls (see rig_test.go):
// a dropped connection is reopened while the caller hears the filler, a
// session that expires is replaced, and a model that does not come back
// ends the call with the apology and the fallback.

// The filler and the apology are flat signals the phone can tell apart.
const (
	fillerLevel  = 2000
	apologyLevel = -3000
)

func withResume(budget time.Duration, fallback string) func(*Config) {
	return func(c *Config) {
		c.Resume = Resume{Budget: budget, FillerLoop: flat(200, fillerLevel), Apology: flat(500, apologyLevel), FallbackTarget: fallback}
	}
}

// replayed returns the texts of the items a session was given by a replay,
// "role: text" each.
func replayed(s *realtimetest.Session) []string {
	var out []string
	for _, r := range s.ReceivedOfType("conversation.item.create") {
		var ev struct {
			EventID string `json:"event_id"`
			Item    struct {
				Role    string
				Content []struct{ Text string }
			}
		}
		if json.Unmarshal(r.Raw, &ev) == nil && strings.HasPrefix(ev.EventID, "replay_") && len(ev.Item.Content) > 0 {
			out = append(out, ev.Item.Role+": "+ev.Item.Content[0].Text)
		}
	}
	return out
}

// replayedTo waits for session i's replay (its events travel on after the
// call has moved on) and returns it; empty when none came within 3 s.
func (r *rig) replayedTo(i int) []string {
	s := r.session(i)
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if got := replayed(s); len(got) > 0 {
			return got
		}
	}
	return nil
}

// The model connection drops: the caller hears the filler while it is
// reopened (the first attempts fail), the new session is given the
// conversation so far, the filler stops, and the caller goes on talking
// to the new session.
func TestDroppedModelIsReopenedWhileTheCallerHearsTheFiller(t *testing.T) {
	r := newRig(t, rigOptions{config: withResume(15*time.Second, "")})
	r.start()
	port := r.greeted()
	s0 := r.session(0)
	r.model.mu.Lock()
	r.model.failNext = 2
	r.model.mu.Unlock()
	s0.Drop()
	r.waitFor("a first redial", func() bool { return r.model.count() >= 2 })
	r.runUntil("the model back", func() bool { return r.metric(`voicebot_model_reconnects_total{result="resumed"}`) == 1 })
	s1 := r.session(1)
	if filler := r.phone.framesOf(fillerLevel); filler < 10 {
		t.Errorf("the caller heard %d frames of filler while the model was away", filler)
	}
	if got := r.replayedTo(1); len(got) != 1 || got[0] != "assistant: Hello, rig caller." {
		t.Errorf("the new session was given %q", got)
	}
	if first := s1.Received()[0].Type; first != "session.update" {
		t.Errorf("the new session got %s first, not its configuration", first)
	}
	r.run(100 * time.Millisecond)
	filler := r.phone.framesOf(fillerLevel)
	r.run(time.Second)
	if more := r.phone.framesOf(fillerLevel) - filler; more != 0 {
		t.Errorf("%d frames of filler after the model came back", more)
	}
	r.phone.talk(port, 50, true)
	r.runUntil("the new session to hear the caller", func() bool { return s1.SpeechStarts() > 0 })
	if r.ended() || r.call.saw("Hangup") {
		t.Fatalf("the call ended: %v", r.call.requests())
	}
}

// A model that does not come back within the budget: the filler, then
// the apology, whole, then the caller is transferred to the fallback.
func TestModelGoneForGoodApologisesAndTransfersToTheFallback(t *testing.T) {
	r := newRig(t, rigOptions{config: withResume(2*time.Second, "operator")})
	apologyAtTransfer := -1
	r.call.onTransfer = func() { apologyAtTransfer = r.phone.framesOf(apologyLevel) }
	r.start()
	r.greeted()
	r.model.mu.Lock()
	r.model.failNext = 1000
	r.model.mu.Unlock()
	r.session(0).Drop()
	r.finish()
	if got := strings.Join(r.call.requests(), ","); got != "Ringing,Answer,Transfer:sip:0@pbx.example,Hangup" {
		t.Fatalf("the call was asked %s", got)
	}
	if apologyAtTransfer != 500/20 {
		t.Errorf("the caller heard %d of the apology's %d frames before the transfer", apologyAtTransfer, 500/20)
	}
	if r.phone.framesOf(fillerLevel) == 0 {
		t.Error("no filler while the model was retried")
	}
	if n := r.model.count(); n < 3 {
		t.Errorf("%d dials: the model was not retried within the budget", n)
	}
	if r.metric(`voicebot_model_reconnects_total{result="failed"}`) != 1 || !r.endedWith(outcome.Transferred) {
		t.Error("the failed reconnect or the transfer is not counted")
	}
}

// A fallback that is not one of the agent's transfer targets is not
// called: the caller hears the apology and is hung up on.
func TestUnknownFallbackHangsUp(t *testing.T) {
	r := newRig(t, rigOptions{config: withResume(time.Second, "nowhere")})
	r.start()
	r.greeted()
	r.model.mu.Lock()
	r.model.failNext = 1000
	r.model.mu.Unlock()
	r.session(0).Drop()
	r.finish()
	if got := strings.Join(r.call.requests(), ","); got != "Ringing,Answer,Hangup" {
		t.Fatalf("the call was asked %s", got)
	}
	if n := r.phone.framesOf(apologyLevel); n != 500/20 {
		t.Errorf("the caller heard %d of the apology's %d frames", n, 500/20)
	}
	if !r.endedWith(outcome.ModelFailed) {
		t.Error("the call is not counted as lost with its model")
	}
}

// With reconnecting off (a negative budget) a lost model ends the call at once.
func TestNoReconnectBudgetEndsTheCall(t *testing.T) {
	r := newRig(t, rigOptions{config: withResume(-1, "operator")})
	r.start()
	r.greeted()
	r.session(0).Drop()
	r.finish()
	if got := strings.Join(r.call.requests(), ","); got != "Ringing,Answer,Hangup" {
		t.Errorf("the call was asked %s", got)
	}
	if n := r.model.count(); n != 1 {
		t.Errorf("%d dials with reconnecting off", n)
	}
	if r.phone.framesOf(fillerLevel) != 0 {
		t.Error("filler played with reconnecting off")
	}
	if !r.endedWith(outcome.ModelFailed) {
		t.Error("the call is not counted as lost with its model")
	}
}

// A caller who hangs up while the model is away is not hung up on.
func TestCallerHangsUpWhileTheModelIsAway(t *testing.T) {
	r := newRig(t, rigOptions{config: withResume(time.Minute, "operator")})
	r.start()
	r.greeted()
	r.model.mu.Lock()
	r.model.failNext = 1000
	r.model.mu.Unlock()
	r.session(0).Drop()
	r.runUntil("a few redials", func() bool { return r.model.count() >= 3 })
	r.hangup()
	r.waitFor("the call to end", r.ended)
	if got := strings.Join(r.call.requests(), ","); got != "Ringing,Answer" {
		t.Errorf("the call was asked %s after the caller hung up", got)
	}
	if !r.endedWith(outcome.CallerHungUp) {
		t.Error("the call is not counted as ended by the caller")
	}
}

// A session the service expires is replaced at once: the new session is
// given the conversation (and not asked to greet again), the caller goes
// on talking to it, and it counts as a rollover, not a lost connection.
// (While the bot speaks, what is queued must play on: see
// TestExpiredSessionEitherOrderLetsTheAnswerFinish; in a whole call which
// order happens is a race.)
func TestExpiredSessionIsReplaced(t *testing.T) {
	r := newRig(t, rigOptions{config: withResume(15*time.Second, "")})
	r.start()
	port := r.greeted()
	r.session(0).Expire()
	r.waitFor("the replacement", func() bool { return r.metric(`voicebot_model_rollovers_total`) == 1 })
	s1 := r.session(1)
	if got := r.replayedTo(1); len(got) != 1 || got[0] != "assistant: Hello, rig caller." {
		t.Errorf("the new session was given %q", got)
	}
	if n := len(s1.ReceivedOfType("response.create")); n != 0 {
		t.Errorf("the new session was asked for %d responses: the caller is greeted again", n)
	}
	r.phone.talk(port, 50, true)
	r.runUntil("the new session to hear the caller", func() bool { return s1.SpeechStarts() > 0 })
	if r.metric(`voicebot_model_reconnects_total{result="resumed"}`) != 0 {
		t.Error("the replacement is counted as a lost connection")
	}
	if r.ended() {
		t.Fatalf("the call ended: %v", r.call.requests())
	}
}

// A session is replaced before it expires, at a quiet moment, from
// expires_at; a replacement that fails is tried again 30 s later.
func TestSessionRolledOverBeforeItExpires(t *testing.T) {
	r := newRig(t, rigOptions{config: withResume(15*time.Second, ""),
		server: func(o *realtimetest.Options) { o.SessionLifetime = 10 * time.Minute }})
	r.start()
	port := r.greeted()
	s0 := r.session(0)
	r.run(time.Second)
	if r.model.count() != 1 {
		t.Fatal("a replacement was dialled long before the session expires")
	}
	r.model.mu.Lock()
	r.model.failNext = 1
	r.model.mu.Unlock()
	r.clk.Advance(9 * time.Minute) // the replacement is due 2 minutes before expires_at
	r.waitFor("the replacement's first dial", func() bool { return r.model.count() == 2 })
	r.run(time.Second)
	if len(r.srv.Sessions()) != 1 {
		t.Fatal("a failed replacement was retried at once")
	}
	r.clk.Advance(30 * time.Second)
	r.waitFor("the replacement", func() bool { return r.metric(`voicebot_model_rollovers_total`) == 1 })
	select {
	case <-s0.Done():
	case <-time.After(5 * time.Second):
		t.Error("the old session was not closed once replaced")
	}
	s1 := r.session(1)
	r.phone.talk(port, 50, true)
	r.runUntil("the replacement to hear the caller", func() bool { return s1.SpeechStarts() > 0 })
	if got := r.replayedTo(1); len(got) != 1 || got[0] != "assistant: Hello, rig caller." {
		t.Errorf("the replacement was given %q", got)
	}
	if r.phone.framesOf(fillerLevel) != 0 {
		t.Error("the caller heard the filler during a planned rollover")
	}
}
