package media

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/clock"
)

// One worker serves two calls due at the same instant: both frames leave
// before either socket's receive work is done, so a frame never waits for
// another call's audio processing. Audio queued before Start is not sent
// (the call is not answered yet); after it, a talkspurt starts at once.
func TestEngineSendsBeforeReceiveWork(t *testing.T) {
	clk := clock.NewFake(time.Unix(1000, 0)) // on the pacing grid
	e := NewEngine(clk, 1)
	defer e.Close()
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	var mu sync.Mutex
	var events []string
	note := func(s string) { mu.Lock(); events = append(events, s); mu.Unlock() }
	seen := func() string { mu.Lock(); defer mu.Unlock(); return strings.Join(events, " ") }
	session := func(name string) (*Session, *net.UDPConn) {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		s := NewSession(conn, Config{Peer: Peer{Remote: peer.LocalAddr().(*net.UDPAddr).AddrPort(), Codec: PCMU},
			Clock: clk, Engine: e, Log: zerolog.Nop(),
			OnAudio: func([]int16, int) { note(name + ":heard") },
			Output:  func([]byte) error { note(name + ":sent"); return nil }})
		return s, conn
	}
	a, connA := session("a")
	b, _ := session("b")
	toA := connA.LocalAddr().(*net.UDPAddr)
	b.Enqueue(ItemRef{ItemID: "early"}, make([]int16, PCMU.FrameSamples), 8000)
	if got := seen(); got != "" {
		t.Fatalf("sent before Start: %s", got)
	}
	peer.WriteToUDP(packet(1, 0, 7, 0x80, 160), toA)
	time.Sleep(20 * time.Millisecond) // it waits on a's socket

	stopA, err := a.Start()
	if err != nil {
		t.Fatal(err)
	}
	stopB, err := b.Start()
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return strings.Count(seen(), ":") >= 3 })
	// The first pass may serve a alone (b joined a moment later): a's frame
	// still precedes a's receive work, and b's frame follows.
	if got := seen(); got != "a:sent b:sent a:heard" && got != "a:sent a:heard b:sent" {
		t.Errorf("first passes: %s", got)
	}

	// The next frame time: both are due; a has a packet waiting.
	mu.Lock()
	events = nil
	mu.Unlock()
	peer.WriteToUDP(packet(2, 0, 7, 0x80, 160), toA)
	time.Sleep(20 * time.Millisecond)
	waitUntil(t, func() bool { return clk.Armed() > 0 }) // the worker waits for its next instant
	clk.Advance(frameDuration)
	waitUntil(t, func() bool { return strings.Count(seen(), ":") >= 3 })
	if got := seen(); got != "a:sent b:sent a:heard" && got != "b:sent a:sent a:heard" {
		t.Errorf("a pass with both due: %s, want both frames before a's receive work", got)
	}

	// Audio for a quiet bot leaves at once, not at the next instant.
	mu.Lock()
	events = nil
	mu.Unlock()
	a.Enqueue(ItemRef{ItemID: "now"}, make([]int16, 2*PCMU.FrameSamples), 8000)
	if got := seen(); got != "a:sent" {
		t.Errorf("talkspurt start: %q, want a's frame at once", got)
	}
	stopA()
	stopB()
	if n := len(e.workers[0].sessions); n != 0 {
		t.Errorf("%d sessions left on the worker", n)
	}
}

func waitUntil(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

// A pass that runs past the next grid instant is followed by the next pass
// at once: the calls due at that instant are served late by the overrun
// only, not held for the instant after it.
func TestEngineOverrunServesNextInstantAtOnce(t *testing.T) {
	g0 := time.Unix(1000, 0) // on the pacing grid
	clk := clock.NewFake(g0)
	e := NewEngine(clk, 1)
	defer e.Close()
	peer := netip.MustParseAddrPort("127.0.0.1:9")
	var mu sync.Mutex
	var sentAt = map[string][]time.Duration{}
	slow := false
	session := func(name string) *Session {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return NewSession(conn, Config{Peer: Peer{Remote: peer, Codec: PCMU}, Clock: clk, Engine: e, Log: zerolog.Nop(),
			Output: func([]byte) error {
				mu.Lock()
				sentAt[name] = append(sentAt[name], clk.Now().Sub(g0))
				stall := slow && name == "a"
				mu.Unlock()
				if stall {
					clk.Advance(2500 * time.Microsecond) // this send is slow: the pass overruns
				}
				return nil
			}})
	}
	sent := func(name string) []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Duration(nil), sentAt[name]...)
	}
	a, b := session("a"), session("b")
	stopA, err := a.Start() // a's frames are due at g0 + n·20 ms
	if err != nil {
		t.Fatal(err)
	}
	defer stopA()
	waitUntil(t, func() bool { return len(sent("a")) == 1 && clk.Armed() > 0 })
	clk.Advance(pacingGrid)
	waitUntil(t, func() bool { return clk.Armed() > 0 })
	stopB, err := b.Start() // b's at g0 + 2 ms + n·20 ms
	if err != nil {
		t.Fatal(err)
	}
	defer stopB()
	waitUntil(t, func() bool { return len(sent("b")) == 1 && clk.Armed() > 0 })
	mu.Lock()
	slow = true
	mu.Unlock()
	clk.Advance(frameDuration - pacingGrid) // g0 + 20 ms: a is due, and its send takes 2.5 ms
	waitUntil(t, func() bool { return len(sent("b")) == 2 })
	want := frameDuration + pacingGrid + 500*time.Microsecond
	if got := sent("b")[1]; got != want {
		t.Errorf("b's second frame left at %v, want %v (at once after the overrun)", got, want)
	}
}
