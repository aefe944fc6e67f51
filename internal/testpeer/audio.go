package testpeer

import "math"

// Speech returns speech-like audio at 8 kHz: a voiced buzz (140 Hz with
// harmonics, the way a larynx sounds) shaped into syllables at about 4 per
// second, loud enough for any VAD, with a short silence at both ends.
func Speech(seconds float64, seed int) []int16 {
	n := int(seconds * 8000)
	out := make([]int16, n)
	f0 := 120 + float64(seed%5)*12
	for i := range out {
		t := float64(i) / 8000
		var v float64
		for h := 1; h <= 12; h++ {
			v += math.Sin(2*math.Pi*f0*float64(h)*t+float64(h*seed)) / float64(h)
		}
		syllable := 0.5 - 0.5*math.Cos(2*math.Pi*3.7*t)
		out[i] = int16(5000 * v * syllable)
	}
	return out
}

// Silence returns seconds of zero samples at 8 kHz.
func Silence(seconds float64) []int16 { return make([]int16, int(seconds*8000)) }

// BestCorrelation slides needle over haystack and returns the highest
// normalised cross-correlation and its offset (in samples). 1 is identical
// shape; a reply that really is the echo of the caller scores well above 0.8
// even after G.711 and two resamplings.
func BestCorrelation(haystack, needle []int16) (best float64, offset int) {
	if len(needle) == 0 || len(haystack) < len(needle) {
		return 0, -1
	}
	var nn float64
	for _, v := range needle {
		nn += float64(v) * float64(v)
	}
	offset = -1
	for off := 0; off+len(needle) <= len(haystack); off += 2 {
		var hh, hn float64
		seg := haystack[off : off+len(needle)]
		for i, v := range seg {
			hh += float64(v) * float64(v)
			hn += float64(v) * float64(needle[i])
		}
		if hh == 0 {
			continue
		}
		if c := hn / math.Sqrt(hh*nn); c > best {
			best, offset = c, off
		}
	}
	return best, offset
}

// WideSpeech is seconds of a speech-like signal at 16 kHz with wideband
// content: a voiced sound on a wavering pitch whose harmonics reach 6.5
// kHz, falling off as a voice's do, and bursts of a fricative (noise of 3.5 to 6.5 kHz, as s and
// f are), alternating at a syllable rate. Nothing of it lies above G.722's
// 7 kHz. It is deterministic for a seed.
func WideSpeech(seconds float64, seed int) []int16 {
	n := int(seconds * 16000)
	out := make([]int16, n)
	f0 := 130 + float64(seed%5)*11
	// The fricative: white noise through a windowed-sinc band-pass.
	const taps = 127
	band := make([]float64, taps)
	for k := range band {
		x := float64(k - taps/2)
		lo, hi := 3500.0/16000, 6500.0/16000
		h := 2 * (hi - lo)
		if x != 0 {
			h = (math.Sin(2*math.Pi*hi*x) - math.Sin(2*math.Pi*lo*x)) / (math.Pi * x)
		}
		band[k] = h * (0.42 - 0.5*math.Cos(2*math.Pi*float64(k)/(taps-1)) + 0.08*math.Cos(4*math.Pi*float64(k)/(taps-1)))
	}
	noise := make([]float64, n+taps)
	rng := uint32(seed)*2654435761 + 1
	for i := range noise {
		rng = rng*1664525 + 1013904223
		noise[i] = float64(int32(rng)) / float64(1<<31)
	}
	phase := 0.0 // of the fundamental, which wavers as a voice's does
	for i := range out {
		t := float64(i) / 16000
		f := f0 * (1 + 0.06*math.Sin(2*math.Pi*2.3*t))
		phase += 2 * math.Pi * f / 16000
		var voiced float64
		for h := 1; f*float64(h) < 6500; h++ {
			voiced += math.Sin(float64(h)*phase+float64(h*seed)) / float64(h)
		}
		var fricative float64
		for k, c := range band {
			fricative += c * noise[i+k]
		}
		syllable := 0.5 - 0.5*math.Cos(2*math.Pi*3.7*t)
		out[i] = int16(max(-32768, min(32767, 2000*voiced*syllable+8000*fricative*(1-syllable))))
	}
	return out
}

// AlignedCorrelation finds needle in haystack to the sample, for wideband
// audio (16 kHz, content to 7 kHz), whose correlation can fall from 1 to
// near 0 one sample off the peak: BestCorrelation's steps of two can miss
// it. A coarse search runs at a quarter of the rate (each sample the mean
// of four: the voice's low band, smooth around the peak), then every
// offset near its best is tried at the full rate. It also costs a tenth of
// a search at the full rate.
func AlignedCorrelation(haystack, needle []int16) (best float64, offset int) {
	_, coarse := BestCorrelation(quarter(haystack), quarter(needle))
	if coarse < 0 {
		return 0, -1
	}
	best, offset = math.Inf(-1), -1
	for off := max(4*coarse-12, 0); off <= 4*coarse+12 && off+len(needle) <= len(haystack); off++ {
		var hh, hn, nn float64
		for i, v := range haystack[off : off+len(needle)] {
			hh += float64(v) * float64(v)
			hn += float64(v) * float64(needle[i])
			nn += float64(needle[i]) * float64(needle[i])
		}
		if hh == 0 || nn == 0 {
			continue
		}
		if c := hn / math.Sqrt(hh*nn); c > best {
			best, offset = c, off
		}
	}
	if offset < 0 {
		return 0, -1
	}
	return best, offset
}

// quarter is x at a quarter of its rate, each sample the mean of four.
func quarter(x []int16) []int16 {
	out := make([]int16, len(x)/4)
	for i := range out {
		out[i] = int16((int(x[4*i]) + int(x[4*i+1]) + int(x[4*i+2]) + int(x[4*i+3])) / 4)
	}
	return out
}

// ToneAmplitude is the amplitude of the tone at freq in x (sampled at
// rate), by correlation: what a spectrum analyser shows at freq.
func ToneAmplitude(x []int16, rate, freq float64) float64 {
	var re, im float64
	for i, v := range x {
		w := 2 * math.Pi * freq * float64(i) / rate
		re += float64(v) * math.Cos(w)
		im += float64(v) * math.Sin(w)
	}
	return 2 * math.Hypot(re, im) / float64(max(len(x), 1))
}
