package clock

import (
	"sort"
	"sync"
	"time"
)

// Fake is a clock that moves only when Advance is called. Timers fire, in
// deadline order, as Advance passes their deadlines.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

// NewFake returns a fake clock set to start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer returns a timer driven by Advance.
func (f *Fake) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{clock: f, ch: make(chan time.Time, 1)}
	f.timers = append(f.timers, t)
	t.arm(d)
	return t
}

// Advance moves the clock forward by d, firing every timer whose deadline is
// reached on the way, each with its own deadline as the time sent.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	end := f.now.Add(d)
	for {
		next := f.nextDue(end)
		if next == nil {
			break
		}
		f.now = next.deadline
		next.armed = false
		select {
		case next.ch <- next.deadline:
		default:
		}
	}
	f.now = end
	f.mu.Unlock()
}

// Set moves the clock to t (which must not be in the past) firing timers on the way.
func (f *Fake) Set(t time.Time) { f.Advance(t.Sub(f.Now())) }

// Armed reports how many timers are waiting to fire.
func (f *Fake) Armed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.timers {
		if t.armed {
			n++
		}
	}
	return n
}

func (f *Fake) nextDue(end time.Time) *fakeTimer {
	due := make([]*fakeTimer, 0, 4)
	for _, t := range f.timers {
		if t.armed && !t.deadline.After(end) {
			due = append(due, t)
		}
	}
	if len(due) == 0 {
		return nil
	}
	sort.Slice(due, func(i, j int) bool { return due[i].deadline.Before(due[j].deadline) })
	return due[0]
}

type fakeTimer struct {
	clock    *Fake
	ch       chan time.Time
	deadline time.Time
	armed    bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Reset(d time.Duration) {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	t.arm(d)
}

// arm sets the deadline d from now; a timer already due fires at once, as
// a real one does, without waiting for an Advance. Caller holds the lock.
func (t *fakeTimer) arm(d time.Duration) {
	t.deadline = t.clock.now.Add(d)
	t.armed = d > 0
	if !t.armed {
		select {
		case t.ch <- t.deadline:
		default:
		}
	}
}

func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := t.armed
	t.armed = false
	return was
}
