package bridge

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestInterruptMidItem(t *testing.T) {
	h := newHarness(t, nil)
	h.respond("resp_1", "item_1", 3000)
	h.play(1010 * time.Millisecond)
	h.speechStarted(5000)
	sentMS, _ := h.audioMS()
	h.play(200 * time.Millisecond)
	if after, _ := h.audioMS(); after != sentMS {
		t.Fatalf("bot audio after the barge-in: %d ms → %d ms", sentMS, after)
	}
	tr := h.model.ofType("conversation.item.truncate")
	if len(tr) != 1 || tr[0]["item_id"] != "item_1" || num(tr[0]["content_index"]) != 0 {
		t.Fatalf("truncates %v", tr)
	}
	if got := num(tr[0]["audio_end_ms"]); got != sentMS {
		t.Errorf("audio_end_ms %d, caller was sent %d ms", got, sentMS)
	}
	if n := len(h.model.ofType("response.cancel")); n != 0 {
		t.Errorf("%d response.cancel: the server cancels by itself (interrupt_response true)", n)
	}
	// The rest of the response still streams in: it must be dropped.
	h.deltas("resp_1", "item_1", 500)
	h.play(200 * time.Millisecond)
	if after, _ := h.audioMS(); after != sentMS || h.c.media.QueuedMS() != 0 {
		t.Errorf("late deltas of the interrupted response were played or queued")
	}
	h.done("resp_1", "cancelled")
	// The next answer plays normally.
	h.respond("resp_2", "item_2", 200)
	h.play(300 * time.Millisecond)
	if after, _ := h.audioMS(); after != sentMS+200 {
		t.Errorf("the next response played %d ms, want 200", after-sentMS)
	}
	if h.c.bargeIns != 1 {
		t.Errorf("%d barge-ins counted", h.c.bargeIns)
	}
}

func TestInterruptBetweenItems(t *testing.T) {
	h := newHarness(t, nil)
	h.respond("resp_1", "item_a", 400)
	h.deltas("resp_1", "item_b", 1000)
	h.play(400 * time.Millisecond) // item_a fully out, item_b not started
	sentMS, _ := h.audioMS()
	if sentMS != 400 {
		t.Fatalf("sent %d ms before the barge-in, want 400", sentMS)
	}
	h.speechStarted(3000)
	tr := h.model.ofType("conversation.item.truncate")
	if len(tr) != 1 || tr[0]["item_id"] != "item_b" || num(tr[0]["audio_end_ms"]) != 0 {
		t.Fatalf("want item_b truncated to 0 and item_a (fully heard) left alone, got %v", tr)
	}
}

func TestInterruptAfterGenerationFinished(t *testing.T) {
	h := newProfileHarness(t, nil, func(p *Profile) { p.Session.TurnDetection.InterruptResponse = false })
	h.respond("resp_1", "item_1", 2000)
	h.done("resp_1", "completed") // generated in full; still playing
	h.play(700 * time.Millisecond)
	h.speechStarted(3000)
	sentMS, _ := h.audioMS()
	tr := h.model.ofType("conversation.item.truncate")
	if len(tr) != 1 || num(tr[0]["audio_end_ms"]) != sentMS {
		t.Fatalf("truncates %v, sent %d ms", tr, sentMS)
	}
	if n := len(h.model.ofType("response.cancel")); n != 0 {
		t.Errorf("cancelled a response that was already done")
	}
}

func TestNothingToDoAfterPlayoutDrained(t *testing.T) {
	h := newHarness(t, nil)
	h.respond("resp_1", "item_1", 300)
	h.done("resp_1", "completed")
	h.play(600 * time.Millisecond)
	h.speechStarted(3000)
	if len(h.model.sent) != 0 || h.c.bargeIns != 0 {
		t.Errorf("a drained playout needs no truncate or cancel, got %v", h.model.sent)
	}
}

func TestSecondBargeInDuringTheFirstsCancel(t *testing.T) {
	h := newProfileHarness(t, nil, func(p *Profile) { p.Session.TurnDetection.InterruptResponse = false })
	h.respond("resp_1", "item_1", 3000)
	h.play(500 * time.Millisecond)
	h.speechStarted(2000)
	h.play(40 * time.Millisecond)
	h.speechStarted(2100) // before response.done of the cancel arrives
	h.deltas("resp_1", "item_1", 300)
	h.play(100 * time.Millisecond)
	if n := len(h.model.ofType("response.cancel")); n != 1 {
		t.Errorf("%d response.cancel, want exactly 1", n)
	}
	if n := len(h.model.ofType("conversation.item.truncate")); n != 1 {
		t.Errorf("%d truncates, want 1", n)
	}
	if h.c.media.QueuedMS() != 0 || h.c.bargeIns != 1 {
		t.Errorf("queued %d ms, %d barge-ins", h.c.media.QueuedMS(), h.c.bargeIns)
	}
	h.done("resp_1", "cancelled")
	if h.c.activeResp != "" {
		t.Error("response still active after its response.done")
	}
}

func pauseMode(c *Config) {
	c.BargeIn.Pause = true
	c.BargeIn.MinSpeech = 400 * time.Millisecond
	c.BargeIn.ResumeAfter = 2 * time.Second
}

func TestPauseModeResumesAfterACough(t *testing.T) {
	h := newHarness(t, pauseMode)
	if h.c.session.TurnDetection.InterruptResponse {
		t.Fatal("pause mode must run the model's VAD with interrupt_response false")
	}
	h.respond("resp_1", "item_1", 3000)
	h.play(1000 * time.Millisecond)
	before, _ := h.audioMS()
	h.speechStarted(4000) // onset 4300 after prefix padding
	h.caller(200, true)   // a cough…
	h.caller(500, false)  // …then quiet
	h.play(700 * time.Millisecond)
	if mid, _ := h.audioMS(); mid != before {
		t.Fatalf("bot audio while paused: %d → %d ms", before, mid)
	}
	h.speechStopped(4300 + 200 + 500) // 200 ms of speech, plus the silence that ended it
	h.play(2500 * time.Millisecond)
	total, _ := h.audioMS()
	if total != 3000 {
		t.Errorf("after resuming the caller heard %d ms in all, want all 3000 (nothing lost)", total)
	}
	if len(h.model.ofType("conversation.item.truncate")) != 0 || len(h.model.ofType("response.cancel")) != 0 {
		t.Errorf("a false barge-in sent %v", h.model.sent)
	}
	if h.c.falseBargeIns != 1 || h.c.bargeIns != 0 {
		t.Errorf("false %d, real %d", h.c.falseBargeIns, h.c.bargeIns)
	}
}

func TestPauseModeConvertsToFlush(t *testing.T) {
	h := newHarness(t, pauseMode)
	h.respond("resp_1", "item_1", 3000)
	h.play(800 * time.Millisecond)
	sentMS, _ := h.audioMS()
	h.speechStarted(4000)
	for i := 0; i < 25; i++ { // the caller keeps talking: 20 ms at a time
		h.caller(20, true)
		h.play(20 * time.Millisecond)
	}
	if h.c.bargeIns != 1 {
		t.Fatalf("400 ms of speech did not interrupt (paused %v)", h.c.barge.paused)
	}
	tr := h.model.ofType("conversation.item.truncate")
	if len(tr) != 1 || num(tr[0]["audio_end_ms"]) != sentMS {
		t.Fatalf("truncates %v, the caller was sent %d ms", tr, sentMS)
	}
	if n := len(h.model.ofType("response.cancel")); n != 1 {
		t.Fatalf("%d response.cancel: in pause mode the bridge must cancel", n)
	}
	// The cancelled response winds down; the caller's turn gets an answer.
	h.done("resp_1", "cancelled")
	if n := len(h.model.ofType("response.create")); n != 1 {
		t.Errorf("%d response.create after the cancel, want 1", n)
	}
}

func TestPauseModeServerAnswersItself(t *testing.T) {
	h := newHarness(t, pauseMode)
	h.respond("resp_1", "item_1", 3000)
	h.play(500 * time.Millisecond)
	h.speechStarted(4000)
	h.caller(500, true)
	h.play(60 * time.Millisecond)
	h.respond("resp_2", "item_2", 100) // the server answered the new turn on its own
	h.done("resp_1", "cancelled")
	if n := len(h.model.ofType("response.create")); n != 0 {
		t.Errorf("asked for a second answer although the server gave one")
	}
}

func TestPauseModeResumesWithoutADecision(t *testing.T) {
	h := newHarness(t, pauseMode)
	h.respond("resp_1", "item_1", 3000)
	h.play(500 * time.Millisecond)
	h.speechStarted(4000) // and then nothing: no speech, no speech_stopped
	h.caller(2000, false)
	h.play(2100 * time.Millisecond)
	if h.c.barge.paused || h.c.falseBargeIns != 1 {
		t.Fatalf("still paused %v / false barge-ins %d after resume_after", h.c.barge.paused, h.c.falseBargeIns)
	}
	h.play(3000 * time.Millisecond)
	if total, _ := h.audioMS(); total != 3000 {
		t.Errorf("heard %d ms, want 3000", total)
	}
}

func TestLocalVADInterruptsAndCancels(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.BargeIn.LocalVAD = true })
	h.respond("resp_1", "item_1", 3000)
	h.play(600 * time.Millisecond)
	h.caller(200, true)
	select {
	case <-h.c.localSpeech:
		h.c.onLocalSpeech()
	default:
		t.Fatal("the local VAD did not trigger on 200 ms of loud speech")
	}
	if h.c.bargeIns != 1 || len(h.model.ofType("response.cancel")) != 1 {
		t.Errorf("local barge-in: %d barge-ins, cancels %v", h.c.bargeIns, h.model.ofType("response.cancel"))
	}
	// The model's own speech_started follows: nothing more to do.
	h.speechStarted(3000)
	if h.c.bargeIns != 1 || len(h.model.ofType("conversation.item.truncate")) != 1 {
		t.Error("the server's event after a local barge-in did it again")
	}
}

func TestLocalVADIgnoresQuietAndShortSounds(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.BargeIn.LocalVAD = true })
	h.caller(1000, false)
	h.caller(60, true) // a click, shorter than the 120 ms minimum
	h.caller(400, false)
	select {
	case <-h.c.localSpeech:
		t.Fatal("triggered on silence or a click")
	default:
	}
}

func TestBargeInIsLoggedWithItsFigures(t *testing.T) {
	var buf bytes.Buffer
	h := newHarness(t, nil)
	h.c.log = zerolog.New(&buf)
	h.respond("resp_1", "item_1", 2000)
	h.play(500 * time.Millisecond)
	h.speechStarted(3000)
	line := buf.String()
	for _, want := range []string{`"message":"barge-in: bot stopped"`, `"stop_latency":`, `"audio_end_ms":500`, `"discarded_ms":1500`, `"received_ms":2000`} {
		if !strings.Contains(line, want) {
			t.Errorf("log lacks %s: %s", want, line)
		}
	}
}
