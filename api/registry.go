package api

import (
	"sort"
	"sync"
	"time"

	"github.com/voicebot/voicebot/outcome"
)

// Call is what the registry needs of a call in progress.
type Call interface {
	ID() string
	State() string // dialing, ringing, answered, ended
	// Hangup ends the call for DELETE /v1/calls/{id}: it ends as
	// api_hung_up, or cancelled when it was not answered yet.
	Hangup() error
}

// CallInfo is a call as the API shows it.
type CallInfo struct {
	ID        string `json:"id"`
	Direction string `json:"direction"` // inbound or outbound
	From      string `json:"from"`
	To        string `json:"to"`
	Agent     string `json:"agent"`
	// The call's context: the headers it came with (sip.context_headers)
	// or was placed with, and the API request's variables.
	Headers   map[string]string `json:"headers,omitempty"`
	Variables map[string]string `json:"variables,omitempty"`
	State     string            `json:"state"`
	Started   time.Time         `json:"started"`
	Ended     *time.Time        `json:"ended,omitempty"`
	// How it ended (once ended): outcome, sip_code (0 when none), detail.
	*outcome.End
}

// Registry keeps the calls in progress, and the recently ended ones for
// their outcome. It is safe for concurrent use.
type Registry struct {
	mu     sync.Mutex
	active map[string]*entry
	recent []CallInfo // ended, oldest first
	// changed is told, outside the lock, that a call was added or ended.
	changed func()
}

// OnChange has f called (outside the registry's lock, on the caller's
// goroutine; it must not block) whenever a call is added or ends: the
// cluster publishes the registry when it changes.
func (r *Registry) OnChange(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changed = f
}

func (r *Registry) notify() {
	r.mu.Lock()
	f := r.changed
	r.mu.Unlock()
	if f != nil {
		f()
	}
}

type entry struct {
	info CallInfo
	call Call
}

// Recently ended calls kept for GET /v1/calls/{id}.
const (
	keepEnded    = 200
	keepEndedFor = 15 * time.Minute
)

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{active: map[string]*entry{}} }

// Add records a call in progress (again is harmless).
func (r *Registry) Add(c Call, info CallInfo) {
	if r.add(c, info) {
		r.notify()
	}
}

func (r *Registry) add(c Call, info CallInfo) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.active[c.ID()]; ok {
		return false
	}
	for _, e := range r.recent {
		if e.ID == c.ID() {
			return false // it ended already
		}
	}
	info.ID = c.ID()
	if info.Started.IsZero() {
		info.Started = time.Now()
	}
	r.active[c.ID()] = &entry{info: info, call: c}
	return true
}

// End moves a call to the recently ended, with how it ended.
func (r *Registry) End(c Call, how outcome.End) {
	if r.end(c, how) {
		r.notify()
	}
}

func (r *Registry) end(c Call, how outcome.End) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.active[c.ID()]
	if !ok {
		return false
	}
	delete(r.active, c.ID())
	info := e.snapshot()
	now := time.Now()
	info.State, info.Ended, info.End = "ended", &now, &how
	r.recent = append(r.recent, info)
	r.prune(now)
	return true
}

func (r *Registry) prune(now time.Time) {
	drop := 0
	for drop < len(r.recent) && (len(r.recent)-drop > keepEnded || now.Sub(*r.recent[drop].Ended) > keepEndedFor) {
		drop++
	}
	r.recent = append(r.recent[:0], r.recent[drop:]...)
}

func (e *entry) snapshot() CallInfo {
	info := e.info
	info.State = e.call.State()
	return info
}

// Active lists the calls in progress, oldest first.
func (r *Registry) Active() []CallInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]CallInfo, 0, len(r.active))
	for _, e := range r.active {
		// A call whose signalling has ended is no longer in progress, though
		// its handler may still be tearing down (GET /v1/calls/{id} has it).
		if info := e.snapshot(); info.State != "ended" {
			out = append(out, info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out
}

// Len is the number of calls in progress.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.active)
}

// Get returns a call in progress or recently ended.
func (r *Registry) Get(id string) (CallInfo, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.active[id]; ok {
		return e.snapshot(), true
	}
	for i := len(r.recent) - 1; i >= 0; i-- {
		if r.recent[i].ID == id {
			return r.recent[i], true
		}
	}
	return CallInfo{}, false
}

// Hangup ends a call in progress.
func (r *Registry) Hangup(id string) (CallInfo, bool) {
	r.mu.Lock()
	e, ok := r.active[id]
	r.mu.Unlock()
	if !ok {
		return CallInfo{}, false
	}
	_ = e.call.Hangup()
	info := e.snapshot()
	return info, true
}
