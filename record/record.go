// Package record keeps what happens in each call: a JSONL event log with
// the transcript of both sides (timestamps, barge-ins, keys, tool calls,
// reconnects, the outcome), optionally a stereo WAV of the call (caller
// left, bot right, aligned in time), and the live feed of those events for
// the API's Server-Sent Events. Files older than the retention are swept.
package record

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Event is one thing that happened in a call. Every event has "t" (RFC
// 3339 time) and "type"; the rest depends on the type.
type Event map[string]any

// Config says where records go.
type Config struct {
	// Dir receives one <call-id>.jsonl per call (and .wav with WAV), in a
	// directory per day; empty: no files, only the live feed.
	Dir       string
	WAV       bool
	Retention time.Duration // files older than this are deleted; 0: kept
	Log       zerolog.Logger
}

// Store is every call's record.
type Store struct {
	cfg Config

	mu    sync.Mutex
	calls map[string]*Call // live, and ended ones kept a while for late readers
	ended []endedCall
}

type endedCall struct {
	id string
	at time.Time
}

// How many ended calls (and for how long) stay readable from memory.
const (
	keepEnded    = 200
	keepEndedFor = 15 * time.Minute
	maxEvents    = 5000 // per call, in memory for late subscribers
)

// NewStore returns a store; it makes Dir if needed.
func NewStore(cfg Config) (*Store, error) {
	if cfg.Dir != "" {
		if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
			return nil, fmt.Errorf("records: %w", err)
		}
	}
	return &Store{cfg: cfg, calls: map[string]*Call{}}, nil
}

// Call is one call's record. Its methods are safe for concurrent use and
// safe on nil (recording off).
type Call struct {
	store *Store
	id    string
	start time.Time

	mu       sync.Mutex
	file     *os.File
	w        *bufio.Writer
	events   []Event
	subs     map[chan Event]struct{}
	closed   bool // ended: no more events
	finished bool // and its files are complete: live feeds end
	wav      *wavWriter
	base     string // the files' path without extension; "" without files
}

// Start opens a call's record with its first event ("call", with meta).
func (s *Store) Start(id string, meta Event) *Call {
	if s == nil {
		return nil
	}
	now := time.Now()
	c := &Call{store: s, id: id, start: now, subs: map[chan Event]struct{}{}}
	if dir := s.cfg.Dir; dir != "" {
		day := filepath.Join(dir, now.UTC().Format("2006-01-02"))
		base := filepath.Join(day, safeName(id))
		if err := os.MkdirAll(day, 0o750); err == nil {
			c.base = base
			if f, err := os.OpenFile(base+".jsonl", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640); err == nil {
				c.file, c.w = f, bufio.NewWriter(f)
			} else {
				s.cfg.Log.Warn().Err(err).Str("call_id", id).Msg("records: no event log for this call")
			}
			if s.cfg.WAV {
				if w, err := newWAVWriter(base + ".wav"); err == nil {
					c.wav = w
				} else {
					s.cfg.Log.Warn().Err(err).Str("call_id", id).Msg("records: no recording for this call")
				}
			}
		}
	}
	s.mu.Lock()
	s.calls[id] = c
	s.mu.Unlock()
	ev := Event{"call_id": id}
	for k, v := range meta {
		ev[k] = v
	}
	c.Emit("call", ev)
	return c
}

// Get is a call's record, live or recently ended.
func (s *Store) Get(id string) (*Call, bool) {
	if s == nil {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.calls[id]
	return c, ok
}

// Emit records an event of typ with fields (which it may keep: do not
// reuse the map).
func (c *Call) Emit(typ string, fields Event) {
	if c == nil {
		return
	}
	if fields == nil {
		fields = Event{}
	}
	now := time.Now()
	fields["t"] = now.UTC().Format(time.RFC3339Nano)
	fields["type"] = typ
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if len(c.events) < maxEvents {
		c.events = append(c.events, fields)
	}
	if c.w != nil {
		if b, err := json.Marshal(fields); err == nil {
			c.w.Write(b)
			c.w.WriteByte('\n')
			c.w.Flush() // a crash loses at most the event being written
		}
	}
	for ch := range c.subs {
		select {
		case ch <- fields:
		default: // a reader this far behind misses events rather than stalling the call
		}
	}
}

// Live sends an event to the live feed only (transcript deltas: the
// finished transcript goes to the record).
func (c *Call) Live(typ string, fields Event) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.subs) == 0 {
		return
	}
	fields["t"] = time.Now().UTC().Format(time.RFC3339Nano)
	fields["type"] = typ
	for ch := range c.subs {
		select {
		case ch <- fields:
		default:
		}
	}
}

// Subscribe returns the call's events so far and a channel of those to
// come, closed when the call ends (or at once if it has). cancel stops it.
func (c *Call) Subscribe() (past []Event, live <-chan Event, cancel func()) {
	ch := make(chan Event, 256)
	c.mu.Lock()
	defer c.mu.Unlock()
	past = append([]Event(nil), c.events...)
	if c.finished {
		close(ch)
		return past, ch, func() {}
	}
	c.subs[ch] = struct{}{}
	var once sync.Once
	return past, ch, func() {
		once.Do(func() {
			c.mu.Lock()
			if _, ok := c.subs[ch]; ok {
				delete(c.subs, ch)
				close(ch)
			}
			c.mu.Unlock()
		})
	}
}

// RecordingFile is the call's WAV once the call has ended, "" when there
// is none (not recorded, or no audio was ever carried).
func (c *Call) RecordingFile() string {
	if c == nil || c.base == "" || !c.store.cfg.WAV {
		return ""
	}
	if _, err := os.Stat(c.base + ".wav"); err != nil {
		return ""
	}
	return c.base + ".wav"
}

// Recording reports whether the call is being recorded to a WAV.
func (c *Call) Recording() bool { return c != nil && c.wav != nil }

// CallerAudio and BotAudio add a 20 ms (or any) frame of PCM16 at rate (the
// call's codec's) to the recording at the time it was heard or sent.
func (c *Call) CallerAudio(at time.Time, pcm []int16, rate int) {
	if c != nil && c.wav != nil {
		c.wav.addAt(0, at.Sub(c.start), pcm, rate)
	}
}

// BotAudio is CallerAudio for the bot's side (the right channel).
func (c *Call) BotAudio(at time.Time, pcm []int16, rate int) {
	if c != nil && c.wav != nil {
		c.wav.addAt(1, at.Sub(c.start), pcm, rate)
	}
}

// End writes the final event and closes the files; the record stays
// readable from memory for a while.
func (c *Call) End(final Event) {
	if c == nil {
		return
	}
	c.Emit("ended", final)
	c.mu.Lock()
	c.closed = true
	if c.w != nil {
		c.w.Flush()
		c.file.Close()
	}
	wav, events, base := c.wav, c.events, c.base
	c.mu.Unlock()
	if base != "" {
		if err := os.WriteFile(base+".txt", transcript(c.start, events), 0o640); err != nil {
			c.store.cfg.Log.Warn().Err(err).Str("call_id", c.id).Msg("records: no transcript for this call")
		}
	}
	if wav != nil {
		if err := wav.close(); err != nil {
			c.store.cfg.Log.Warn().Err(err).Str("call_id", c.id).Msg("records: recording not finished")
		}
	}
	// The live feeds end only now: whoever follows one may fetch the files
	// the moment it ends, and finds them complete.
	c.mu.Lock()
	c.finished = true
	for ch := range c.subs {
		close(ch)
	}
	c.subs = nil
	c.mu.Unlock()
	s := c.store
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = append(s.ended, endedCall{id: c.id, at: time.Now()})
	for len(s.ended) > keepEnded || (len(s.ended) > 0 && time.Since(s.ended[0].at) > keepEndedFor) {
		delete(s.calls, s.ended[0].id)
		s.ended = s.ended[1:]
	}
}

// Sweep deletes record files older than the retention, and day
// directories left empty.
func (s *Store) Sweep(now time.Time) (removed int) {
	if s == nil || s.cfg.Dir == "" || s.cfg.Retention <= 0 {
		return 0
	}
	days, _ := os.ReadDir(s.cfg.Dir)
	for _, d := range days {
		if !d.IsDir() {
			continue
		}
		dir := filepath.Join(s.cfg.Dir, d.Name())
		files, _ := os.ReadDir(dir)
		left := len(files)
		for _, f := range files {
			info, err := f.Info()
			if err != nil || now.Sub(info.ModTime()) < s.cfg.Retention {
				continue
			}
			if ext := filepath.Ext(f.Name()); ext != ".jsonl" && ext != ".wav" && ext != ".txt" {
				continue // not ours
			}
			if os.Remove(filepath.Join(dir, f.Name())) == nil {
				removed++
				left--
			}
		}
		if left == 0 {
			os.Remove(dir)
		}
	}
	return removed
}

// safeName makes a Call-ID a file name: Call-IDs are the caller's to
// choose, and must not walk the file system.
func safeName(id string) string {
	var b strings.Builder
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == '@':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 120 {
			break
		}
	}
	name := strings.TrimLeft(b.String(), ".")
	if name == "" {
		name = "call"
	}
	return name
}

// transcript renders a call's events for people: one line per turn and per
// notable event, timed from the start of the call.
func transcript(start time.Time, events []Event) []byte {
	var b strings.Builder
	for _, ev := range events {
		at := start
		if ts, ok := ev["t"].(string); ok {
			if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
				at = t
			}
		}
		d := at.Sub(start)
		stamp := fmt.Sprintf("[%02d:%02d.%d] ", int(d.Minutes()), int(d.Seconds())%60, int(d.Milliseconds()/100)%10)
		switch ev["type"] {
		case "call":
			fmt.Fprintf(&b, "%scall %v from %v to %v (agent %v)\n", stamp, ev["direction"], ev["from"], ev["to"], ev["agent"])
		case "transcript":
			fmt.Fprintf(&b, "%s%v: %v\n", stamp, ev["who"], ev["text"])
		case "barge_in":
			fmt.Fprintf(&b, "%s(the caller interrupted the bot)\n", stamp)
		case "key":
			fmt.Fprintf(&b, "%s(the caller pressed %v)\n", stamp, ev["key"])
		case "tool_call":
			fmt.Fprintf(&b, "%s(the bot called %v %v)\n", stamp, ev["tool"], ev["arguments"])
		case "hold", "resume", "model_lost", "model_back", "rollover", "answered":
			fmt.Fprintf(&b, "%s(%v)\n", stamp, ev["type"])
		case "ended":
			fmt.Fprintf(&b, "%sended: %v", stamp, ev["outcome"])
			code, detail := fmt.Sprint(ev["sip_code"]), fmt.Sprint(ev["detail"])
			switch {
			case code != "0" && code != "<nil>":
				fmt.Fprintf(&b, " (%s %s)", code, detail)
			case detail != "" && detail != "<nil>":
				fmt.Fprintf(&b, " (%s)", detail)
			}
			b.WriteByte('\n')
		}
	}
	return []byte(b.String())
}
