package bridge

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/outcome"
	"github.com/voicebot/voicebot/realtime"
	"github.com/voicebot/voicebot/realtime/realtimetest"
)

// Whole calls through Bridge.Handle (see rig_test.go): how a call is
// refused, answered, greeted and ended, as the far end sees it.

// An inbound call rings, the greeting is asked for while it rings, the
// call is answered and the greeting plays; the caller's audio reaches the
// model. When the caller hangs up nothing is sent back (no BYE after
// theirs), the model session is closed and the RTP port freed.
func TestInboundCallFromRingToCallerHangup(t *testing.T) {
	r := newRig(t, rigOptions{})
	var answeredAt time.Time
	r.call.answer = func(context.Context, int) error { answeredAt = time.Now(); return nil }
	r.start()
	port := r.greeted()
	if got := strings.Join(r.call.requests(), ","); got != "Ringing,Answer" {
		t.Fatalf("the call was asked %s, want Ringing,Answer", got)
	}
	if port < 33000 || port > 33999 || port%2 != 0 {
		t.Errorf("answered with RTP port %d: not an even port of the range", port)
	}
	s := r.session(0)
	got := s.Received()
	if len(got) < 2 || got[0].Type != "session.update" || got[1].Type != "response.create" {
		t.Fatalf("the model received %v first, want session.update then the greeting's response.create", types(got))
	}
	if !got[1].At.Before(answeredAt) {
		t.Error("the greeting was asked for only after the answer: the caller waits for it")
	}
	// The caller speaks: the model hears them.
	r.phone.talk(port, 50, true)
	r.runUntil("the model to hear the caller", func() bool { return s.SpeechStarts() > 0 })
	if r.metric(`voicebot_calls_active{direction="inbound"}`) != 1 {
		t.Error("the answered call is not counted as active")
	}

	r.hangup()
	r.waitFor("the call to end", r.ended)
	if got := strings.Join(r.call.requests(), ","); got != "Ringing,Answer" {
		t.Errorf("after the caller hung up the call was asked %s", got)
	}
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Error("the model session is still open after the call")
	}
	if n := r.ports.InUse(); n != 0 {
		t.Errorf("%d RTP ports in use after the call", n)
	}
	if !r.endedWith(outcome.CallerHungUp) || r.metric(`voicebot_calls_active{direction="inbound"}`) != 0 {
		t.Error("the call is not counted as ended by the caller")
	}
	if !strings.Contains(r.logs.String(), `"outcome":"caller_hung_up"`) {
		t.Error("no log line says how the call ended")
	}
}

func types(rs []realtimetest.Received) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Type)
	}
	return out
}

// A call that cannot have an RTP port is refused before any model session
// is opened.
func TestCallRefusedWithoutRTPPort(t *testing.T) {
	t.Run("range exhausted", func(t *testing.T) {
		r := newRig(t, rigOptions{})
		var held []*net.UDPConn
		for {
			conn, err := r.ports.Allocate()
			if err != nil {
				break
			}
			held = append(held, conn)
		}
		defer func() {
			for _, c := range held {
				r.ports.Release(c)
			}
		}()
		r.start()
		r.waitFor("the call to end", r.ended)
		if got := strings.Join(r.call.requests(), ","); got != "Ringing,Refuse:"+string(RefusedNoMediaPort) {
			t.Errorf("the call was asked %s", got)
		}
		if r.model.count() != 0 {
			t.Error("a model session was dialled for a call without media")
		}
	})
	t.Run("no port pool", func(t *testing.T) {
		r := newRig(t, rigOptions{config: func(c *Config) { c.Ports = nil }})
		r.start()
		r.waitFor("the call to end", r.ended)
		if got := strings.Join(r.call.requests(), ","); got != "Ringing,Refuse:"+string(RefusedNoMediaPort) {
			t.Errorf("the call was asked %s", got)
		}
	})
}

// A model that cannot be reached refuses the call; the port goes back.
func TestCallRefusedWhenTheModelIsUnreachable(t *testing.T) {
	r := newRig(t, rigOptions{})
	r.model.failNext = 1
	r.start()
	r.waitFor("the call to end", r.ended)
	if got := strings.Join(r.call.requests(), ","); got != "Ringing,Refuse:"+string(RefusedModelUnreachable) {
		t.Errorf("the call was asked %s", got)
	}
	if !r.endedWith(outcome.Rejected) || r.end.Detail != string(RefusedModelUnreachable) {
		t.Error("the refused call is not counted as rejected")
	}
}

// A caller who gives up while the model connects is not sent a refusal:
// there is nobody left to send it to.
func TestCallerGivesUpWhileTheModelConnects(t *testing.T) {
	r := newRig(t, rigOptions{})
	r.model.block = make(chan struct{})
	r.start()
	r.waitFor("the model dial", func() bool { return r.model.count() == 1 })
	r.hangup()
	r.waitFor("the call to end", r.ended)
	if got := strings.Join(r.call.requests(), ","); got != "Ringing" {
		t.Errorf("the call was asked %s after the caller gave up", got)
	}
}

// A session configuration the model refuses refuses the call, with the
// model's reason in the log: answering would fail every call alike.
func TestCallRefusedWhenTheModelRefusesTheSession(t *testing.T) {
	t.Run("bad voice", func(t *testing.T) {
		r := newRig(t, rigOptions{
			server:  func(o *realtimetest.Options) { o.Voices = []string{"marin", "cedar"} },
			profile: func(p *Profile) { p.Session.Voice = "robot" },
		})
		r.start()
		r.waitFor("the call to end", r.ended)
		if got := strings.Join(r.call.requests(), ","); got != "Ringing,Refuse:"+string(RefusedModelNotReady) {
			t.Errorf("the call was asked %s", got)
		}
		if !strings.Contains(r.logs.String(), "robot") {
			t.Error("the log does not say what the model refused")
		}
		if n := len(r.session(0).ReceivedOfType("response.create")); n != 0 {
			t.Errorf("%d responses asked of a session that refused its configuration", n)
		}
	})
	t.Run("beta dialect retired", func(t *testing.T) {
		r := newRig(t, rigOptions{dialect: realtime.Beta, server: func(o *realtimetest.Options) { o.RefuseBeta = true }})
		r.start()
		r.waitFor("the call to end", r.ended)
		if got := strings.Join(r.call.requests(), ","); got != "Ringing,Refuse:"+string(RefusedModelNotReady) {
			t.Errorf("the call was asked %s", got)
		}
		if !strings.Contains(r.logs.String(), "realtime.dialect: ga") {
			t.Error("the log does not tell the operator to switch to the GA dialect")
		}
	})
}

// An outbound call: no ringing of our own, the model session opens while
// the callee's phone rings, and nothing is sent or heard until they
// answer (early media is ringback, not a caller). Then the greeting plays
// to the address the answer gave.
func TestOutboundCallIsSilentUntilAnswered(t *testing.T) {
	pickUp := make(chan struct{})
	var r *rig
	r = newRig(t, rigOptions{setup: func(s *Setup) {
		s.Outbound = true
		s.Media = CallMedia{} // learnt at the answer
	}})
	phoneMedia := CallMedia{Remote: r.phone.addr(), Codec: media.PCMU, DTMFPayloadType: 101, Signalling: netip.MustParseAddr("127.0.0.1")}
	ringing := make(chan int, 1)
	r.call.answer = func(ctx context.Context, port int) error {
		r.call.obs().MediaChanged(phoneMedia, true) // 183 with SDP: early media
		ringing <- port
		select {
		case <-pickUp:
		case <-ctx.Done():
			return ctx.Err()
		}
		r.call.obs().MediaChanged(phoneMedia, false) // the 200's SDP
		return nil
	}
	r.start()
	port := <-ringing
	s := r.session(0)
	if _, err := s.WaitFor("response.create", 5*time.Second); err != nil {
		t.Fatal("the greeting was not asked for while the callee's phone rang")
	}
	r.phone.talk(port, 25, true) // ringback
	r.run(time.Second)
	if n := r.phone.audio(); n != 0 {
		t.Errorf("the callee got %d audio packets before answering", n)
	}
	if ms := s.InputMS(); ms != 0 || s.SpeechStarts() != 0 {
		t.Errorf("the model heard %d ms of ringback", ms)
	}
	close(pickUp)
	r.runUntil("the greeting to play", func() bool { return r.phone.audio() >= rigGreetingMS/20 })
	r.phone.talk(port, 25, true)
	r.runUntil("the model to hear the callee", func() bool { return s.SpeechStarts() > 0 })
	if got := strings.Join(r.call.requests(), ","); got != "Answer" {
		t.Errorf("the outbound call was asked %s", got)
	}
}

// A callee who does not answer ends the call: no refusal, no hang-up (the
// signalling has already ended it).
func TestOutboundCallNotAnswered(t *testing.T) {
	r := newRig(t, rigOptions{setup: func(s *Setup) { s.Outbound = true; s.Media = CallMedia{} }})
	r.call.answer = func(context.Context, int) error {
		r.call.mu.Lock()
		r.call.ended = outcome.End{Outcome: outcome.Busy, SIPCode: 486, Detail: "Busy Here"}
		r.call.mu.Unlock()
		return errors.New("486 Busy Here")
	}
	r.start()
	r.waitFor("the call to end", r.ended)
	if got := strings.Join(r.call.requests(), ","); got != "Answer failed" {
		t.Errorf("the call was asked %s", got)
	}
	if !r.endedWith(outcome.Busy) || r.end.SIPCode != 486 {
		t.Error("the call is not counted as busy, with the signalling's code")
	}
}

// A call whose signalling ended it for a reason of its own (here a hang-up
// through the API) ends with that outcome, not as hung up by the caller;
// nothing more is asked of the call.
func TestSignallingEndKeepsItsOutcome(t *testing.T) {
	r := newRig(t, rigOptions{})
	r.start()
	r.greeted()
	r.call.mu.Lock()
	r.call.ended = outcome.End{Outcome: outcome.APIHungUp, Detail: "hung up through the API"}
	r.call.mu.Unlock()
	r.hangup()
	r.waitFor("the call to end", r.ended)
	if !r.endedWith(outcome.APIHungUp) || r.end.Detail != "hung up through the API" {
		t.Error("the call is not counted as hung up through the API")
	}
	if got := strings.Join(r.call.requests(), ","); got != "Ringing,Answer" {
		t.Errorf("the call was asked %s", got)
	}
	if !strings.Contains(r.logs.String(), `"outcome":"api_hung_up"`) {
		t.Error("the log does not say api_hung_up")
	}
}
