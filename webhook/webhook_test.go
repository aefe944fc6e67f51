package webhook

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/voicebot/voicebot/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// receiver answers each delivery with the next status of script (the last
// one repeats) and keeps what it got.
type receiver struct {
	mu     sync.Mutex
	script []int
	got    [][]byte
	sigs   []string
	stamps []string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.got = append(r.got, body)
	r.sigs = append(r.sigs, req.Header.Get(SignatureHeader))
	r.stamps = append(r.stamps, req.Header.Get(TimestampHeader))
	code := r.script[min(len(r.got), len(r.script))-1]
	r.mu.Unlock()
	w.WriteHeader(code)
}

func (r *receiver) deliveries() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.got) }

type counts struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counts) add(result string) { c.mu.Lock(); c.m[result]++; c.mu.Unlock() }
func (c *counts) get(result string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[result]
}

func newSender(t *testing.T, url string, clk clock.Clock, retries int) (*Sender, *counts) {
	c := &counts{m: map[string]int{}}
	s := New(Config{URL: url, Secret: "hook-secret", Retries: retries, Backoff: time.Second, Timeout: time.Second, Clock: clk,
		Counted: c.add, Log: zerolog.Nop()})
	return s, c
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// A delivery carries the call's summary with exactly the keys receivers
// read, signed with the secret.
func TestDeliverySignedWithItsKeys(t *testing.T) {
	rcv := &receiver{script: []int{200}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	s, c := newSender(t, srv.URL, clock.Real{}, 3)
	at := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	s.Send(CallEnded{CallID: "c1", Direction: "inbound", Caller: "+15550100", Called: "800", Agent: "default",
		Variables: map[string]string{"order": "4711"}, StartedAt: at, AnsweredAt: &at, EndedAt: at.Add(time.Minute), DurationMS: 60000,
		Outcome: "caller_hung_up", Transcript: []Turn{{Role: "user", Text: "hi", At: at}}, ToolCalls: 1})
	s.Close(context.Background())
	if c.get("delivered") != 1 || rcv.deliveries() != 1 {
		t.Fatalf("delivered %d, received %d", c.get("delivered"), rcv.deliveries())
	}
	body := rcv.got[0]
	if rcv.sigs[0] != Sign([]byte("hook-secret"), body) {
		t.Errorf("signature %q does not sign the body", rcv.sigs[0])
	}
	if ts, err := strconv.ParseInt(rcv.stamps[0], 10, 64); err != nil || time.Since(time.Unix(ts, 0)) > time.Minute {
		t.Errorf("timestamp header %q", rcv.stamps[0])
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"call_id", "direction", "caller", "called", "agent", "variables", "started_at", "answered_at", "ended_at",
		"duration_ms", "outcome", "sip_code", "detail", "transcript", "tool_calls", "barge_ins", "recording"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, body)
		}
	}
	if len(m) != 17 {
		t.Errorf("%d keys, want exactly the 17 of the interface: %s", len(m), body)
	}
}

// 5xx answers are retried with a doubling backoff (on the injected clock);
// a 4xx is the receiver's final word.
func TestRetriesWithBackoff(t *testing.T) {
	rcv := &receiver{script: []int{503, 500, 200}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	s, c := newSender(t, srv.URL, clk, 3)
	s.Send(CallEnded{CallID: "c1"})
	waitUntil(t, "the first attempt", func() bool { return rcv.deliveries() == 1 && clk.Armed() == 1 })
	clk.Advance(999 * time.Millisecond)
	if rcv.deliveries() != 1 {
		t.Fatal("retried before the backoff")
	}
	clk.Advance(time.Millisecond)
	waitUntil(t, "the second attempt", func() bool { return rcv.deliveries() == 2 && clk.Armed() == 1 })
	clk.Advance(time.Second)
	time.Sleep(20 * time.Millisecond)
	if rcv.deliveries() != 2 {
		t.Fatal("the second retry did not wait twice as long")
	}
	clk.Advance(time.Second)
	waitUntil(t, "the delivery", func() bool { return c.get("delivered") == 1 })
	s.Close(context.Background())

	rcv4 := &receiver{script: []int{400}}
	srv4 := httptest.NewServer(rcv4)
	defer srv4.Close()
	s4, c4 := newSender(t, srv4.URL, clk, 3)
	s4.Send(CallEnded{CallID: "c2"})
	s4.Close(context.Background())
	if rcv4.deliveries() != 1 || c4.get("failed") != 1 {
		t.Errorf("a 400 was tried %d times, %d failures counted", rcv4.deliveries(), c4.get("failed"))
	}
}

// Send never blocks a call's teardown, even with the receiver stuck; a
// stop waits for the queue until its deadline, then gives up what is left.
func TestNeverBlocksAndStopsInTime(t *testing.T) {
	var stuck atomic.Bool
	stuck.Store(true)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if stuck.Load() {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(200)
	}))
	defer srv.Close()
	defer close(release)
	s, c := newSender(t, srv.URL, clock.Real{}, 0)
	start := time.Now()
	for i := 0; i < queueSize+workers+10; i++ {
		s.Send(CallEnded{CallID: "c"})
	}
	if time.Since(start) > time.Second {
		t.Fatalf("Send blocked: %s", time.Since(start))
	}
	if c.get("dropped") == 0 {
		t.Error("a full queue dropped nothing")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	s.Close(ctx) // the stuck attempts end with their own timeout (1 s)
	if c.get("failed") == 0 {
		t.Error("the undelivered were not counted")
	}
}
