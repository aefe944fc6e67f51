package resample

import "math"

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
