package resample

import (
	"math"
	"sync"
)

// The filters a Resampler runs: designed once per rate pair and shared
// (read-only), split as its block paths read them.

// filters holds each rate pair's polyphase branches, designed once and
// shared: they are read-only, and every call needs the same two.
var filters sync.Map // [2]int{in, out} → [][]float32

// filterFor designs, or finds, the polyphase branches for in → out.
func filterFor(inRate, outRate, up, down int) [][]float32 {
	key := [2]int{inRate, outRate}
	if f, ok := filters.Load(key); ok {
		return f.([][]float32)
	}
	// The prototype runs at the intermediate rate inRate*up. Its cut-off sits
	// between the voice band and the narrower rate's Nyquist frequency, so the
	// transition band is PassbandHz … narrowRate/2.
	narrow := min(inRate, outRate)
	high := float64(inRate * up)
	stop := float64(narrow) / 2
	pass := passband(narrow)
	// Slightly below the middle of the transition band: found by sweeping the
	// design (see TestDesignMargins) to balance ripple against rejection at stop.
	cutoff := pass + 0.46*(stop-pass)
	n := tapsFor(narrow, pass) * max(up, down)
	// Round the length up so every phase has the same number of taps, a
	// multiple of 8 (the vector kernels' width).
	n = (n + 8*up - 1) / (8 * up) * (8 * up)
	h := design(n, high, cutoff, kaiserBeta(StopbandAttenuationDB), float64(up))
	taps := n / up
	phases := make([][]float32, up)
	for p := 0; p < up; p++ {
		ph := make([]float32, taps)
		for k := 0; k < taps; k++ {
			// Branch p uses h[p + k·up] on x[n-k]; store reversed for a forward dot product.
			ph[taps-1-k] = float32(h[p+k*up])
		}
		phases[p] = ph
	}
	f, _ := filters.LoadOrStore(key, phases)
	return f.([][]float32)
}

// passband is the band a conversion keeps flat, by the narrower rate.
func passband(narrow int) float64 {
	if narrow == 16000 {
		return WidebandPassbandHz
	}
	return PassbandHz * float64(narrow) / 8000
}

// tapsFor is the filter's taps per phase: tapsPerPhase for the telephone
// band's transition (3.4 to 4 kHz at 8 kHz), more for a band that leaves a
// narrower share of the rate to the transition (7 to 8 kHz at 16 kHz: 88),
// since a Kaiser filter's length goes with the inverse of its transition.
// It is a multiple of 8, the vector kernels' width.
func tapsFor(narrow int, pass float64) int {
	const reference = 0.5 - PassbandHz/8000.0 // the telephone band's transition, as a share of the rate
	share := 0.5 - pass/float64(narrow)
	taps := int(math.Ceil(tapsPerPhase*reference/share - 1e-9)) // exactly tapsPerPhase at 8 kHz, whatever the rounding
	return (taps + 7) &^ 7
}

// streamsFor splits a decimator's filter over the input's interleaved
// streams, once per rate pair.
func streamsFor(inRate, outRate int, h []float32, down int) [][]float32 {
	key := [2]int{inRate, outRate}
	if s, ok := decimators.Load(key); ok {
		return s.([][]float32)
	}
	streams := make([][]float32, down)
	for q := range streams {
		for k := q; k < len(h); k += down {
			streams[q] = append(streams[q], h[k])
		}
	}
	s, _ := decimators.LoadOrStore(key, streams)
	return s.([][]float32)
}

var decimators sync.Map // [2]int{in, out} → [][]float32

// maxSplit bounds up·down for the split filters of rational: the call
// rates' ratios (3/2, 2/3) are far below it, the file conversions' (80/147)
// far above, and they keep the plain path.
const maxSplit = 36

// splitFor splits each polyphase branch over the input's down interleaved
// streams, once per rate pair.
func splitFor(inRate, outRate int, phases [][]float32, down int) [][][]float32 {
	key := [2]int{inRate, outRate}
	if s, ok := splits.Load(key); ok {
		return s.([][][]float32)
	}
	split := make([][][]float32, len(phases))
	for p, h := range phases {
		split[p] = make([][]float32, down)
		for q := range down {
			for k := q; k < len(h); k += down {
				split[p][q] = append(split[p][q], h[k])
			}
		}
	}
	s, _ := splits.LoadOrStore(key, split)
	return s.([][][]float32)
}

var splits sync.Map // [2]int{in, out} → [][][]float32

// design returns a Kaiser-windowed sinc low-pass of n taps at the sampling
// rate rate (Hz), cutting off at cutoff (Hz), scaled to DC gain gain.
func design(n int, rate, cutoff, beta, gain float64) []float64 {
	h := make([]float64, n)
	mid := float64(n-1) / 2
	fc := cutoff / rate
	i0beta := besselI0(beta)
	var sum float64
	for i := range h {
		x := float64(i) - mid
		var s float64
		if x == 0 {
			s = 2 * fc
		} else {
			s = math.Sin(2*math.Pi*fc*x) / (math.Pi * x)
		}
		r := x / mid
		w := besselI0(beta*math.Sqrt(math.Max(0, 1-r*r))) / i0beta
		h[i] = s * w
		sum += h[i]
	}
	for i := range h {
		h[i] *= gain / sum
	}
	return h
}

// besselI0 is the zeroth-order modified Bessel function of the first kind,
// by its power series (converges fast for the beta values used here).
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	q := x * x / 4
	for k := 1; k < 200; k++ {
		term *= q / float64(k*k)
		sum += term
		if term < sum*1e-17 {
			break
		}
	}
	return sum
}

// kaiserBeta gives the window shape for a stop-band attenuation of atten dB.
func kaiserBeta(atten float64) float64 {
	switch {
	case atten > 50:
		return 0.1102 * (atten - 8.7)
	case atten >= 21:
		return 0.5842*math.Pow(atten-21, 0.4) + 0.07886*(atten-21)
	default:
		return 0
	}
}

// Response returns the magnitude response in dB of taps h (at rate) at freq,
// relative to unity. It lets tests and tools inspect the designed prototype.
func Response(h []float64, rate, freq float64) float64 {
	var re, im float64
	w := 2 * math.Pi * freq / rate
	for i, c := range h {
		re += c * math.Cos(w*float64(i))
		im -= c * math.Sin(w*float64(i))
	}
	return 20 * math.Log10(math.Hypot(re, im))
}
