package bridge

import (
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/realtime"
)

// appendSink is a model connection that keeps the audio of each
// input_audio_buffer.append it is sent.
type appendSink struct {
	*recycler
	audio [][]byte
}

func newAppendSink() *appendSink { return &appendSink{recycler: newRecycler()} }

func (s *appendSink) SendBuffer(b *[]byte) error {
	var ev struct{ Type, Audio string }
	if err := json.Unmarshal(*b, &ev); err == nil && ev.Type == "input_audio_buffer.append" {
		raw, _ := base64.StdEncoding.DecodeString(ev.Audio)
		s.audio = append(s.audio, raw)
	}
	return s.recycler.SendBuffer(b)
}

func (s *appendSink) bytes() int {
	n := 0
	for _, a := range s.audio {
		n += len(a)
	}
	return n
}

// While the model session is away the caller's audio is held, the latest
// gap's worth only, and sent to the new session when it is back, in one
// second appends; then audio streams to the new session.
func TestCallerAudioHeldDuringAGapGoesToTheNewSession(t *testing.T) {
	old, next := newAppendSink(), newAppendSink()
	u := newUpstream(old, 20, media.PCMU.SampleRate, realtime.PCM16)
	u.passthrough(realtime.PCMU, 20) // G.711: a byte a sample, so what is kept can be read back
	u.hold(1000)
	frame := make([]byte, media.PCMU.FrameSamples)
	for i := 0; i < 150; i++ { // 3 s, frame i all of byte i
		for j := range frame {
			frame[j] = byte(i)
		}
		u.writeRaw(frame)
	}
	if len(old.audio) != 0 {
		t.Fatalf("%d appends to the lost session", len(old.audio))
	}
	if ms := u.release(next); ms != 1000 {
		t.Errorf("released %d ms, want the gap buffer's 1000", ms)
	}
	if len(next.audio) != 1 || len(next.audio[0]) != 8000 {
		t.Fatalf("the new session got %d appends, %d bytes; want one of 1 s", len(next.audio), next.bytes())
	}
	if first, last := next.audio[0][0], next.audio[0][7999]; first != 100 || last != 149 {
		t.Errorf("the held audio runs from frame %d to %d, want the latest second (100 to 149)", first, last)
	}
	u.writeRaw(frame)
	if len(next.audio) != 2 || len(old.audio) != 0 {
		t.Errorf("after the release a frame went to the old session (%d) or not to the new (%d)", len(old.audio), len(next.audio)-1)
	}
}

// The same for PCM16 at 24 kHz: whole samples are kept.
func TestCallerAudioHeldAsWholeSamples(t *testing.T) {
	next := newAppendSink()
	u := newUpstream(newAppendSink(), 20, media.PCMU.SampleRate, realtime.PCM16)
	u.hold(500)
	for i := 0; i < 100; i++ { // 2 s
		u.write(make([]int16, media.PCMU.FrameSamples), media.PCMU.SampleRate)
	}
	if ms := u.release(next); ms != 500 {
		t.Errorf("released %d ms, want 500", ms)
	}
	if n := next.bytes(); n != 500*48 {
		t.Errorf("the new session got %d bytes, want %d (500 ms of PCM16 at 24 kHz)", n, 500*48)
	}
}
