// Package realtimetest is the peer voicebot's tests talk to: the built-in
// demo model (package demo), with a recorder that keeps what each session
// received, sent and answered, for assertions. The product keeps none of
// it.
package realtimetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/voicebot/voicebot/demo"
)

// The demo model's own types and functions, as tests know them.
type (
	Options      = demo.Options
	Tool         = demo.Tool
	ToolCall     = demo.ToolCall
	ResponseInfo = demo.ResponseInfo
	Violation    = demo.Violation
	SchemaError  = demo.SchemaError
)

var (
	ValidateClientEvent = demo.ValidateClientEvent
	GoodbyeAudio        = demo.GoodbyeAudio
	DefaultGreeting     = demo.DefaultGreeting
	DefaultToolScript   = demo.DefaultToolScript
)

// GreetingText is the transcript of the built-in greeting.
const GreetingText = demo.GreetingText

// ErrNotFound is returned by waits that time out.
var ErrNotFound = errors.New("realtimetest: event not seen in time")

// Server is the demo model with every session recorded.
type Server struct {
	*demo.Server
	rec *recorder
}

// NewServer returns a demo model whose sessions are recorded.
func NewServer(opts Options) *Server {
	rec := &recorder{byDemo: map[*demo.Session]*Session{}}
	opts.Observer = rec
	return &Server{Server: demo.NewServer(opts), rec: rec}
}

// Sessions returns every session so far, oldest first.
func (s *Server) Sessions() []*Session {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	return append([]*Session(nil), s.rec.sessions...)
}

// Violations returns every session's violations, oldest session first.
func (s *Server) Violations() []Violation {
	var out []Violation
	for _, ss := range s.Sessions() {
		out = append(out, ss.Violations()...)
	}
	return out
}

// Session is one demo session and what it did.
type Session struct {
	*demo.Session

	mu         sync.Mutex
	received   []Received
	sent       []SentEvent
	appends    int
	input      []byte // the appended audio, as sent (up to maxInput)
	speeches   int
	responses  []ResponseInfo
	violations []Violation
}

// Received is one client event as the server got it.
type Received struct {
	Type string
	Raw  json.RawMessage
	At   time.Time
}

// SentEvent is a server event as it left, with when (deltas are not kept).
type SentEvent struct {
	Type string
	At   time.Time
}

// Received returns the client events so far (input_audio_buffer.append
// events are counted by Appends, not kept).
func (s *Session) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.received...)
}

// ReceivedOfType returns the received events of one type.
func (s *Session) ReceivedOfType(typ string) []Received {
	var out []Received
	for _, r := range s.Received() {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// WaitFor polls until a client event of typ has arrived, up to timeout.
func (s *Session) WaitFor(typ string, timeout time.Duration) (Received, error) {
	deadline := time.Now().Add(timeout)
	for {
		if evs := s.ReceivedOfType(typ); len(evs) > 0 {
			return evs[0], nil
		}
		if time.Now().After(deadline) {
			return Received{}, fmt.Errorf("%w: %s", ErrNotFound, typ)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// maxInput bounds the input audio a session keeps: a minute of PCM16 at 24 kHz.
const maxInput = 60 * 48000

// InputAudio is the audio the session was sent in appends, in the
// session's input format, as it came (its first minute).
func (s *Session) InputAudio() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.input...)
}

// Appends is how many input_audio_buffer.append events arrived.
func (s *Session) Appends() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appends
}

// SpeechStarts is how many times the VAD heard the caller start speaking.
func (s *Session) SpeechStarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.speeches
}

// Sent returns the non-delta events sent so far, in order.
func (s *Session) Sent() []SentEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SentEvent(nil), s.sent...)
}

// Responses returns the responses so far, oldest first, each as it was
// last seen (Status "" while in progress).
func (s *Session) Responses() []ResponseInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ResponseInfo(nil), s.responses...)
}

// Violations returns what the session received that the real service
// would refuse, or that ran without the session's instructions.
func (s *Session) Violations() []Violation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Violation(nil), s.violations...)
}

// recorder is the demo's observer: it keeps every session's record.
type recorder struct {
	mu       sync.Mutex
	sessions []*Session
	byDemo   map[*demo.Session]*Session
}

func (r *recorder) session(d *demo.Session) *Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byDemo[d]
}

func (r *recorder) Opened(d *demo.Session) {
	s := &Session{Session: d}
	r.mu.Lock()
	r.sessions = append(r.sessions, s)
	r.byDemo[d] = s
	r.mu.Unlock()
}

func (r *recorder) Received(d *demo.Session, typ string, raw []byte) {
	s := r.session(d)
	s.mu.Lock()
	defer s.mu.Unlock()
	if typ == "input_audio_buffer.append" {
		s.appends++
		var ev struct{ Audio []byte } // base64, decoded by encoding/json
		if len(s.input) < maxInput && json.Unmarshal(raw, &ev) == nil {
			s.input = append(s.input, ev.Audio...)
		}
		return
	}
	s.received = append(s.received, Received{Type: typ, Raw: append(json.RawMessage(nil), raw...), At: time.Now()})
}

func (r *recorder) Sent(d *demo.Session, typ string) {
	s := r.session(d)
	s.mu.Lock()
	s.sent = append(s.sent, SentEvent{Type: typ, At: time.Now()})
	s.mu.Unlock()
}

func (r *recorder) SpeechStarted(d *demo.Session) {
	s := r.session(d)
	s.mu.Lock()
	s.speeches++
	s.mu.Unlock()
}

func (r *recorder) Response(d *demo.Session, info ResponseInfo) {
	s := r.session(d)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.responses {
		if s.responses[i].ID == info.ID {
			s.responses[i] = info
			return
		}
	}
	s.responses = append(s.responses, info)
}

func (r *recorder) Violated(d *demo.Session, v Violation) {
	s := r.session(d)
	s.mu.Lock()
	s.violations = append(s.violations, v)
	s.mu.Unlock()
}
