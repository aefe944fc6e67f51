package bridge

import (
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
