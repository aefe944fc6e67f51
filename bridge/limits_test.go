package bridge

import (
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// rtpFrom feeds one caller packet into the call's media at the fake clock's now.
func (h *harness) rtpFrom(seq uint16) {
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 7}, Payload: make([]byte, 160)}
	b, _ := pkt.Marshal()
	var scratch rtp.Packet
	h.c.media.HandleDatagram(b, peer, &scratch)
}

// fired reports whether a limit timer has gone off.
func fired(t interface{ C() <-chan time.Time }) bool {
	select {
	case <-t.C():
		return true
	default:
		return false
	}
}

func TestRTPTimeoutEndsASilentCall(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RTPTimeout = 30 * time.Second })
	h.c.startLimits()
	check := func(after time.Duration) (string, bool) {
		h.t.Helper()
		end := h.clk.Now().Add(after)
		for h.clk.Now().Before(end) {
			h.clk.Advance(250 * time.Millisecond)
			if fired(h.c.limits.rtp) {
				if reason, done := h.c.onRTPCheck(); done {
					return reason, true
				}
			}
		}
		return "", false
	}
	// Packets keep it alive.
	for i := 0; i < 40; i++ {
		h.rtpFrom(uint16(i))
		if _, done := check(time.Second); done {
			t.Fatalf("ended at %d s while RTP flowed", i)
		}
	}
	// On hold, a silent line is expected, for as long as the hold lasts.
	h.c.media.Hold(true)
	if _, done := check(45 * time.Second); done {
		t.Fatal("ended while on hold")
	}
	h.c.media.Hold(false)
	if _, done := check(29 * time.Second); done {
		t.Fatal("ended before 30 s of silence after the hold")
	}
	reason, done := check(2 * time.Second)
	if !done || reason != endRTPTimeout {
		t.Fatalf("after 31 s of silence: %q %v", reason, done)
	}
}

func TestMaxDurationWarnsThenSaysGoodbye(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.MaxDuration, c.MaxDurationWarning = 10*time.Minute, time.Minute
	})
	h.c.startLimits()
	h.clk.Advance(9 * time.Minute)
	if !fired(h.c.limits.warn) || fired(h.c.limits.max) {
		t.Fatal("the warning is due at 9 min, the end not yet")
	}
	h.c.onMaxDurationWarning()
	notes := h.model.ofType("conversation.item.create")
	if len(notes) != 1 || !strings.Contains(notes[0]["item"].(map[string]any)["content"].([]any)[0].(map[string]any)["text"].(string), "1m0s") {
		t.Fatalf("warning note: %v", notes)
	}
	h.clk.Advance(time.Minute)
	if !fired(h.c.limits.max) {
		t.Fatal("the end is due at 10 min")
	}
	h.c.wrapUp(endMaxDuration, "goodbye now")
	creates := h.model.ofType("response.create")
	if len(creates) != 1 || !strings.HasPrefix(creates[0]["event_id"].(string), "goodbye_") {
		t.Fatalf("goodbye response.create: %v", creates)
	}
	// The goodbye is spoken to the end, then the call ends.
	h.respond("resp_bye", "item_bye", 600)
	h.done("resp_bye", "completed")
	h.play(300 * time.Millisecond)
	if h.ended != "" {
		t.Fatalf("ended (%s) during the goodbye", h.ended)
	}
	h.play(time.Second)
	if h.ended != endMaxDuration {
		t.Fatalf("ended %q, want %q", h.ended, endMaxDuration)
	}
	if ms, _ := h.audioMS(); ms < 600 {
		t.Errorf("caller heard %d ms of the 600 ms goodbye", ms)
	}
}

// At shutdown a bot in mid-answer finishes it; it is not asked for another.
func TestWrapUpLetsTheAnswerFinish(t *testing.T) {
	h := newHarness(t, nil)
	h.respond("resp_1", "item_1", 800)
	h.c.wrapUp(endShutdown, "goodbye")
	if n := len(h.model.ofType("response.create")); n != 0 {
		t.Fatalf("%d response.create during an answer", n)
	}
	h.done("resp_1", "completed")
	h.play(1500 * time.Millisecond)
	if h.ended != endShutdown {
		t.Fatalf("ended %q", h.ended)
	}
	if ms, _ := h.audioMS(); ms < 800 {
		t.Errorf("the answer was cut at %d ms", ms)
	}
}
