// Command gen writes the inputs of the G.722 golden vectors (see
// ../README.md): speech.s16, one second of a deterministic speech-like
// test signal; loud.s16, a quarter second that ends at full scale; and
// random.g722, a payload of pseudo-random and pathological code words for
// the decoder. Run it from testdata:
//
//	go run ./gen
package main

import (
	"encoding/binary"
	"log"
	"math"
	"os"
)

const rate = 16000

// rng is a xorshift64* generator: deterministic everywhere, unlike
// math/rand's seeding across Go versions.
type rng uint64

func (r *rng) next() uint64 {
	x := uint64(*r)
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	*r = rng(x)
	return x * 2685821657736338717
}

// uniform returns a value in [-1, 1).
func (r *rng) uniform() float64 { return float64(r.next()>>11)/(1<<52) - 1 }

// ramp is a segment envelope: 1 inside [t0, t1) with 8 ms raised-cosine
// edges, 0 outside.
func ramp(t, t0, t1 float64) float64 {
	const edge = 0.008
	switch {
	case t < t0 || t >= t1:
		return 0
	case t < t0+edge:
		return 0.5 - 0.5*math.Cos(math.Pi*(t-t0)/edge)
	case t > t1-edge:
		return 0.5 - 0.5*math.Cos(math.Pi*(t1-t)/edge)
	}
	return 1
}

// formant is the magnitude at f of a resonance at fc with bandwidth bw.
func formant(f, fc, bw float64) float64 {
	x := (f - fc) / (bw / 2)
	return 1 / math.Sqrt(1+x*x)
}

// vowel is a segment of voiced speech: a harmonic series on a wavering
// pitch, shaped by three formants.
type vowel struct {
	t0, t1     float64
	f1, f2, f3 float64
	gain       float64
}

func speech() []int16 {
	vowels := []vowel{
		{0.04, 0.30, 730, 1090, 2440, 0.9}, // "a"
		{0.45, 0.68, 270, 2290, 3010, 0.8}, // "i"
		{0.80, 0.97, 300, 870, 2240, 0.85}, // "u"
	}
	r := rng(0x9e3779b97f4a7c15)
	out := make([]int16, rate)
	var phase0, chirpPhase, hp, lp float64
	for n := range out {
		t := float64(n) / rate
		v := 0.0

		// Voiced: f0 around 120 Hz with a 3 Hz vibrato and a slow glide.
		f0 := 120 + 25*math.Sin(2*math.Pi*3*t) + 30*t
		phase0 += 2 * math.Pi * f0 / rate
		for _, vw := range vowels {
			env := ramp(t, vw.t0, vw.t1)
			if env == 0 {
				continue
			}
			// Syllable-like amplitude swell within the vowel.
			env *= vw.gain * (0.6 + 0.4*math.Sin(math.Pi*(t-vw.t0)/(vw.t1-vw.t0)))
			for k := 1; float64(k)*f0 < 7800; k++ {
				f := float64(k) * f0
				a := formant(f, vw.f1, 90) + 0.7*formant(f, vw.f2, 120) + 0.4*formant(f, vw.f3, 200)
				a *= 1 / math.Sqrt(float64(k)) // glottal tilt
				v += env * 0.12 * a * math.Sin(float64(k)*phase0)
			}
		}

		// Unvoiced: white noise, high-passed for "s"/"sh"-like fricatives.
		w := r.uniform()
		hp = 0.5*hp + w - lp
		lp = w
		v += 0.25 * ramp(t, 0.31, 0.42) * hp         // "s"
		v += 0.30 * ramp(t, 0.70, 0.78) * (w + hp/2) // "sh"/"h"

		// A quiet full-band chirp, 50 Hz to 7.9 kHz over the second, so
		// every part of both sub-bands is exercised; and a click.
		chirpPhase += 2 * math.Pi * (50 + 7850*t) / rate
		v += 0.02 * math.Sin(chirpPhase)
		if n >= 6800 && n < 6804 {
			v += 0.5
		}

		out[n] = int16(math.Round(max(-32768, min(32767, v*36000))))
	}
	return out
}

// randomPayload is pseudo-random bytes followed by runs of single code
// words that drive the decoder's scale factors and predictors to their
// limits, where saturation decides the output.
func randomPayload() []byte {
	r := rng(0x243f6a8885a308d3)
	p := make([]byte, 0, 4000)
	for range 2000 {
		p = append(p, byte(r.next()>>56))
	}
	for _, c := range []byte{0x20, 0xe0, 0x04, 0xc4, 0x3f, 0x20, 0x60, 0x04, 0xa0, 0x00, 0xff, 0x5f} {
		for range 150 {
			p = append(p, c)
		}
	}
	for len(p) < cap(p) {
		p = append(p, byte(r.next()>>56))
	}
	return p
}

// loud is a -6 dBFS 440 Hz tone, then a full-scale 1.6 kHz square wave
// and full-scale binary noise: input whose sub-band signals overflow the
// 15 bits the transmit QMF limits them to.
func loud() []int16 {
	r := rng(0x13198a2e03707344)
	out := make([]int16, rate/4)
	for n := range out {
		switch {
		case n < 2000:
			out[n] = int16(math.Round(16384 * math.Sin(2*math.Pi*440*float64(n)/rate)))
		case n < 3000:
			out[n] = int16(32767 - 65535*((n/5)%2))
		default:
			out[n] = int16(32767 - 65535*int(r.next()>>63))
		}
	}
	return out
}

func writePCM(name string, pcm []int16) {
	b := make([]byte, 2*len(pcm))
	for i, s := range pcm {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(s))
	}
	if err := os.WriteFile(name, b, 0o644); err != nil {
		log.Fatal(err)
	}
}

func main() {
	writePCM("speech.s16", speech())
	writePCM("loud.s16", loud())
	if err := os.WriteFile("random.g722", randomPayload(), 0o644); err != nil {
		log.Fatal(err)
	}
}
