package clock

import (
	"testing"
	"time"
)

func TestFakeFiresInDeadlineOrder(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	a := f.NewTimer(30 * time.Millisecond)
	b := f.NewTimer(10 * time.Millisecond)
	f.Advance(5 * time.Millisecond)
	select {
	case <-b.C():
		t.Fatal("fired early")
	default:
	}
	f.Advance(30 * time.Millisecond)
	if got := <-b.C(); !got.Equal(time.Unix(0, 0).Add(10 * time.Millisecond)) {
		t.Errorf("b fired at %v", got)
	}
	if got := <-a.C(); !got.Equal(time.Unix(0, 0).Add(30 * time.Millisecond)) {
		t.Errorf("a fired at %v", got)
	}
	if f.Armed() != 0 {
		t.Error("timers still armed")
	}
	if !f.Now().Equal(time.Unix(0, 0).Add(35 * time.Millisecond)) {
		t.Errorf("now %v", f.Now())
	}
}

func TestFakeStopAndReset(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	tm := f.NewTimer(time.Second)
	if !tm.Stop() || tm.Stop() {
		t.Error("Stop should report whether the timer was armed")
	}
	f.Advance(2 * time.Second)
	select {
	case <-tm.C():
		t.Fatal("a stopped timer fired")
	default:
	}
	tm.Reset(time.Second)
	f.Advance(time.Second)
	<-tm.C()
}

// A timer set for now or the past fires at once, as a real one does: code
// that catches up after running late must not need an Advance to go on.
func TestFakeDueTimerFiresAtOnce(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	for _, tm := range []Timer{f.NewTimer(0), f.NewTimer(-time.Second)} {
		select {
		case got := <-tm.C():
			if got.After(f.Now()) {
				t.Errorf("fired with %v, after now", got)
			}
		default:
			t.Error("a timer already due did not fire")
		}
	}
	tm := f.NewTimer(time.Second)
	tm.Stop()
	tm.Reset(0)
	select {
	case <-tm.C():
	default:
		t.Error("Reset(0) did not fire")
	}
	if f.Armed() != 0 {
		t.Errorf("%d timers armed", f.Armed())
	}
}

func TestRealClock(t *testing.T) {
	var c Clock = Real{}
	tm := c.NewTimer(time.Millisecond)
	<-tm.C()
	if c.Now().IsZero() {
		t.Error("zero time")
	}
}
