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

	"github.com/voicebot/voicebot/media/g722"
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
// pointer keeps Codec comparable). A stateless codec (G.711) codes each
// sample on its own, with encode and decode; a stateful one (G.722's
// ADPCM predicts each sample from the ones before) makes a coder per
// stream with newEncoder and newDecoder. Coding appends and allocates
// nothing once dst has room: it runs for every frame.
type coding struct {
	encode     func(dst []byte, pcm []int16) []byte
	decode     func(dst []int16, payload []byte) []int16
	newEncoder func() Encoder
	newDecoder func() Decoder
	silence    []byte // 20 ms of encoded silence from a fresh coder, read only
}

// Encoder codes one stream of PCM16 into a codec's payloads, keeping what
// a stateful codec carries from one frame to the next: a stream is coded
// by one Encoder, in order, and nothing else.
type Encoder interface {
	Encode(dst []byte, pcm []int16) []byte
}

// Decoder is Encoder's counterpart for one received stream.
type Decoder interface {
	Decode(dst []int16, payload []byte) []int16
}

// encodeFunc and decodeFunc are a stateless codec's coders: one value
// serves every stream, and making one allocates nothing.
type encodeFunc func(dst []byte, pcm []int16) []byte

func (f encodeFunc) Encode(dst []byte, pcm []int16) []byte { return f(dst, pcm) }

type decodeFunc func(dst []int16, payload []byte) []int16

func (f decodeFunc) Decode(dst []int16, payload []byte) []int16 { return f(dst, payload) }

// The codec table. Adding a codec is one entry here, its coding, and its
// place in codecTable; SDP, playout, pacing, silence, DTMF timing and the
// bridge's resamplers follow the entry.
var (
	PCMU = g711Codec("PCMU", 0, encodeUlaw, decodeUlaw)
	PCMA = g711Codec("PCMA", 8, encodeAlaw, decodeAlaw)
	// G722 is ITU-T G.722 at 64 kbit/s: 16 kHz audio (50-7000 Hz), two
	// samples a byte, on the 8 kHz RTP clock RFC 3551 §4.5.2 fixed for it
	// by mistake and everyone kept: timestamps advance 160 per 20 ms.
	G722 = newCodec(Codec{Name: "G722", PayloadType: 9, ClockRate: 8000, SampleRate: 16000, FrameSamples: 320, FrameBytes: 160},
		&coding{newEncoder: func() Encoder { return g722.NewEncoder() }, newDecoder: func() Decoder { return g722.NewDecoder() }})
)

// codecTable lists every codec voicebot speaks, in its default preference:
// wideband first, so a phone that offers it is heard at 7 kHz.
var codecTable = []Codec{G722, PCMU, PCMA}

// newCodec completes an entry with its coding and silence.
func newCodec(c Codec, cd *coding) Codec {
	c.coding = cd
	c.silence = c.Encode(nil, make([]int16, c.FrameSamples))
	return c
}

// g711Codec is an entry for a G.711 law: 8 kHz, a byte a sample.
func g711Codec(name string, pt uint8, enc func([]byte, []int16) []byte, dec func([]int16, []byte) []int16) Codec {
	return newCodec(Codec{Name: name, PayloadType: pt, ClockRate: 8000, SampleRate: 8000, FrameSamples: 160, FrameBytes: 160},
		&coding{encode: enc, decode: dec})
}

// linear is the form a stateful codec's audio waits in, in the playout:
// PCM16, little-endian, at the codec's rate. Such audio must be encoded
// as it leaves, by the one encoder whose state the far end's decoder
// follows (see pacer); encoded ahead, it would carry the state of audio
// a barge-in later dropped, or miss the silence sent meanwhile.
var linear = map[int]Codec{}

func init() {
	for _, c := range codecTable {
		if c.Stateful() {
			if _, ok := linear[c.SampleRate]; !ok {
				linear[c.SampleRate] = newCodec(Codec{Name: "L16", ClockRate: c.SampleRate, SampleRate: c.SampleRate,
					FrameSamples: c.FrameSamples, FrameBytes: 2 * c.FrameSamples},
					&coding{encode: encodeLinear, decode: decodeLinear})
			}
		}
	}
}

// queued is the form c's audio waits in for playout: its own encoding
// when it is stateless (G.711: half the memory of PCM, and nothing to do
// when the frame goes), linear PCM when it is stateful.
func queued(c Codec) Codec {
	if !c.Stateful() {
		return c
	}
	return linear[c.SampleRate]
}

func encodeLinear(dst []byte, pcm []int16) []byte {
	dst, out := grow(dst, 2*len(pcm))
	for i, s := range pcm {
		out[2*i], out[2*i+1] = byte(s), byte(uint16(s)>>8)
	}
	return dst
}

func decodeLinear(dst []int16, b []byte) []int16 {
	dst, out := grow(dst, len(b)/2)
	for i := range out {
		out[i] = int16(uint16(b[2*i]) | uint16(b[2*i+1])<<8)
	}
	return dst
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
	// MaxPayload bounds an accepted RTP payload (120 ms of G.711 or G.722
	// and then some).
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

// Silence is 20 ms of the codec's silence, encoded by a fresh encoder. It
// is shared: do not modify it.
func (c Codec) Silence() []byte { return c.silence }

// Stateful reports whether the codec's coding depends on the audio before
// (G.722): a stream must then be coded by one Encoder or Decoder, in order.
func (c Codec) Stateful() bool { return c.newEncoder != nil }

// NewEncoder returns a coder for one stream. A stateless codec's is shared
// and costs nothing.
func (c Codec) NewEncoder() Encoder {
	if c.newEncoder != nil {
		return c.newEncoder()
	}
	return encodeFunc(c.encode)
}

// NewDecoder returns a decoder for one stream (see NewEncoder).
func (c Codec) NewDecoder() Decoder {
	if c.newDecoder != nil {
		return c.newDecoder()
	}
	return decodeFunc(c.decode)
}

// Decode appends the PCM16 samples of payload to dst. It decodes from a
// fresh state: payload is a whole stream, or the codec is stateless. A
// stream decoded piece by piece needs NewDecoder.
func (c Codec) Decode(dst []int16, payload []byte) []int16 {
	return c.NewDecoder().Decode(dst, payload)
}

// Encode appends the encoding of pcm (at SampleRate) to dst, from a fresh
// state (see Decode).
func (c Codec) Encode(dst []byte, pcm []int16) []byte { return c.NewEncoder().Encode(dst, pcm) }

// Rate is the entry's sample rate in words, for logs and pages: "8 kHz".
func (c Codec) Rate() string {
	if c.SampleRate%1000 == 0 {
		return fmt.Sprintf("%d kHz", c.SampleRate/1000)
	}
	return fmt.Sprintf("%.1f kHz", float64(c.SampleRate)/1000)
}

// SamplesIn is how many PCM samples n bytes of payload hold.
func (c Codec) SamplesIn(n int) int { return n * c.FrameSamples / c.FrameBytes }

// MS is the duration of n bytes of payload, in whole milliseconds.
func (c Codec) MS(n int) int { return n * FrameDurationMS / c.FrameBytes }
