package bridge

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/clock"
	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/outcome"
	"github.com/voicebot/voicebot/realtime"
	"github.com/voicebot/voicebot/realtime/realtimetest"
)

// fakeModel records the client events a call sends, and holds each to
// the API reference: a test fails on any event the real service would
// refuse, or on a response that would run without the agent's
// instructions.
type fakeModel struct {
	*recycler
	t       testing.TB
	dialect realtime.Dialect
	sent    []map[string]any
	// instructions are the session's: a response.create that replaces them
	// must keep them.
	instructions string
}

func (f *fakeModel) Dialect() realtime.Dialect { return f.dialect }

func (f *fakeModel) Send(ev []byte) error {
	var m map[string]any
	if err := json.Unmarshal(ev, &m); err != nil {
		return err
	}
	f.sent = append(f.sent, m)
	if f.t == nil {
		return nil
	}
	f.t.Helper()
	if err := realtimetest.ValidateClientEvent(f.dialect, ev); err != nil {
		f.t.Errorf("the real service would refuse this %s event: %v\n%s", f.dialect, err, ev)
	}
	if r, _ := m["response"].(map[string]any); m["type"] == "response.create" && r != nil {
		if in, ok := r["instructions"].(string); ok && !strings.Contains(in, f.instructions) {
			f.t.Errorf("response.create replaces the session's instructions %q without them: %q", f.instructions, in)
		}
	}
	return nil
}

// ofType returns the sent events of one type.
func (f *fakeModel) ofType(typ string) []map[string]any {
	var out []map[string]any
	for _, m := range f.sent {
		if m["type"] == typ {
			out = append(out, m)
		}
	}
	return out
}

// harness is one call's bridge logic with its media pacer driven by a fake
// clock and its RTP written to a recorder.
type harness struct {
	t     *testing.T
	clk   *clock.Fake
	model *fakeModel
	c     *callState
	out   []sentRTP
	dec   *realtime.Decoder
	seq   int
	call  *fakeCall
	// ended is why the call ended, as the loop would return it, and when.
	ended   string
	endedAt time.Time
}

// fakeCall is the SIP side of a harness call: transfers succeed or fail as set.
type fakeCall struct {
	transferErr error
	transfers   []string
	block       chan struct{} // when set, Transfer waits for it
}

func (f *fakeCall) ID() string                        { return "call-1" }
func (f *fakeCall) Ringing() error                    { return nil }
func (f *fakeCall) Answer(context.Context, int) error { return nil }
func (f *fakeCall) Refuse(Refusal) error              { return nil }
func (f *fakeCall) Hangup() error                     { return nil }
func (f *fakeCall) Observe(Observer)                  {}
func (f *fakeCall) Outcome() outcome.End              { return outcome.End{} }
func (f *fakeCall) Transfer(ctx context.Context, target string) error {
	f.transfers = append(f.transfers, target)
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return f.transferErr
}

type sentRTP struct {
	at    time.Time
	audio bool
	pkt   rtp.Packet
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	return newProfileHarness(t, mutate, nil)
}

// newProfileHarness is newHarness with the call's profile adjusted.
func newProfileHarness(t *testing.T, mutate func(*Config), profile func(*Profile)) *harness {
	h := &harness{t: t, clk: clock.NewFake(time.Unix(1000, 0)), dec: realtime.NewDecoder(8)}
	h.model = &fakeModel{recycler: newRecycler(), t: t}
	cfg := Config{Clock: h.clk, Log: zerolog.Nop()}
	if mutate != nil {
		mutate(&cfg)
	}
	p := &Profile{Name: "test", Session: realtime.SessionConfig{TurnDetection: &realtime.TurnDetection{Type: "server_vad", Threshold: 0.5,
		PrefixPaddingMS: 300, SilenceDurationMS: 500, CreateResponse: true, InterruptResponse: true}}}
	p.Session.Instructions = "You are the test agent." // what every prompted response must keep
	if profile != nil {
		profile(p)
	}
	h.model.instructions = p.Session.Instructions
	b := New(cfg)
	h.c = newCallState(b, p, h.model, zerolog.Nop())
	h.c.media = media.NewSession(nil, media.Config{Peer: media.Peer{Remote: peer, Codec: media.PCMU, DTMFPayloadType: 101}, Clock: h.clk, Log: zerolog.Nop(),
		Output: func(pkt []byte) error {
			var p rtp.Packet
			if err := p.Unmarshal(append([]byte(nil), pkt...)); err != nil {
				return err
			}
			audio := false
			for _, b := range p.Payload {
				if b != 0xFF {
					audio = true
				}
			}
			h.out = append(h.out, sentRTP{at: h.clk.Now(), audio: audio, pkt: p})
			return nil
		}})
	h.call = &fakeCall{}
	h.c.call = h.call
	h.c.ready = true
	h.c.media.Tick(h.clk.Now())
	return h
}

// event feeds one server event, as the run loop does.
func (h *harness) event(raw string) {
	h.t.Helper()
	ev, err := h.dec.Decode([]byte(raw))
	if err != nil {
		h.t.Fatalf("%s: %v", raw, err)
	}
	h.c.handle(ev)
	ev.Release()
}

// respond makes the model stream ms of audio for item of resp (in 100 ms
// deltas), as a real model does: faster than real time.
func (h *harness) respond(resp, item string, ms int) {
	h.event(`{"type":"response.created","response":{"id":"` + resp + `","status":"in_progress","output":[]}}`)
	h.deltas(resp, item, ms)
}

func (h *harness) deltas(resp, item string, ms int) {
	for left := ms; left > 0; left -= 100 {
		chunk := min(left, 100)
		pcm := make([]byte, chunk*48)
		for i := 0; i < chunk*24; i++ {
			binary.LittleEndian.PutUint16(pcm[2*i:], uint16(int16(6000*math.Sin(float64(i)/3))))
		}
		h.event(`{"type":"response.output_audio.delta","response_id":"` + resp + `","item_id":"` + item +
			`","output_index":0,"content_index":0,"delta":"` + base64.StdEncoding.EncodeToString(pcm) + `"}`)
	}
}

func (h *harness) done(resp, status string) {
	h.event(`{"type":"response.done","response":{"id":"` + resp + `","status":"` + status + `","output":[]}}`)
}

// play advances time in 1 ms steps, running the pacer and any barge timer.
func (h *harness) play(d time.Duration) {
	end := h.clk.Now().Add(d)
	for h.clk.Now().Before(end) {
		h.clk.Advance(time.Millisecond)
		h.c.media.Tick(h.clk.Now())
		if t := h.c.barge.timer; t != nil {
			select {
			case <-t.C():
				h.c.onBargeTimer()
			default:
			}
		}
		if t := h.c.keys.timer; t != nil {
			select {
			case <-t.C():
				h.c.onKeysDone()
			default:
			}
		}
		if e := h.c.ending; e != nil && e.timer != nil {
			select {
			case <-e.timer.C():
				e.timer = nil
			default:
			}
		}
		select {
		case r := <-h.c.tools.results:
			h.c.onToolResult(r)
		default:
		}
		if h.ended == "" {
			if reason, done := h.c.checkEnding(); done {
				h.ended, h.endedAt = reason, h.clk.Now()
			}
		}
	}
}

// toolResult waits (in real time: tools run in goroutines) for a tool's
// result and hands it to the call, as the loop does.
func (h *harness) toolResult() {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.c.tools.inFlight > 0 {
		select {
		case r := <-h.c.tools.results:
			h.c.onToolResult(r)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			h.t.Fatal("no tool result")
		}
	}
	if reason, done := h.c.checkEnding(); done && h.ended == "" {
		h.ended, h.endedAt = reason, h.clk.Now()
	}
}

// caller feeds the caller path: ms of audio, loud (speech) or silent.
func (h *harness) caller(ms int, loud bool) {
	for i := 0; i < ms/20; i++ {
		frame := make([]int16, 160)
		if loud {
			for j := range frame {
				frame[j] = int16(8000 * math.Sin(float64(j)/2))
			}
		}
		h.c.up.write(frame, 8000)
	}
}

func (h *harness) speechStarted(startMS int) {
	h.event(`{"type":"input_audio_buffer.speech_started","audio_start_ms":` + strconv.Itoa(startMS) + `,"item_id":"user_1"}`)
}

func (h *harness) speechStopped(endMS int) {
	h.event(`{"type":"input_audio_buffer.speech_stopped","audio_end_ms":` + strconv.Itoa(endMS) + `,"item_id":"user_1"}`)
}

// audioMS is the bot audio sent so far, in ms, and the time of the last such packet.
func (h *harness) audioMS() (int, time.Time) {
	n, last := 0, time.Time{}
	for _, p := range h.out {
		if p.audio {
			n++
			last = p.at
		}
	}
	return n * 20, last
}

func num(v any) int { f, _ := v.(float64); return int(f) }
