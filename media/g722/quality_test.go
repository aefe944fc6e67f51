package g722

import (
	"math"
	"math/rand/v2"
	"testing"
)

// codecDelay is the encoder-plus-decoder delay in 16 kHz samples: the
// transmit and receive QMFs are 24-tap linear-phase filters, 11.5 samples
// each, less the one sample by which the decoder's output pair leads the
// encoder's input pair.
const codecDelay = 22

func roundTrip(pcm []int16) []int16 {
	return NewDecoder().Decode(nil, NewEncoder().Encode(nil, pcm))
}

// tone is n samples of a sine at f Hz and level dB relative to full scale
// (peak).
func tone(f, dB float64, n int) []int16 {
	a := 32767 * math.Pow(10, dB/20)
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(math.Round(a * math.Sin(2*math.Pi*f*float64(i)/16000)))
	}
	return pcm
}

// snr compares out, delayed by codecDelay, with in from sample from on
// (leaving the adaptation at the start out) and returns the
// signal-to-error ratio and the output's gain, both in dB.
func snr(in, out []int16, from int) (snr, gain float64) {
	var sig, errs, pow float64
	for i := from; i+codecDelay < len(out); i++ {
		x, y := float64(in[i]), float64(out[i+codecDelay])
		sig += x * x
		errs += (y - x) * (y - x)
		pow += y * y
	}
	return 10 * math.Log10(sig/errs), 10 * math.Log10(pow/sig)
}

// TestDelay measures the codec's delay as the lag that best correlates
// white noise with its coding, and checks it is codecDelay.
func TestDelay(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	in := make([]int16, 16000)
	for i := range in {
		in[i] = int16(r.IntN(16001) - 8000)
	}
	out := roundTrip(in)
	best, bestLag := math.Inf(-1), -1
	for lag := range 64 {
		c := 0.0
		for i := 2000; i+lag < len(out); i++ {
			c += float64(in[i]) * float64(out[i+lag])
		}
		if c > best {
			best, bestLag = c, lag
		}
	}
	if bestLag != codecDelay {
		t.Fatalf("delay %d samples, want %d", bestLag, codecDelay)
	}
}

// TestToneSNR codes tones at -10 dBFS and checks the round trip's SNR,
// after the first quarter second, against what the algorithm achieves
// (FFmpeg's coder, which is bit-exact with this one, measures the same).
// The lower band's 6-bit ADPCM codes 1 kHz at 47 dB; the higher band's
// 2-bit ADPCM holds tones in the upper band to 22-26 dB, so no
// conformant G.722 codes a 5 kHz tone at 25 dB.
func TestToneSNR(t *testing.T) {
	for _, c := range []struct {
		f, minSNR float64
	}{
		{1000, 45},
		{5000, 21.5}, // measured 22.0 dB
		{6500, 25},   // measured 26.1 dB
	} {
		in := tone(c.f, -10, 16000)
		s, g := snr(in, roundTrip(in), 4000)
		t.Logf("%5.0f Hz: SNR %.1f dB, gain %+.2f dB", c.f, s, g)
		if s < c.minSNR || math.Abs(g) > 0.2 {
			t.Errorf("%.0f Hz: SNR %.1f dB (want >= %.1f), gain %+.2f dB", c.f, s, c.minSNR, g)
		}
	}
}

// TestBandEdge documents that the codec itself does not band-limit: the
// higher sub-band reaches 8 kHz, and a tone at 7.5 or 7.9 kHz comes
// through at full level. The Recommendation's 50-7000 Hz audio bandwidth
// is the job of the filters in front of the encoder and after the
// decoder, which it specifies separately and which are not part of the
// coding algorithm (FFmpeg's coder passes these tones the same way).
func TestBandEdge(t *testing.T) {
	for _, f := range []float64{7500, 7900} {
		in := tone(f, -10, 16000)
		s, g := snr(in, roundTrip(in), 4000)
		t.Logf("%5.0f Hz: SNR %.1f dB, gain %+.2f dB", f, s, g)
		if math.Abs(g) > 0.5 || s < 20 {
			t.Errorf("%.0f Hz: SNR %.1f dB, gain %+.2f dB", f, s, g)
		}
	}
}

// TestSilence checks that digital silence codes to the small idle noise
// of an ADPCM coder whose quantizer has no zero level (about ±4 LSB, -88
// dBFS), not to a tone or a drift.
func TestSilence(t *testing.T) {
	out := roundTrip(make([]int16, 16000))
	power := 0.0
	for i, y := range out {
		if y < -8 || y > 8 {
			t.Fatalf("silence decodes to %d at sample %d", y, i)
		}
		power += float64(y) * float64(y)
	}
	if power /= float64(len(out)); power > 4 {
		t.Fatalf("idle noise power %.1f LSB², want <= 4", power)
	}
}
