package sip

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/voicebot/voicebot/clock"
)

func TestTimerNegotiation(t *testing.T) {
	now := time.Unix(1000, 0)
	min90, ours := 90*time.Second, 1800*time.Second
	cases := []struct {
		name          string
		h             timerHeaders
		wantInterval  time.Duration
		wantRefresher string
		wantErr       bool
	}{
		{"peer asks, names itself", timerHeaders{expires: 600 * time.Second, refresher: "uac", supported: true}, 600 * time.Second, "uac", false},
		{"peer asks, names us", timerHeaders{expires: 600 * time.Second, refresher: "uas", supported: true}, 600 * time.Second, "uas", false},
		{"peer asks, leaves it to us", timerHeaders{expires: 600 * time.Second, supported: true}, 600 * time.Second, "uac", false},
		{"peer without timer support: we refresh", timerHeaders{expires: 600 * time.Second, refresher: "uac"}, 600 * time.Second, "uas", false},
		{"peer supports but does not ask: our interval", timerHeaders{supported: true}, ours, "uac", false},
		{"peer supports, raises the minimum", timerHeaders{supported: true, minSE: 3600 * time.Second}, 3600 * time.Second, "uac", false},
		{"no timers at all", timerHeaders{}, 0, "", false},
		{"below our Min-SE", timerHeaders{expires: 30 * time.Second, supported: true}, 0, "", true},
	}
	for _, c := range cases {
		got, refresher, err := timerForRequest(c.h, sessionTimer{}, ours, min90, now)
		var small errIntervalTooSmall
		if c.wantErr != errors.As(err, &small) || (c.wantErr && small.minSE != min90) {
			t.Errorf("%s: error %v", c.name, err)
			continue
		}
		if got.interval != c.wantInterval || refresher != c.wantRefresher || got.weRefresh != (c.wantRefresher == "uas") {
			t.Errorf("%s: got %v %q (we refresh %v)", c.name, got.interval, refresher, got.weRefresh)
		}
	}
	// A re-INVITE without timer headers refreshes the timer in force.
	prev := sessionTimer{interval: 600 * time.Second, weRefresh: false, last: now}
	got, refresher, _ := timerForRequest(timerHeaders{}, prev, ours, min90, now.Add(time.Minute))
	if got.interval != prev.interval || !got.last.Equal(now.Add(time.Minute)) || refresher != "uac" {
		t.Errorf("refresh without headers: %+v %q", got, refresher)
	}
	// The answer to our refresh names the refresher from its side.
	got = timerForResponse(timerHeaders{expires: 120 * time.Second, refresher: "uas"}, prev, now)
	if got.weRefresh || got.interval != 120*time.Second {
		t.Errorf("2xx naming the UAS: %+v", got)
	}
	if got = timerForResponse(timerHeaders{expires: 120 * time.Second, refresher: "uac"}, prev, now); !got.weRefresh {
		t.Errorf("2xx naming the UAC (us): %+v", got)
	}
}

func TestParseTimerHeaders(t *testing.T) {
	req := sip.NewRequest(sip.INVITE, sip.Uri{Host: "x"})
	req.AppendHeader(sip.NewHeader("x", "1800 ; Refresher=UAS"))
	req.AppendHeader(sip.NewHeader("Min-SE", "120"))
	req.AppendHeader(sip.NewHeader("k", "100rel, timer"))
	h, err := parseTimerHeaders(req)
	if err != nil || h.expires != 1800*time.Second || h.refresher != "uas" || h.minSE != 120*time.Second || !h.supported {
		t.Errorf("compact forms: %+v %v", h, err)
	}
	for _, bad := range []string{"soon", "-5", "0", "90;refresher=both"} {
		req := sip.NewRequest(sip.INVITE, sip.Uri{Host: "x"})
		req.AppendHeader(sip.NewHeader("Session-Expires", bad))
		if _, err := parseTimerHeaders(req); err == nil {
			t.Errorf("Session-Expires %q accepted", bad)
		}
	}
}

// timerRig runs runSessionTimer on a fake clock with scripted refreshes.
type timerRig struct {
	clk      *clock.Fake
	mu       sync.Mutex
	timer    sessionTimer
	kick     chan struct{}
	refresh  func() error
	refreshs []time.Time
	expired  chan string
	cancel   context.CancelFunc
	done     chan struct{}
}

func newTimerRig(t *testing.T, st sessionTimer, refresh func() error) *timerRig {
	r := &timerRig{clk: clock.NewFake(st.last), timer: st, kick: make(chan struct{}, 1), refresh: refresh,
		expired: make(chan string, 1), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		runSessionTimer(ctx, r.clk, r.current, r.kick, func(context.Context) error {
			r.mu.Lock()
			r.refreshs = append(r.refreshs, r.clk.Now())
			r.mu.Unlock()
			err := r.refresh()
			if err == nil {
				r.set(sessionTimer{interval: st.interval, weRefresh: st.weRefresh, last: r.clk.Now()})
			}
			return err
		}, func(reason string) { r.expired <- reason })
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

func (r *timerRig) current() sessionTimer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.timer
}

func (r *timerRig) set(t sessionTimer) {
	r.mu.Lock()
	r.timer = t
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// advance moves the fake clock in small steps, letting the loop run.
func (r *timerRig) advance(d time.Duration) {
	step := max(d/400, 100*time.Millisecond)
	for end := r.clk.Now().Add(d); r.clk.Now().Before(end); {
		r.clk.Advance(step)
		r.idle()
	}
}

// idle waits until the loop is waiting on its next timer (or has ended).
func (r *timerRig) idle() {
	for i := 0; i < 20000; i++ {
		select {
		case <-r.done:
			return
		default:
		}
		if r.clk.Armed() > 0 {
			return
		}
		time.Sleep(50 * time.Microsecond)
	}
}

func (r *timerRig) refreshTimes() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.refreshs...)
}

func TestWeRefreshAtHalfTheInterval(t *testing.T) {
	start := time.Unix(5000, 0)
	r := newTimerRig(t, sessionTimer{interval: 10 * time.Minute, weRefresh: true, last: start}, func() error { return nil })
	r.advance(16 * time.Minute)
	got := r.refreshTimes()
	if len(got) != 3 {
		t.Fatalf("%d refreshes in 16 min of a 10 min timer, want 3", len(got))
	}
	for i, at := range got {
		if want := start.Add(time.Duration(i+1) * 5 * time.Minute); at.Sub(want) > 3*time.Second || at.Before(want) {
			t.Errorf("refresh %d at %v, want %v", i, at.Sub(start), want.Sub(start))
		}
	}
}

func TestRefreshFailuresAreRetriedThenEnd(t *testing.T) {
	start := time.Unix(5000, 0)
	fails := 0
	r := newTimerRig(t, sessionTimer{interval: 2 * time.Minute, weRefresh: true, last: start}, func() error {
		fails++
		return errors.New("500 Server Internal Error")
	})
	r.advance(3 * time.Minute)
	select {
	case reason := <-r.expired:
		if n := len(r.refreshTimes()); n < 3 {
			t.Errorf("gave up after %d attempts", n)
		}
		t.Logf("ended after %d attempts: %s", fails, reason)
	default:
		t.Fatal("a session whose refreshes all fail was not ended at expiry")
	}
}

func TestFatalRefreshEndsAtOnce(t *testing.T) {
	start := time.Unix(5000, 0)
	r := newTimerRig(t, sessionTimer{interval: 2 * time.Minute, weRefresh: true, last: start}, func() error { return errRefreshFatal{code: 481} })
	r.advance(61 * time.Second)
	select {
	case <-r.expired:
	default:
		t.Fatal("a refresh answered 481 did not end the call")
	}
}

func TestPeerRefreshesKeepTheCallThenStop(t *testing.T) {
	start := time.Unix(5000, 0)
	r := newTimerRig(t, sessionTimer{interval: 90 * time.Second, last: start}, func() error { return errors.New("we are not the refresher") })
	r.advance(45 * time.Second)
	r.set(sessionTimer{interval: 90 * time.Second, last: r.clk.Now()}) // the peer refreshed
	for len(r.kick) > 0 {
		time.Sleep(50 * time.Microsecond) // the loop has not taken the change yet
	}
	time.Sleep(time.Millisecond)
	r.idle()
	refreshed := r.clk.Now()
	r.advance(59 * time.Second)
	select {
	case <-r.expired:
		t.Fatal("ended although the peer refreshed")
	default:
	}
	r.advance(2 * time.Second)
	select {
	case <-r.expired:
		// 90 s - min(32 s, 30 s) = 60 s after the refresh.
		if d := r.clk.Now().Sub(refreshed); d < 60*time.Second || d > 62*time.Second {
			t.Errorf("ended %v after the last refresh", d)
		}
	default:
		t.Fatal("not ended when the peer's refreshes stopped")
	}
	if len(r.refreshTimes()) != 0 {
		t.Error("we refreshed a session the peer refreshes")
	}
}
