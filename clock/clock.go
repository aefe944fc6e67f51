// Package clock lets time-dependent logic (pacing, timeouts, barge-in) run on
// the wall clock in production and on a hand-driven fake clock in unit tests.
package clock

import "time"

// Clock is the part of package time that call logic is allowed to use.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once, d after now.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer whose channel receives the firing time.
type Timer interface {
	C() <-chan time.Time
	// Reset re-arms the timer to fire d after now. The caller must have
	// stopped or drained it first, as with time.Timer.
	Reset(d time.Duration)
	Stop() bool
}

// Real is the wall clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// NewTimer wraps time.NewTimer.
func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time   { return r.t.C }
func (r realTimer) Reset(d time.Duration) { r.t.Reset(d) }
func (r realTimer) Stop() bool            { return r.t.Stop() }
