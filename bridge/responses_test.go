package bridge

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/realtime"
)

// doneTagged ends a response whose request the metadata names, as the
// service echoes it.
func (h *harness) doneTagged(resp, status, request string) {
	meta := "null"
	if request != "" {
		meta = `{"` + requestTag + `":"` + request + `"}`
	}
	details := `null`
	if status == "failed" {
		details = `{"type":"failed","error":{"type":"server_error","code":"internal_error"}}`
	}
	h.event(`{"type":"response.done","response":{"id":"` + resp + `","status":"` + status + `","status_details":` + details +
		`,"output":[],"metadata":` + meta + `}}`)
}

// lastRequest is the event id and instructions of the last response.create.
func (h *harness) lastRequest() (string, string) {
	creates := h.model.ofType("response.create")
	if len(creates) == 0 {
		h.t.Fatal("no response.create")
	}
	last := creates[len(creates)-1]
	in := ""
	if r, ok := last["response"].(map[string]any); ok {
		in, _ = r["instructions"].(string)
	}
	return last["event_id"].(string), in
}

// A prompted response carries the agent's instructions with the prompt:
// response.instructions replace the session's for that response.
func TestPromptedResponseKeepsTheAgentsInstructions(t *testing.T) {
	h := newProfileHarness(t, nil, func(p *Profile) {
		p.Session.Instructions = "You are ACME's agent. Speak Spanish."
		p.Greeting, p.GreetingPrompt = true, "Greet the caller."
	})
	h.c.greet()
	id, in := h.lastRequest()
	if in != "You are ACME's agent. Speak Spanish.\n\nGreet the caller." {
		t.Errorf("greeting instructions %q", in)
	}
	meta := h.model.ofType("response.create")[0]["response"].(map[string]any)["metadata"].(map[string]any)
	if meta[requestTag] != id {
		t.Errorf("metadata %v, want the request's event id %s", meta, id)
	}
	// Plain answers keep the session's as they are.
	h.c.request("answer_", "")
	if _, in := h.lastRequest(); in != "" {
		t.Errorf("a plain answer replaced the instructions: %q", in)
	}
}

// A failed response is asked for again once, with the same instructions;
// when that fails too the call is given up (the loop plays the apology),
// and nothing more is asked: a model that fails forever cannot make the
// call loop.
func TestFailedResponseRetriedOnceThenGivenUp(t *testing.T) {
	h := newProfileHarness(t, nil, func(p *Profile) {
		p.Session.Instructions = "Be ACME."
		p.Greeting, p.GreetingPrompt = true, "Greet the caller."
	})
	h.c.greet()
	first, in := h.lastRequest()
	h.created("resp_1")
	h.doneTagged("resp_1", "failed", first)
	retry, again := h.lastRequest()
	if !strings.HasPrefix(retry, "retry_") || again != in {
		t.Fatalf("retry %s with %q, want the greeting's %q", retry, again, in)
	}
	if h.c.resp.givenUp {
		t.Fatal("given up after one failure")
	}
	for i := 0; i < 5; i++ { // the model goes on failing whatever it is asked
		h.created("resp_x")
		id, _ := h.lastRequest()
		h.doneTagged("resp_x", "failed", id)
	}
	if !h.c.resp.givenUp {
		t.Fatal("not given up after the retry failed")
	}
	if n := len(h.model.ofType("response.create")); n != 2 {
		t.Errorf("%d response.create, want the greeting and one retry", n)
	}
	if len(h.c.resp.pending) != 0 {
		t.Errorf("requests still pending: %v", h.c.resp.pending)
	}
}

// A failure of the server's own answer (its VAD's response, untagged) is
// retried with a plain response.create, which answers the caller's turn.
// A completed response in between starts the count again.
func TestFailedServerResponseIsAnsweredAgain(t *testing.T) {
	h := newHarness(t, nil)
	h.created("resp_1")
	h.doneTagged("resp_1", "failed", "")
	id, in := h.lastRequest()
	if !strings.HasPrefix(id, "retry_") || in != "" {
		t.Fatalf("retry %s %q", id, in)
	}
	h.respond("resp_2", "item_2", 200)
	h.doneTagged("resp_2", "completed", id)
	h.created("resp_3")
	h.doneTagged("resp_3", "failed", "")
	if h.c.resp.givenUp || len(h.model.ofType("response.create")) != 2 {
		t.Errorf("a failure after a success is retried: given up %v, %d creates", h.c.resp.givenUp, len(h.model.ofType("response.create")))
	}
	// Cancelled responses (barge-in) and incomplete ones that spoke are
	// not failures.
	h.respond("resp_4", "item_4", 200)
	h.doneTagged("resp_4", "incomplete", "")
	h.created("resp_5")
	h.doneTagged("resp_5", "cancelled", "")
	if n := len(h.model.ofType("response.create")); n != 2 {
		t.Errorf("%d response.create after a spoken incomplete and a cancelled response, want 2", n)
	}
}

// A goodbye that fails is asked for again, and the call waits for the
// retry to be said before it ends.
func TestFailedGoodbyeIsSaidBeforeTheEnd(t *testing.T) {
	h := newHarness(t, nil)
	h.c.wrapUp(endMaxDuration, "Say goodbye.")
	goodbye, _ := h.lastRequest()
	h.created("resp_1")
	h.doneTagged("resp_1", "failed", goodbye)
	h.play(500 * time.Millisecond)
	if h.ended != "" {
		t.Fatalf("ended (%s) without a goodbye", h.ended)
	}
	retry, _ := h.lastRequest()
	h.respond("resp_2", "item_2", 600)
	h.doneTagged("resp_2", "completed", retry)
	h.play(1500 * time.Millisecond)
	if h.ended != endMaxDuration {
		t.Fatalf("ended %q", h.ended)
	}
	if ms, _ := h.audioMS(); ms < 600 {
		t.Errorf("the caller heard %d ms of the 600 ms goodbye", ms)
	}
}

// The end of an answer is played with it: the resampler's last 4.5 ms
// are flushed when the answer's audio is done, not left for the next.
func TestAnswerEndsWithItsLastMilliseconds(t *testing.T) {
	h := newHarness(t, nil)
	h.respond("resp_1", "item_1", 400)
	h.event(`{"type":"response.output_audio.done","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0}`)
	h.done("resp_1", "completed")
	h.play(time.Second)
	played, _ := h.c.media.Played("item_1")
	// 400 ms at 8 kHz, and the filter's 35.83 samples of delay.
	if want := 3200 + 35; played.SentSamples < want {
		t.Errorf("%d samples of the answer played, want %d and more", played.SentSamples, want)
	}
}

// semantic_vad decides the end of a turn by meaning: it has no prefix
// padding or silence duration, and nothing of server_vad's is taken off
// the speech's length or the response latency.
func TestSemanticVADHasNoPaddingToSubtract(t *testing.T) {
	h := newProfileHarness(t, pauseMode, func(p *Profile) { p.Session.TurnDetection.Type = "semantic_vad" })
	h.respond("resp_1", "item_1", 3000)
	h.play(500 * time.Millisecond)
	h.speechStarted(4000)
	if h.c.barge.onsetMS != 4000 {
		t.Errorf("onset %d ms: server_vad's prefix padding was added", h.c.barge.onsetMS)
	}
	h.speechStopped(4700) // 700 ms of speech: a real barge-in
	if h.c.turnEndedMS != 0 {
		t.Errorf("response latency counts %d ms of silence the model did not wait", h.c.turnEndedMS)
	}
	if h.c.bargeIns != 1 || h.c.falseBargeIns != 0 {
		t.Errorf("700 ms of speech: %d barge-ins, %d false (server_vad's padding subtracted?)", h.c.bargeIns, h.c.falseBargeIns)
	}
	if p, s := (&realtime.TurnDetection{Type: "server_vad", PrefixPaddingMS: 300, SilenceDurationMS: 500}).PaddingMS(); p != 300 || s != 500 {
		t.Errorf("server_vad padding %d/%d", p, s)
	}
}

// fakeConn is a model session the call can switch to.
type fakeConn struct {
	*fakeModel
	events chan realtime.ServerEvent
	closed bool
}

func newFakeConn(h *harness) *fakeConn {
	return &fakeConn{fakeModel: &fakeModel{recycler: newRecycler(), t: h.t, instructions: h.model.instructions},
		events: make(chan realtime.ServerEvent)}
}

func (f *fakeConn) Events() <-chan realtime.ServerEvent { return f.events }
func (f *fakeConn) Err() error                          { return nil }
func (f *fakeConn) Close() error                        { f.closed = true; return nil }

const sessionExpired = `{"type":"error","error":{"type":"invalid_request_error","code":"session_expired","message":"Your session hit the maximum duration of 60 minutes.","param":null,"event_id":null}}`

// session_expired while a planned replacement is ready: it takes over at
// once, and the call is done with the expiry (it used to stay marked
// expired and open a new session after every event).
func TestExpiredSessionWithAReplacementReady(t *testing.T) {
	h := newHarness(t, nil)
	old, next := newFakeConn(h), newFakeConn(h)
	h.c.conn = old
	h.c.setModel(old)
	h.c.sess.ready = next
	h.event(sessionExpired)
	if !h.c.sess.expired {
		t.Fatal("session_expired not recognised")
	}
	h.respond("resp_1", "item_1", 300) // the bot speaking: not quiet, but an expired session cannot wait
	h.c.maybeRollover()
	if h.c.conn != next || h.c.sess.expired || h.c.sess.dialing || h.c.sess.rollovers != 1 {
		t.Errorf("after the takeover: conn replaced %v, expired %v, dialing %v, rollovers %d",
			h.c.conn == next, h.c.sess.expired, h.c.sess.dialing, h.c.sess.rollovers)
	}
}

// The service expires the session while the bot speaks: what is queued
// plays on (it is ours already), the new session takes over, and the
// filler starts only if the queue runs dry before it comes.
func TestExpiredSessionLetsTheAnswerFinish(t *testing.T) {
	h := newHarness(t, nil)
	old, next := newFakeConn(h), newFakeConn(h)
	h.c.conn = old
	h.c.setModel(old)
	h.respond("resp_1", "item_1", 1000)
	h.play(200 * time.Millisecond)
	h.event(sessionExpired)
	h.c.sess.ready = next // dialled when session_expired arrived
	if reason, ok := h.c.sessionEnded(context.Background(), errors.New("closed")); !ok {
		t.Fatalf("the call ended: %s", reason)
	}
	if !old.closed || h.c.conn != next || h.c.sess.fillerOn {
		t.Errorf("old closed %v, new in use %v, filler %v", old.closed, h.c.conn == next, h.c.sess.fillerOn)
	}
	h.play(time.Second)
	if ms, _ := h.audioMS(); ms < 1000 {
		t.Errorf("the caller heard %d ms of the 1000 ms answer", ms)
	}
}

// A goodbye that fails twice ends the call with the apology; the caller is
// not transferred to the fallback target, which nobody asked for.
func TestFailedGoodbyeEndsWithoutTheFallbackTransfer(t *testing.T) {
	h := newProfileHarness(t, func(c *Config) { c.Resume.FallbackTarget = "operator" }, withTools(ToolTransfer))
	h.c.wrapUp(endMaxDuration, "Say goodbye.")
	for i := 0; i < 2; i++ {
		id, _ := h.lastRequest()
		h.created("resp_x")
		h.doneTagged("resp_x", "failed", id)
	}
	if !h.c.resp.givenUp {
		t.Fatal("not given up")
	}
	if reason := h.c.modelFailed(context.Background()); reason != endMaxDuration || len(h.call.transfers) != 0 {
		t.Errorf("ended %q, transfers %v", reason, h.call.transfers)
	}
	// Failing outside an ending, the fallback takes the caller.
	h2 := newProfileHarness(t, func(c *Config) { c.Resume.FallbackTarget = "operator" }, withTools(ToolTransfer))
	h2.c.resp.givenUp = true
	if reason := h2.c.modelFailed(context.Background()); reason != endTransferred || len(h2.call.transfers) != 1 {
		t.Errorf("ended %q, transfers %v", reason, h2.call.transfers)
	}
}

// No retry where it would do harm: a response that failed after it spoke
// (the caller would hear its start twice), or while the caller speaks
// (their new turn gets its own answer), or one the content filter stopped.
func TestFailuresNotRetried(t *testing.T) {
	h := newHarness(t, nil)
	h.respond("resp_1", "item_1", 200)
	h.doneTagged("resp_1", "failed", "")
	h.speechStarted(1000)
	h.created("resp_2")
	h.doneTagged("resp_2", "failed", "")
	h.speechStopped(2000)
	h.created("resp_3")
	h.event(`{"type":"response.done","response":{"id":"resp_3","status":"incomplete","status_details":{"type":"incomplete","reason":"content_filter"},"output":[]}}`)
	if n := len(h.model.ofType("response.create")); n != 0 || h.c.resp.givenUp {
		t.Errorf("%d retries, given up %v", n, h.c.resp.givenUp)
	}
}

// A server that does not know response metadata (an old preview API
// version refuses the parameter) gets the request again without it, and
// every later one untagged.
func TestMetadataRefusedRequestsGoUntagged(t *testing.T) {
	h := newHarness(t, nil)
	h.c.request("greeting_", "Greet.")
	id, _ := h.lastRequest()
	h.event(`{"type":"error","error":{"type":"invalid_request_error","code":"unknown_parameter","message":"Unknown parameter: 'response.metadata'.","param":"response.metadata","event_id":"` + id + `"}}`)
	creates := h.model.ofType("response.create")
	if len(creates) != 2 {
		t.Fatalf("%d response.create", len(creates))
	}
	again := creates[1]["response"].(map[string]any)
	if again["metadata"] != nil || !strings.HasSuffix(again["instructions"].(string), "Greet.") {
		t.Errorf("the request again: %v", again)
	}
	h.c.request("answer_", "")
	if last := h.model.ofType("response.create")[2]; last["response"] != nil {
		t.Errorf("a later request still tagged: %v", last)
	}
}
