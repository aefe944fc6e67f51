package media

import (
	"testing"
	"time"
)

// The grid timer sleeps at least as long as asked, returns at once for no
// wait, allocates nothing, and fails rather than hangs once closed.
func TestGridTimer(t *testing.T) {
	g, err := newGridTimer()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{time.Millisecond, 3 * time.Millisecond, 50 * time.Microsecond} {
		start := time.Now()
		if err := g.sleep(d); err != nil {
			t.Fatal(err)
		}
		if slept := time.Since(start); slept < d {
			t.Errorf("asked for %v, slept %v", d, slept)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = g.sleep(0)
		_ = g.sleep(-time.Second) // a pass that overran its instant
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a sleep of no time did not return: a zero timerfd value disarms it")
	}
	if allocs := testing.AllocsPerRun(20, func() { _ = g.sleep(100 * time.Microsecond) }); allocs != 0 {
		t.Errorf("%v allocations per sleep", allocs)
	}
	g.close()
	if err := g.sleep(time.Millisecond); err == nil {
		t.Error("a closed grid timer slept without an error")
	}
}

// BenchmarkGridLateness is how late a worker with nothing else to wake the
// process wakes for a grid instant, on the timerfd and on a Go timer (the
// figure is mean lateness per wake-up, "late-µs").
func BenchmarkGridLateness(b *testing.B) {
	b.Run("timerfd", func(b *testing.B) {
		g, err := newGridTimer()
		if err != nil {
			b.Fatal(err)
		}
		defer g.close()
		benchLateness(b, func(d time.Duration) { _ = g.sleep(d) })
	})
	b.Run("go-timer", func(b *testing.B) {
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		benchLateness(b, func(d time.Duration) { timer.Reset(d); <-timer.C })
	})
}

func benchLateness(b *testing.B, sleep func(time.Duration)) {
	var late time.Duration
	for b.Loop() {
		now := time.Now()
		due := now.Truncate(pacingGrid).Add(pacingGrid)
		sleep(due.Sub(now))
		late += time.Since(due)
	}
	b.ReportMetric(float64(late.Microseconds())/float64(b.N), "late-µs")
}
