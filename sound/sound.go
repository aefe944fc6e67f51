// Package sound holds the prompts voicebot plays by itself, when no model
// speaks for it: while a lost model connection comes back (filler) and when
// it does not (apology). It loads operators' own prompts from WAV files and
// makes them 8 kHz PCM16, the rate of the call's media.
package sound

import (
	"bytes"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"

	"github.com/zaf/g711"

	"github.com/voicebot/voicebot/resample"
)

// Rate is the sample rate of every prompt this package returns.
const Rate = 8000

//go:embed apology_8k.wav
var apologyWAV []byte

//go:embed moment_8k.wav
var momentWAV []byte

// Apology is the built-in apology: "I'm sorry, we are having technical
// difficulties. Please call again later. Goodbye."
func Apology() []int16 { return mustParse(apologyWAV) }

// Moment is the built-in "One moment, please."
func Moment() []int16 { return mustParse(momentWAV) }

func mustParse(b []byte) []int16 {
	pcm, err := ParseWAV(b)
	if err != nil {
		panic("sound: embedded prompt: " + err.Error()) // a build defect, not input
	}
	return pcm
}

// ComfortTone is one second of the built-in filler loop: a soft 440 Hz
// pulse of 150 ms, then comfort noise, so the caller knows the line is
// alive without hearing a ringback or a busy signal.
func ComfortTone() []int16 {
	out := make([]int16, Rate)
	rng := rand.New(rand.NewPCG(1, 2)) // the same noise every time: tests compare prompts
	pulse := Rate * 150 / 1000
	amp := 32767 * math.Pow(10, -24.0/20)
	for i := range out {
		noise := (rng.Float64()*2 - 1) * 40 // about -60 dBFS: never digital silence
		if i < pulse {
			env := math.Sin(math.Pi * float64(i) / float64(pulse)) // no clicks at the edges
			out[i] = int16(amp*env*math.Sin(2*math.Pi*440*float64(i)/Rate) + noise)
			continue
		}
		out[i] = int16(noise)
	}
	return out
}

// LoadWAV reads a WAV file (PCM 16-bit, 8-bit unsigned, G.711 µ-law or
// A-law; mono or stereo; any rate) as 8 kHz mono PCM16.
func LoadWAV(path string) ([]int16, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sound: %w", err)
	}
	pcm, err := ParseWAV(b)
	if err != nil {
		return nil, fmt.Errorf("sound: %s: %w", path, err)
	}
	return pcm, nil
}

// ErrNotWAV means the data is not a WAV file voicebot can play.
var ErrNotWAV = errors.New("not a playable WAV file")

// MaxSeconds bounds a prompt: a filler or apology is seconds long, and a
// bound keeps a wrong file from taking the memory of every call.
const MaxSeconds = 120

const (
	formatPCM   = 1
	formatALaw  = 6
	formatMuLaw = 7
	formatExt   = 0xFFFE
)

// ParseWAV decodes a WAV file's audio as 8 kHz mono PCM16.
func ParseWAV(b []byte) ([]int16, error) { return DecodeWAV(b, Rate, MaxSeconds) }

// DecodeWAV decodes a WAV file's audio (PCM 16-bit or 8-bit, µ-law or
// A-law, any channels, any common rate) as mono PCM16 at rate, with the
// channels mixed down, resampled to outRate with our resampler; longer
// than maxSeconds is refused (ErrTooLong).
func DecodeWAV(b []byte, outRate, maxSeconds int) ([]int16, error) {
	if len(b) < 12 || !bytes.Equal(b[0:4], []byte("RIFF")) || !bytes.Equal(b[8:12], []byte("WAVE")) {
		return nil, fmt.Errorf("%w: no RIFF/WAVE header", ErrNotWAV)
	}
	var (
		format, channels, bits uint16
		rate                   uint32
		haveFmt                bool
		data                   []byte
	)
	for rest := b[12:]; len(rest) >= 8; {
		id, size := string(rest[0:4]), binary.LittleEndian.Uint32(rest[4:8])
		rest = rest[8:]
		if uint64(size) > uint64(len(rest)) {
			if id != "data" {
				return nil, fmt.Errorf("%w: chunk %q runs past the end", ErrNotWAV, id)
			}
			size = uint32(len(rest)) // a streamed file whose length was never filled in
		}
		body := rest[:size]
		switch id {
		case "fmt ":
			if len(body) < 16 {
				return nil, fmt.Errorf("%w: short fmt chunk", ErrNotWAV)
			}
			format, channels = binary.LittleEndian.Uint16(body[0:]), binary.LittleEndian.Uint16(body[2:])
			rate, bits = binary.LittleEndian.Uint32(body[4:]), binary.LittleEndian.Uint16(body[14:])
			if format == formatExt && len(body) >= 26 {
				format = binary.LittleEndian.Uint16(body[24:])
			}
			haveFmt = true
		case "data":
			data = body
		}
		if size%2 == 1 && len(rest) > int(size) {
			size++ // chunks are padded to an even length
		}
		rest = rest[size:]
	}
	if !haveFmt || data == nil {
		return nil, fmt.Errorf("%w: missing fmt or data chunk", ErrNotWAV)
	}
	if channels == 0 || channels > 8 || rate < 4000 || rate > 192000 {
		return nil, fmt.Errorf("%w: %d channels at %d Hz", ErrNotWAV, channels, rate)
	}
	var bytesPerSample int
	switch {
	case format == formatPCM && bits == 16:
		bytesPerSample = 2
	case format == formatPCM && bits == 8, format == formatMuLaw && bits == 8, format == formatALaw && bits == 8:
		bytesPerSample = 1
	default:
		return nil, fmt.Errorf("%w: format %d with %d bits (want PCM 16/8-bit, µ-law or A-law)", ErrNotWAV, format, bits)
	}
	frame := bytesPerSample * int(channels)
	frames := len(data) / frame
	if frames > maxSeconds*int(rate) {
		return nil, fmt.Errorf("%w: %w %d s", ErrNotWAV, ErrTooLong, maxSeconds)
	}
	mono := make([]int16, frames)
	for i := range mono {
		f := data[i*frame:]
		sum := 0
		for ch := 0; ch < int(channels); ch++ {
			var v int16
			switch {
			case bytesPerSample == 2:
				v = int16(binary.LittleEndian.Uint16(f[2*ch:]))
			case format == formatMuLaw:
				v = g711.DecodeUlawFrame(f[ch])
			case format == formatALaw:
				v = g711.DecodeAlawFrame(f[ch])
			default:
				v = int16(int(f[ch])-128) << 8
			}
			sum += int(v)
		}
		mono[i] = int16(sum / int(channels))
	}
	return convertRate(mono, int(rate), outRate)
}

// convertRate resamples a whole clip, its filter's tail included. A rate
// whose ratio is too large for one stage (11.025 kHz) is doubled first.
func convertRate(pcm []int16, from, to int) ([]int16, error) {
	if from == to {
		return pcm, nil
	}
	rs, err := resample.New(from, to)
	if err != nil {
		// One doubling, and only when it leads somewhere: it is checked
		// before any audio is converted.
		if _, ok := resample.New(2*from, to); ok == nil {
			if doubled, err2 := convertRate(pcm, from, 2*from); err2 == nil {
				return convertRate(doubled, 2*from, to)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v (convert it: sox in.wav -r %d -c 1 -b 16 out.wav)", ErrNotWAV, err, to)
	}
	return rs.Flush(rs.Process(nil, pcm)), nil
}

// ErrTooLong is audio over the length allowed.
var ErrTooLong = errors.New("the audio is too long: at most")

// EncodeWAV writes mono PCM16 at rate as a WAV file.
func EncodeWAV(pcm []int16, rate int) []byte {
	b := make([]byte, 44+2*len(pcm))
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*len(pcm)))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], formatPCM)
	binary.LittleEndian.PutUint16(b[22:], 1)
	binary.LittleEndian.PutUint32(b[24:], uint32(rate))
	binary.LittleEndian.PutUint32(b[28:], uint32(2*rate))
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*len(pcm)))
	for i, v := range pcm {
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(v))
	}
	return b
}
