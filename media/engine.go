package media

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/voicebot/voicebot/clock"
)

// Engine runs the media of many calls on a few goroutines, one per worker
// (a worker per core is the intent). A worker wakes on the pacing grid and
// serves the sessions due then in two passes: first every pacer sends its
// frame, then each socket is drained and the caller's audio handled. So a
// frame never waits behind another call's receive work, a process wake-up
// serves dozens of calls, and an idle call costs no goroutine of its own.
type Engine struct {
	clk     clock.Clock
	workers []*worker
	next    atomic.Uint32
	wg      sync.WaitGroup
	stop    chan struct{}
	once    sync.Once
}

type worker struct {
	e        *Engine
	mu       sync.Mutex // guards sessions
	sessions []*Session
	wake     chan struct{} // a session was added to an idle worker
	pass     sync.Mutex    // held for a pass over the sessions
	due      []*Session    // the pass's scratch lists
	all      []*Session
	pkt      rtp.Packet
}

// NewEngine starts workers goroutines (at least one); Close stops them.
func NewEngine(clk clock.Clock, workers int) *Engine {
	if clk == nil {
		clk = clock.Real{}
	}
	e := &Engine{clk: clk, stop: make(chan struct{})}
	for i := 0; i < max(workers, 1); i++ {
		w := &worker{e: e, wake: make(chan struct{}, 1)}
		e.workers = append(e.workers, w)
		e.wg.Add(1)
		go func() { defer e.wg.Done(); w.run() }()
	}
	return e
}

// Close stops the workers once their current pass is done. Sessions still
// added are no longer served.
func (e *Engine) Close() {
	e.once.Do(func() { close(e.stop) })
	e.wg.Wait()
}

// add gives s to a worker, round robin, and returns it.
func (e *Engine) add(s *Session) *worker {
	w := e.workers[int(e.next.Add(1))%len(e.workers)]
	w.mu.Lock()
	w.sessions = append(w.sessions, s)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return w
}

// remove takes s off the worker and returns once no pass touches it.
func (w *worker) remove(s *Session) {
	w.mu.Lock()
	for i, x := range w.sessions {
		if x == s {
			w.sessions = append(w.sessions[:i], w.sessions[i+1:]...)
			break
		}
	}
	w.mu.Unlock()
	w.pass.Lock() // the pass under way, if any, still had s
	w.pass.Unlock()
}

func (w *worker) run() {
	clk := w.e.clk
	timer := clk.NewTimer(pacingGrid)
	defer timer.Stop()
	// On the real clock an alarm makes sure the process is awake when the
	// timer is due (see gridAlarm); a fake clock's timers are stepped.
	var alarm *gridAlarm
	if _, real := clk.(clock.Real); real {
		if a, err := newGridAlarm(); err == nil {
			alarm = a
			defer alarm.close()
		}
	}
	for {
		w.mu.Lock()
		w.all = append(w.all[:0], w.sessions...)
		w.mu.Unlock()
		if len(w.all) == 0 {
			select {
			case <-w.e.stop:
				return
			case <-w.wake:
				continue
			}
		}
		start := clk.Now()
		w.pass.Lock()
		w.serve(start)
		w.pass.Unlock()
		clear(w.all) // no session kept alive by the scratch lists
		clear(w.due)
		// The next instant after the one served. A pass that ran past it
		// (a burst of calls due at once, the thread descheduled) is followed
		// at once, not at the instant after: that would make those frames a
		// whole grid step late.
		wait := max(onGrid(start).Add(pacingGrid).Sub(clk.Now()), 0)
		timer.Stop()
		timer.Reset(wait)
		if alarm != nil {
			_ = alarm.set(wait) // without it the timer is late, not lost
		}
		select {
		case <-w.e.stop:
			return
		case <-timer.C():
		case <-w.wake:
		}
	}
}

// serve is one pass at now: the frames due, then the receive work of the
// same sessions (each is drained once per frame, about every 20 ms).
func (w *worker) serve(now time.Time) {
	w.due = w.due[:0]
	for _, s := range w.all {
		s.pmu.Lock()
		due := !s.pacer.started || !s.pacer.next().After(now)
		if due {
			s.pacer.tick(now)
		}
		s.pmu.Unlock()
		if due {
			w.due = append(w.due, s)
		}
	}
	for _, s := range w.due {
		if s.rx != nil {
			s.drain(&w.pkt)
		}
		s.expire(w.e.clk.Now())
	}
}
