package media

import (
	"testing"
	"time"
)

// The alarm is registered with the runtime's poller (or it could not end
// the poller's sleep), arms without allocating, ignores waits of no time
// (a zero timerfd value would disarm it, not fire it), and fails once
// closed.
func TestGridAlarm(t *testing.T) {
	a, err := newGridAlarm()
	if err != nil {
		t.Fatal(err)
	}
	if !pollerWatches(t, int(a.fd)) {
		t.Fatal("the alarm's timerfd is not registered with the poller")
	}
	for _, d := range []time.Duration{0, -time.Second, time.Millisecond} {
		if err := a.set(d); err != nil {
			t.Fatalf("set(%v): %v", d, err)
		}
	}
	if allocs := testing.AllocsPerRun(20, func() { _ = a.set(100 * time.Microsecond) }); allocs != 0 {
		t.Errorf("%v allocations per arming", allocs)
	}
	// The expiry is an event: the descriptor becomes readable.
	_ = a.set(time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	buf := make([]byte, 8)
	if _, err := a.file.Read(buf); err != nil {
		t.Fatalf("no expiry to read: %v", err)
	}
	a.close()
	if err := a.set(time.Millisecond); err == nil {
		t.Error("a closed alarm armed without an error")
	}
}

// BenchmarkGridLateness is how late a worker of an otherwise idle process
// wakes for its grid instant on a Go timer, with the alarm and without
// ("late-µs": mean lateness per wake-up).
func BenchmarkGridLateness(b *testing.B) {
	for _, withAlarm := range []bool{true, false} {
		name := "go-timer"
		if withAlarm {
			name = "go-timer+alarm"
		}
		b.Run(name, func(b *testing.B) {
			var alarm *gridAlarm
			if withAlarm {
				a, err := newGridAlarm()
				if err != nil {
					b.Fatal(err)
				}
				defer a.close()
				alarm = a
			}
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			var late time.Duration
			for b.Loop() {
				now := time.Now()
				due := now.Truncate(pacingGrid).Add(pacingGrid)
				timer.Reset(due.Sub(now))
				if alarm != nil {
					_ = alarm.set(due.Sub(now))
				}
				<-timer.C
				late += time.Since(due)
			}
			b.ReportMetric(float64(late.Microseconds())/float64(b.N), "late-µs")
		})
	}
}
