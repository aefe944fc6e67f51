package cluster

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/voicebot/voicebot/api"
	"github.com/voicebot/voicebot/internal/testredis"
	"github.com/voicebot/voicebot/outcome"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeCall struct{ id string }

func (c fakeCall) ID() string    { return c.id }
func (c fakeCall) State() string { return "answered" }
func (c fakeCall) Hangup() error { return nil }

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// node starts an instance's node on a registry of its own; stop ends its
// Run (the heartbeats stop: an instance that died, when calls are left).
func node(t *testing.T, addr, name string, logs *syncBuf) (n *Node, calls *api.Registry, stop func()) {
	t.Helper()
	calls = api.NewRegistry()
	n = New(Config{Addr: addr, Instance: name, API: name + ":8080", TTL: time.Second, Heartbeat: 100 * time.Millisecond,
		Calls: calls, Log: zerolog.New(logs)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done; n.Close() }) }
	t.Cleanup(stop)
	return n, calls, stop
}

func waitFor(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ids(t *testing.T, n *Node) []string {
	t.Helper()
	calls, err := n.Calls(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range calls {
		out = append(out, c.ID)
	}
	return out
}

// A call on A is found and listed by B (not by A: A lists its own from its
// registry); once it ends, B finds it ended and lists it no more.
func TestCallsAreSeenByTheOtherInstance(t *testing.T) {
	r := testredis.Start(t)
	var logs syncBuf
	a, callsA, _ := node(t, r.Addr, "a", &logs)
	b, _, _ := node(t, r.Addr, "b", &logs)
	call := fakeCall{"call-1"}
	callsA.Add(call, api.CallInfo{Direction: "inbound", From: "1001", To: "bot"})
	waitFor(t, "B lists A's call", 5*time.Second, func() bool { return strings.Join(ids(t, b), ",") == "call-1" })
	if got := ids(t, a); len(got) != 0 {
		t.Errorf("A lists its own call from Redis: %v", got)
	}
	rem, ok, err := b.Find(context.Background(), "call-1")
	if err != nil || !ok || rem.Instance != "a" || rem.API != "a:8080" || rem.Info.From != "1001" || rem.Info.State != "answered" {
		t.Fatalf("B finds %+v %v %v", rem, ok, err)
	}
	if _, ok, _ := a.Find(context.Background(), "call-1"); ok {
		t.Error("A is told its own call is elsewhere")
	}
	if _, ok, err := b.Find(context.Background(), "no-such-call"); ok || err != nil {
		t.Errorf("an unknown call: %v %v", ok, err)
	}
	callsA.End(call, outcome.End{Outcome: outcome.APIHungUp})
	waitFor(t, "the end published", 5*time.Second, func() bool {
		rem, ok, _ := b.Find(context.Background(), "call-1")
		return ok && rem.Info.Ended != nil && rem.Info.End.Outcome == outcome.APIHungUp
	})
	if got := ids(t, b); len(got) != 0 {
		t.Errorf("B still lists the ended call: %v", got)
	}
}

// An instance that dies (its heartbeats stop, its calls left as they were)
// is forgotten with its calls within the TTL.
func TestADeadInstancesCallsExpire(t *testing.T) {
	r := testredis.Start(t)
	var logs syncBuf
	_, callsA, stopA := node(t, r.Addr, "a", &logs)
	b, _, _ := node(t, r.Addr, "b", &logs)
	callsA.Add(fakeCall{"call-2"}, api.CallInfo{Direction: "outbound", To: "+15550100"})
	waitFor(t, "B lists A's call", 5*time.Second, func() bool { return len(ids(t, b)) == 1 })
	stopA() // the call is still in A's registry: it is published as in progress, then nothing more
	if got := ids(t, b); len(got) != 1 {
		t.Fatalf("just after A stopped, B lists %v", got)
	}
	waitFor(t, "A's call to expire (TTL 1 s)", 5*time.Second, func() bool { return len(ids(t, b)) == 0 })
	if _, ok, _ := b.Find(context.Background(), "call-2"); ok {
		t.Error("B still finds the dead instance's call")
	}
}

// A Redis that goes away is logged once; the instance goes on, and takes
// up publishing when it is back.
func TestRedisOutage(t *testing.T) {
	r := testredis.Start(t)
	var logs syncBuf
	_, callsA, _ := node(t, r.Addr, "a", &logs)
	b, _, _ := node(t, r.Addr, "b", &logs)
	r.Stop()
	callsA.Add(fakeCall{"call-3"}, api.CallInfo{Direction: "inbound"})
	if _, err := b.Calls(context.Background()); err == nil {
		t.Error("Calls without Redis: no error")
	}
	waitFor(t, "the outage logged by both", 5*time.Second, func() bool { return strings.Count(logs.String(), "registry is unavailable") >= 2 })
	time.Sleep(300 * time.Millisecond) // several heartbeats fail meanwhile
	if n := strings.Count(logs.String(), "registry is unavailable"); n != 2 {
		t.Errorf("the outage logged %d times by two instances, want once each:\n%s", n, logs.String())
	}
	r.Restart()
	waitFor(t, "B lists A's call once Redis is back", 5*time.Second, func() bool {
		got, err := b.Calls(context.Background())
		return err == nil && len(got) == 1
	})
	waitFor(t, "the return logged", 5*time.Second, func() bool { return strings.Contains(logs.String(), "registry is back") })
}
