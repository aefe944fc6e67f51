// Package media is one call's RTP: a UDP port from a configured range, a
// receive path that checks, reorders and decodes G.711 into PCM16 at 8 kHz,
// and a playout pacer that sends one 20 ms frame on an absolute schedule,
// accounting for every sample of every queued item that reached the wire.
package media

import (
	"fmt"
	"strings"

	"github.com/zaf/g711"
)

// Codec is a negotiated G.711 audio codec.
type Codec struct {
	Name        string // PCMU or PCMA
	PayloadType uint8
}

// Well-known static payload types (RFC 3551).
var (
	PCMU = Codec{Name: "PCMU", PayloadType: 0}
	PCMA = Codec{Name: "PCMA", PayloadType: 8}
)

const (
	// SampleRate is G.711's clock rate.
	SampleRate = 8000
	// FrameSamples is one 20 ms frame at 8 kHz.
	FrameSamples = 160
	// FrameDuration is the packetisation interval voicebot sends at.
	FrameDurationMS = 20
	// MaxPayload bounds an accepted RTP payload (120 ms of G.711 and then some).
	MaxPayload = 1200
)

// CodecByName returns PCMU or PCMA.
func CodecByName(name string) (Codec, error) {
	switch strings.ToUpper(name) {
	case "PCMU":
		return PCMU, nil
	case "PCMA":
		return PCMA, nil
	}
	return Codec{}, fmt.Errorf("media: unsupported codec %q", name)
}

// SilenceByte is the codec's encoding of zero.
func (c Codec) SilenceByte() byte {
	if c.Name == "PCMA" {
		return 0xD5
	}
	return 0xFF
}

// Decode appends the PCM16 samples of payload to dst.
func (c Codec) Decode(dst []int16, payload []byte) []int16 {
	if c.Name == "PCMA" {
		for _, b := range payload {
			dst = append(dst, g711.DecodeAlawFrame(b))
		}
		return dst
	}
	for _, b := range payload {
		dst = append(dst, g711.DecodeUlawFrame(b))
	}
	return dst
}

// Encode appends the G.711 bytes of pcm to dst.
func (c Codec) Encode(dst []byte, pcm []int16) []byte {
	if c.Name == "PCMA" {
		for _, s := range pcm {
			dst = append(dst, g711.EncodeAlawFrame(s))
		}
		return dst
	}
	for _, s := range pcm {
		dst = append(dst, g711.EncodeUlawFrame(s))
	}
	return dst
}
