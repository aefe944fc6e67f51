package bridge

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A session is not replaced between the caller's turn and its answer, nor
// while an answer is being made: the new session would not know to answer.
func TestNotQuietWhileAnAnswerIsOwed(t *testing.T) {
	h := newHarness(t, nil)
	if !h.c.quiet() {
		t.Fatal("an idle call is not quiet")
	}
	h.speechStarted(0)
	h.speechStopped(1200)
	if h.c.quiet() {
		t.Error("quiet right after the caller's turn, before any answer")
	}
	h.respond("resp_1", "item_1", 300)
	h.play(400 * time.Millisecond)
	if h.c.quiet() {
		t.Error("quiet while the answer's response is still open")
	}
	h.done("resp_1", "completed")
	h.play(200 * time.Millisecond)
	if !h.c.quiet() {
		t.Error("not quiet once the answer was made and played")
	}
	// A model that never answers is not waited for forever.
	h.speechStarted(2000)
	h.speechStopped(2600)
	h.play(answerWait + 20*time.Millisecond)
	if !h.c.quiet() {
		t.Error("still waiting for an answer that never came")
	}
}

// When the service expires the session while the bot speaks, the loop
// may read the old session's close first, or the replacement (dialled at
// session_expired) may be ready first: it takes whichever comes. Either
// way what is queued of the bot's answer is ours and must play on, and
// the new session must not be asked to answer again.
func TestExpiredSessionEitherOrderLetsTheAnswerFinish(t *testing.T) {
	for _, order := range []string{"close first", "replacement first"} {
		t.Run(order, func(t *testing.T) {
			h := newHarness(t, nil)
			old, next := newFakeConn(h), newFakeConn(h)
			h.c.conn = old
			h.c.setModel(old)
			h.respond("resp_1", "item_1", 1000)
			h.done("resp_1", "completed")
			h.play(200 * time.Millisecond)
			h.event(sessionExpired)
			h.c.sess.ready = next
			if order == "close first" {
				if reason, ok := h.c.sessionEnded(context.Background(), errors.New("closed")); !ok {
					t.Fatalf("the call ended: %s", reason)
				}
			} else {
				h.c.maybeRollover()
			}
			if h.c.conn != next {
				t.Fatal("the replacement did not take over")
			}
			h.play(time.Second)
			if ms, _ := h.audioMS(); ms < 1000 {
				t.Errorf("the caller heard %d ms of the 1000 ms answer", ms)
			}
			if n := len(next.ofType("response.create")); n != 0 {
				t.Errorf("the new session was asked for %d responses: the bot answers again", n)
			}
		})
	}
}
