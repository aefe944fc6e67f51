// Package media is one call's RTP: a UDP port from a configured range, a
// receive path that checks, reorders and decodes the call's codec into PCM16,
// and a playout pacer that sends one 20 ms frame on an absolute schedule,
// accounting for every sample of every queued item that reached the wire.
package media

import (
	"fmt"
	"slices"
	"strings"

	"github.com/zaf/g711"
)

// Codec is one entry of the codec table: what SDP and RTP call it, its
// rates and frame sizes, and how its audio converts to and from PCM16. The
// rest of voicebot reads the negotiated entry instead of assuming G.711.
// Codecs compare equal when they are the same entry.
type Codec struct {
	Name        string // encoding name as SDP's rtpmap writes it (upper case)
	PayloadType uint8  // RTP payload type (RFC 3551 static)
	// ClockRate is the RTP timestamp rate, as rtpmap states it; it also
	// times telephone-events (RFC 4733 §2.1: the audio codec's rate).
	ClockRate int
	// SampleRate is the PCM rate the codec codes. It differs from
	// ClockRate for G.722 (16 kHz audio on an 8 kHz clock, RFC 3551 §4.5.2).
	SampleRate int
	// FrameSamples and FrameBytes are 20 ms (the packetisation interval
	// voicebot sends at) of PCM samples and of encoded payload.
	FrameSamples int
	FrameBytes   int
	*coding
}

// coding is an entry's conversion, shared by every copy of the entry (a
// pointer keeps Codec comparable). Both functions append and allocate
// nothing once dst has room: they run for every frame.
type coding struct {
	encode  func(dst []byte, pcm []int16) []byte
	decode  func(dst []int16, payload []byte) []int16
	silence []byte // 20 ms of encoded silence, read only
}

// The codec table. Adding a codec is one entry here, its coding, and its
// place in codecTable; SDP, playout, pacing, silence, DTMF timing and the
// bridge's resamplers follow the entry.
var (
	PCMU = g711Codec("PCMU", 0, encodeUlaw, decodeUlaw)
	PCMA = g711Codec("PCMA", 8, encodeAlaw, decodeAlaw)
)

// codecTable lists every codec voicebot speaks, in its default preference.
var codecTable = []Codec{PCMU, PCMA}

// g711Codec is an entry for a G.711 law: 8 kHz, a byte a sample.
func g711Codec(name string, pt uint8, enc func([]byte, []int16) []byte, dec func([]int16, []byte) []int16) Codec {
	c := Codec{Name: name, PayloadType: pt, ClockRate: 8000, SampleRate: 8000, FrameSamples: 160, FrameBytes: 160,
		coding: &coding{encode: enc, decode: dec}}
	c.silence = enc(nil, make([]int16, c.FrameSamples))
	return c
}

// The G.711 laws code each sample on its own. The loops call the law
// directly (one indirect call per frame, not per sample) and write into
// the grown slice (no capacity check per sample): they run for every
// frame both ways.

func encodeUlaw(dst []byte, pcm []int16) []byte {
	dst, out := grow(dst, len(pcm))
	for i, s := range pcm {
		out[i] = g711.EncodeUlawFrame(s)
	}
	return dst
}

func decodeUlaw(dst []int16, payload []byte) []int16 {
	dst, out := grow(dst, len(payload))
	for i, b := range payload {
		out[i] = g711.DecodeUlawFrame(b)
	}
	return dst
}

func encodeAlaw(dst []byte, pcm []int16) []byte {
	dst, out := grow(dst, len(pcm))
	for i, s := range pcm {
		out[i] = g711.EncodeAlawFrame(s)
	}
	return dst
}

func decodeAlaw(dst []int16, payload []byte) []int16 {
	dst, out := grow(dst, len(payload))
	for i, b := range payload {
		out[i] = g711.DecodeAlawFrame(b)
	}
	return dst
}

// grow extends dst by n elements and returns it with the new part.
func grow[T any](dst []T, n int) ([]T, []T) {
	l := len(dst)
	dst = slices.Grow(dst, n)[:l+n]
	return dst, dst[l:]
}

const (
	// FrameDurationMS is the packetisation interval voicebot sends at.
	FrameDurationMS = 20
	// MaxPayload bounds an accepted RTP payload (120 ms of G.711 and then some).
	MaxPayload = 1200
)

// Codecs returns the codec table in its default preference order. The
// slice is the caller's.
func Codecs() []Codec { return append([]Codec(nil), codecTable...) }

// CodecByName finds a codec by its SDP encoding name, in any case.
func CodecByName(name string) (Codec, error) {
	for _, c := range codecTable {
		if strings.EqualFold(c.Name, name) {
			return c, nil
		}
	}
	return Codec{}, fmt.Errorf("media: unsupported codec %q (voicebot speaks %s)", name, strings.Join(CodecNames(), ", "))
}

// CodecNames are the table's codecs' names, in its default preference.
func CodecNames() []string {
	names := make([]string, len(codecTable))
	for i, c := range codecTable {
		names[i] = c.Name
	}
	return names
}

// Valid reports whether c is an entry of the table (the zero Codec is not).
func (c Codec) Valid() bool { return c.coding != nil }

// FrameTimestamp is how far the RTP timestamp advances in 20 ms.
func (c Codec) FrameTimestamp() uint32 { return uint32(c.ClockRate * FrameDurationMS / 1000) }

// Silence is 20 ms of the codec's silence, encoded. It is shared: do not
// modify it.
func (c Codec) Silence() []byte { return c.silence }

// Decode appends the PCM16 samples of payload to dst.
func (c Codec) Decode(dst []int16, payload []byte) []int16 { return c.decode(dst, payload) }

// Encode appends the encoding of pcm (at SampleRate) to dst.
func (c Codec) Encode(dst []byte, pcm []int16) []byte { return c.encode(dst, pcm) }

// SamplesIn is how many PCM samples n bytes of payload hold.
func (c Codec) SamplesIn(n int) int { return n * c.FrameSamples / c.FrameBytes }

// MS is the duration of n bytes of payload, in whole milliseconds.
func (c Codec) MS(n int) int { return n * FrameDurationMS / c.FrameBytes }
