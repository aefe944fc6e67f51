// Package realtime speaks the OpenAI Realtime protocol over WebSocket, in
// both its GA and beta dialects, for OpenAI, Azure OpenAI and any compatible
// server. Server events of either dialect decode into one vocabulary
// (ServerEvent); client events are encoded per dialect.
package realtime

import "fmt"

// Dialect is the protocol generation a connection speaks.
type Dialect int

const (
	// GA is the generally available interface (session.type "realtime",
	// response.output_audio.delta, nested audio config).
	GA Dialect = iota
	// Beta is the deprecated v1 beta interface (OpenAI-Beta: realtime=v1,
	// response.audio.delta, flat session config); Azure preview deployments use it.
	Beta
)

// ParseDialect reads "ga" or "beta".
func ParseDialect(s string) (Dialect, error) {
	switch s {
	case "ga", "GA", "":
		return GA, nil
	case "beta":
		return Beta, nil
	}
	return GA, fmt.Errorf("realtime: unknown dialect %q (want ga or beta)", s)
}

func (d Dialect) String() string {
	if d == Beta {
		return "beta"
	}
	return "ga"
}

// AudioFormat is a session audio format.
type AudioFormat int

const (
	// PCM16 is signed 16-bit little-endian mono at 24 kHz.
	PCM16 AudioFormat = iota
	// PCMU is G.711 µ-law at 8 kHz.
	PCMU
	// PCMA is G.711 A-law at 8 kHz.
	PCMA
)

// SampleRate is the format's samples per second.
func (f AudioFormat) SampleRate() int {
	if f == PCM16 {
		return 24000
	}
	return 8000
}

// BytesPerSample is one sample's size: 2 for PCM16, 1 for G.711.
func (f AudioFormat) BytesPerSample() int {
	if f == PCM16 {
		return 2
	}
	return 1
}

// BytesPerMS is how many bytes one millisecond of the format takes.
func (f AudioFormat) BytesPerMS() int { return f.SampleRate() / 1000 * f.BytesPerSample() }

func (f AudioFormat) beta() string {
	switch f {
	case PCMU:
		return "g711_ulaw"
	case PCMA:
		return "g711_alaw"
	}
	return "pcm16"
}

func (f AudioFormat) ga() any {
	switch f {
	case PCMU:
		return map[string]any{"type": "audio/pcmu"}
	case PCMA:
		return map[string]any{"type": "audio/pcma"}
	}
	return map[string]any{"type": "audio/pcm", "rate": PCM16.SampleRate()}
}

// ParseAudioFormat reads a format as either dialect writes it: a beta string
// or a GA format object's type.
func ParseAudioFormat(s string) (AudioFormat, bool) {
	switch s {
	case "pcm16", "audio/pcm":
		return PCM16, true
	case "g711_ulaw", "audio/pcmu":
		return PCMU, true
	case "g711_alaw", "audio/pcma":
		return PCMA, true
	}
	return PCM16, false
}
