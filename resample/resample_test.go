package resample

import (
	"math"
	"testing"
)

// tone returns n samples of a sine at freq (Hz) sampled at rate, amplitude amp.
func tone(n int, rate, freq, amp float64) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(math.Round(amp * math.Sin(2*math.Pi*freq*float64(i)/rate)))
	}
	return s
}

// runFrames feeds src through r in frames of frame samples, as a call does.
func runFrames(r *Resampler, src []int16, frame int) []int16 {
	out := make([]int16, 0, r.OutLen(len(src))+frame)
	for i := 0; i < len(src); i += frame {
		end := min(i+frame, len(src))
		out = r.Process(out, src[i:end])
	}
	return out
}

// fitTone least-squares fits a·sin + b·cos at freq to x and returns the
// fitted amplitude and the RMS of what is left over (everything that is not
// the tone: images, aliases, distortion, noise).
func fitTone(x []int16, rate, freq float64) (amp, residualRMS float64) {
	var ss, cc, sc, xs, xc float64
	for i, v := range x {
		w := 2 * math.Pi * freq * float64(i) / rate
		s, c := math.Sin(w), math.Cos(w)
		ss += s * s
		cc += c * c
		sc += s * c
		xs += float64(v) * s
		xc += float64(v) * c
	}
	det := ss*cc - sc*sc
	a := (xs*cc - xc*sc) / det
	b := (xc*ss - xs*sc) / det
	var res float64
	for i, v := range x {
		w := 2 * math.Pi * freq * float64(i) / rate
		d := float64(v) - a*math.Sin(w) - b*math.Cos(w)
		res += d * d
	}
	return math.Hypot(a, b), math.Sqrt(res / float64(len(x)))
}

func rms(x []int16) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(len(x)))
}

func db(x float64) float64 { return 20 * math.Log10(x) }

const testAmp = 16000.0

// measure holds the figures the tests check and the benchmark docs quote.
type measure struct {
	rippleDB      float64 // passband max-min gain, 0…3.4 kHz
	worstRejectDB float64 // weakest stop-band rejection (positive dB)
}

// measureUp: narrow→24k. Passband gain from tones 100 Hz to the rate's
// pass band; image rejection from the residual after removing the fitted
// tone (all energy that is not the tone).
func measureUp(t testing.TB, r *Resampler, narrow int) measure {
	m := measure{worstRejectDB: math.Inf(1)}
	lo, hi := math.Inf(1), math.Inf(-1)
	frame := narrow / 50
	for f := 100.0; f <= passband(narrow); f += 100 {
		r.Reset()
		out := runFrames(r, tone(narrow, float64(narrow), f, testAmp), frame)
		steady := out[2000:]
		amp, res := fitTone(steady, 24000, f)
		g := db(amp / testAmp)
		lo, hi = math.Min(lo, g), math.Max(hi, g)
		rej := db(amp / (res * math.Sqrt2))
		m.worstRejectDB = math.Min(m.worstRejectDB, rej)
	}
	m.rippleDB = hi - lo
	return m
}

// measureDown: 24k→narrow. Passband as above; aliasing from tones between
// the narrow rate's Nyquist and 24 kHz's, which must all but vanish
// (anything left is aliased into the voice band).
func measureDown(t testing.TB, r *Resampler, narrow int) measure {
	m := measure{worstRejectDB: math.Inf(1)}
	lo, hi := math.Inf(1), math.Inf(-1)
	for f := 100.0; f <= passband(narrow); f += 100 {
		r.Reset()
		out := runFrames(r, tone(24000, 24000, f, testAmp), 480)
		amp, _ := fitTone(out[1000:], float64(narrow), f)
		g := db(amp / testAmp)
		lo, hi = math.Min(lo, g), math.Max(hi, g)
	}
	m.rippleDB = hi - lo
	for f := float64(narrow) / 2; f < 12000; f += 50 {
		r.Reset()
		out := runFrames(r, tone(24000, 24000, f, testAmp), 480)
		rej := db(testAmp / math.Sqrt2 / math.Max(rms(out[1000:]), 1e-9))
		m.worstRejectDB = math.Min(m.worstRejectDB, rej)
	}
	return m
}

// The quality bars hold at both call rates: G.711's 8 kHz (flat to 3.4 kHz)
// and G.722's 16 kHz (flat to 7 kHz).
func TestUpsampleQuality(t *testing.T) {
	for _, narrow := range []int{8000, 16000} {
		m := measureUp(t, MustNew(narrow, 24000), narrow)
		t.Logf("%d→24k: passband ripple %.4f dB to %.0f Hz, worst image rejection %.1f dB", narrow, m.rippleDB, passband(narrow), m.worstRejectDB)
		if m.rippleDB > 0.1 {
			t.Errorf("%d→24k: passband ripple %.3f dB > 0.1 dB", narrow, m.rippleDB)
		}
		if m.worstRejectDB < 70 {
			t.Errorf("%d→24k: image rejection %.1f dB < 70 dB", narrow, m.worstRejectDB)
		}
	}
}

func TestDownsampleQuality(t *testing.T) {
	for _, narrow := range []int{8000, 16000} {
		m := measureDown(t, MustNew(24000, narrow), narrow)
		t.Logf("24k→%d: passband ripple %.4f dB to %.0f Hz, worst alias rejection %.1f dB", narrow, m.rippleDB, passband(narrow), m.worstRejectDB)
		if m.rippleDB > 0.1 {
			t.Errorf("24k→%d: passband ripple %.3f dB > 0.1 dB", narrow, m.rippleDB)
		}
		if m.worstRejectDB < 70 {
			t.Errorf("24k→%d: alias rejection %.1f dB < 70 dB", narrow, m.worstRejectDB)
		}
	}
}

// A stream fed in odd-sized pieces must equal the same stream fed at once:
// the state carried across calls is exact.
func TestFrameBoundariesAreSeamless(t *testing.T) {
	for _, pair := range [][2]int{{8000, 24000}, {24000, 8000}, {16000, 24000}, {24000, 16000}, {8000, 16000}} {
		src := tone(4000, float64(pair[0]), 440, 12000)
		whole := MustNew(pair[0], pair[1]).Process(nil, src)
		r := MustNew(pair[0], pair[1])
		var pieces []int16
		sizes := []int{1, 7, 160, 3, 480, 2, 33}
		for i, k := 0, 0; i < len(src); k++ {
			n := min(sizes[k%len(sizes)], len(src)-i)
			pieces = r.Process(pieces, src[i:i+n])
			i += n
		}
		if len(whole) != len(pieces) {
			t.Fatalf("%v: %d samples whole, %d in pieces", pair, len(whole), len(pieces))
		}
		for i := range whole {
			if whole[i] != pieces[i] {
				t.Fatalf("%v: sample %d differs: %d vs %d", pair, i, whole[i], pieces[i])
			}
		}
		// Output n sits at input position n·in/out: ceil(len·out/in) of them fit.
		if want := (len(src)*pair[1] + pair[0] - 1) / pair[0]; len(whole) != want {
			t.Errorf("%v: %d samples out, want %d", pair, len(whole), want)
		}
	}
}

func TestSameRateIsCopy(t *testing.T) {
	r := MustNew(8000, 8000)
	src := tone(160, 8000, 1000, 1000)
	out := r.Process(nil, src)
	for i := range src {
		if out[i] != src[i] {
			t.Fatal("same-rate resampler changed the signal")
		}
	}
}

func TestUnsupportedRatio(t *testing.T) {
	for _, pair := range [][2]int{{8000, 44100}, {0, 8000}, {8000, -1}} {
		if _, err := New(pair[0], pair[1]); err == nil {
			t.Errorf("%v: want error", pair)
		}
	}
}

func TestClipsInsteadOfWrapping(t *testing.T) {
	// A full-scale square wave overshoots after filtering (Gibbs); it must clip, not wrap.
	src := make([]int16, 1600)
	for i := range src {
		if (i/20)%2 == 0 {
			src[i] = 32767
		} else {
			src[i] = -32768
		}
	}
	out := MustNew(8000, 24000).Process(nil, src)
	for i := 1; i < len(out); i++ {
		if d := int(out[i]) - int(out[i-1]); d > 40000 || d < -40000 {
			t.Fatalf("wrap-around at %d: %d → %d", i, out[i-1], out[i])
		}
	}
}

func TestNoAllocationPerFrame(t *testing.T) {
	up, down := MustNew(8000, 24000), MustNew(24000, 8000)
	in8, in24 := tone(160, 8000, 440, 8000), tone(480, 24000, 440, 8000)
	out24, out8 := make([]int16, 0, 481), make([]int16, 0, 161)
	allocs := testing.AllocsPerRun(100, func() {
		out24 = up.Process(out24[:0], in8)
		out8 = down.Process(out8[:0], in24)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per frame, want 0", allocs)
	}
	wideUp, wideDown := MustNew(16000, 24000), MustNew(24000, 16000)
	in16, out16 := tone(320, 16000, 440, 8000), make([]int16, 0, 321)
	allocs = testing.AllocsPerRun(100, func() {
		out24 = wideUp.Process(out24[:0], in16)
		out16 = wideDown.Process(out16[:0], in24)
	})
	if allocs != 0 {
		t.Errorf("16 kHz: %v allocations per frame, want 0", allocs)
	}
}

func BenchmarkUp8kTo24kFrame(b *testing.B) {
	r := MustNew(8000, 24000)
	in := tone(160, 8000, 440, 8000)
	out := make([]int16, 0, r.OutLen(160))
	b.ReportAllocs()
	for b.Loop() {
		out = r.Process(out[:0], in)
	}
}

func BenchmarkUp16kTo24kFrame(b *testing.B) {
	r := MustNew(16000, 24000)
	in := tone(320, 16000, 440, 8000)
	out := make([]int16, 0, r.OutLen(320))
	b.ReportAllocs()
	for b.Loop() {
		out = r.Process(out[:0], in)
	}
}

func BenchmarkDown24kTo16kFrame(b *testing.B) {
	r := MustNew(24000, 16000)
	in := tone(480, 24000, 440, 8000)
	out := make([]int16, 0, r.OutLen(480))
	b.ReportAllocs()
	for b.Loop() {
		out = r.Process(out[:0], in)
	}
}

func BenchmarkDown24kTo8kFrame(b *testing.B) {
	r := MustNew(24000, 8000)
	in := tone(480, 24000, 440, 8000)
	out := make([]int16, 0, r.OutLen(480))
	b.ReportAllocs()
	for b.Loop() {
		out = r.Process(out[:0], in)
	}
}

// The prototype itself, checked analytically on a fine frequency grid: the
// stream tests above sample it with tones, this checks between the tones too.
func TestDesignMargins(t *testing.T) {
	for _, narrow := range []int{8000, 16000} {
		r := MustNew(24000, narrow)
		// The prototype, at the intermediate rate, from its polyphase
		// branches: branch p holds h[p + k·up] reversed.
		h := make([]float64, r.taps*r.up)
		for p, ph := range r.phases {
			for k := range ph {
				h[p+k*r.up] = float64(ph[r.taps-1-k]) / float64(r.up)
			}
		}
		rate := float64(24000 * r.up)
		worst := math.Inf(-1)
		for f := float64(narrow) / 2; f <= rate/2; f += 5 {
			worst = math.Max(worst, Response(h, rate, f))
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for f := 0.0; f <= passband(narrow); f += 5 {
			g := Response(h, rate, f)
			lo, hi = math.Min(lo, g), math.Max(hi, g)
		}
		t.Logf("24k→%d prototype: %d taps, stop band peak %.1f dB, pass band ripple %.4f dB to %.0f Hz", narrow, len(h), worst, hi-lo, passband(narrow))
		if worst > -70 || hi-lo > 0.1 {
			t.Errorf("24k→%d design out of spec: stop %.1f dB, ripple %.4f dB", narrow, worst, hi-lo)
		}
	}
}

// The vector kernels must agree with the portable loops they replace.
func TestKernelsAgree(t *testing.T) {
	for _, n := range []int{16, 72, 216, 208} {
		a, b, c, w := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range a {
			a[i] = float32(math.Sin(float64(i)))
			b[i] = float32(math.Cos(float64(i) * 0.7))
			c[i] = float32(i%7) - 3
			w[i] = float32((i*7919)%2001 - 1000)
		}
		if got, want := dotFast(a, w), dot(a, w); math.Abs(float64(got-want)) > 1e-3*math.Max(1, math.Abs(float64(want))) {
			t.Errorf("n=%d dot: %v vs %v", n, got, want)
		}
		g0, g1, g2 := dot3(a, b, c, w)
		for i, p := range [][2]float32{{g0, dot(a, w)}, {g1, dot(b, w)}, {g2, dot(c, w)}} {
			if math.Abs(float64(p[0]-p[1])) > 1e-3*math.Max(1, math.Abs(float64(p[1]))) {
				t.Errorf("n=%d dot3[%d]: %v vs %v", n, i, p[0], p[1])
			}
		}
	}
	// The vector convolution, every block size it has (64, 32, 8) and both
	// modes, against the scalar reference.
	for _, taps := range []int{1, 7, 72} {
		for _, n := range []int{8, 40, 64, 104, 160, 488} {
			h, x := make([]float32, taps), make([]float32, n+taps-1)
			for i := range h {
				h[i] = float32(math.Sin(float64(i)*0.3)) / float32(taps)
			}
			for i := range x {
				x[i] = float32((i*7919)%2001 - 1000)
			}
			for _, acc := range []bool{false, true} {
				got, want := make([]float32, n), make([]float32, n)
				for i := range got {
					got[i], want[i] = float32(i), float32(i)
				}
				convFast(h, x, got, n, acc)
				conv(h, x, want, n, acc)
				for j := range want {
					if math.Abs(float64(got[j]-want[j])) > 1e-3*math.Max(1, math.Abs(float64(want[j]))) {
						t.Fatalf("taps=%d n=%d acc=%v: out[%d] %v, want %v", taps, n, acc, j, got[j], want[j])
					}
				}
			}
		}
	}
	sym := make([]float32, hotTaps)
	for i := range sym[:hotTaps/2] {
		sym[i] = float32(i)
		sym[hotTaps-1-i] = float32(i)
	}
	w := make([]float32, hotTaps)
	for i := range w {
		w[i] = float32(i%13) - 6
	}
	if got, want := dotSymmetricHot((*[hotTaps / 2]float32)(sym), (*[hotTaps]float32)(w)), dot(sym, w); got != want {
		t.Errorf("symmetric hot: %v vs %v", got, want)
	}
	if got, want := dotSymmetric(sym, w), dot(sym, w); got != want {
		t.Errorf("symmetric: %v vs %v", got, want)
	}
}

// Files come at CD rates too: 44.1 and 22.05 kHz reach the model's 24 kHz
// in one stage (80/147, 160/147), a tone stays the tone at its level, and
// nothing else appears.
func TestFileRatesToTheModelsRate(t *testing.T) {
	for _, in := range []int{44100, 22050, 32000, 48000} {
		r, err := New(in, 24000)
		if err != nil {
			t.Fatalf("%d → 24000: %v", in, err)
		}
		src := tone(in, float64(in), 1000, 10000) // 1 s
		out := r.Flush(r.Process(nil, src))
		if want := 24000; len(out) < want-10 || len(out) > want+int(2*r.Delay())+10 {
			t.Errorf("%d → 24000: %d samples for 1 s", in, len(out))
		}
		body := out[2400 : len(out)-2400] // leave the filter's edges
		var total, re, im float64
		for i, v := range body {
			x := float64(v)
			total += x * x
			re += x * math.Cos(2*math.Pi*1000*float64(i)/24000)
			im += x * math.Sin(2*math.Pi*1000*float64(i)/24000)
		}
		n := float64(len(body))
		toneShare := 2 * (re*re + im*im) / n / total
		rmsDB := 10 * math.Log10(total/n/(10000*10000/2))
		if toneShare < 0.999 || math.Abs(rmsDB) > 0.1 {
			t.Errorf("%d → 24000: the tone is %.5f of the power, level %+.3f dB", in, toneShare, rmsDB)
		}
	}
}

// Flush serves every ratio New takes, the file rates' large ones too
// (144 kHz → 8 kHz is a factor of 18; it once ran past Flush's silence).
// (16 kHz × 160 → 16 kHz: the wideband filter, longer than the silence Flush
// feeds at once.)
func TestFlushAtEveryFactor(t *testing.T) {
	for _, pair := range [][2]int{{144000, 8000}, {44100, 24000}, {11025 * 2, 24000}, {8000, 48000}, {192000, 8000}, {16000 * 160, 16000}} {
		r, err := New(pair[0], pair[1])
		if err != nil {
			continue // not a ratio New takes
		}
		out := r.Flush(r.Process(nil, tone(pair[0]/10, float64(pair[0]), 440, 8000)))
		if len(out) == 0 {
			t.Errorf("%v: nothing out", pair)
		}
		if got := r.Flush(nil); len(got) == 0 {
			t.Errorf("%v: a Flush of nothing gave nothing (it should give the filter's silence)", pair)
		}
	}
}

// The split path of a small rational ratio (16 kHz ⇄ 24 kHz) computes what
// the plain path does, each output a dot product of a branch with the
// history, up to the order of the float additions: within one step of
// the 16-bit output.
func TestRationalPathAgreesWithThePlainOne(t *testing.T) {
	for _, pair := range [][2]int{{16000, 24000}, {24000, 16000}} {
		fast, plain := MustNew(pair[0], pair[1]), MustNew(pair[0], pair[1])
		if fast.split == nil {
			t.Fatalf("%d→%d has no split filters", pair[0], pair[1])
		}
		plain.split = nil
		in := tone(pair[0], float64(pair[0]), 1234, 12000)
		for i := range in {
			in[i] += int16(3000 * math.Sin(float64(i)*float64(i)/9e5)) // a chirp across the band
		}
		frame := pair[0] / 50
		a, b := runFrames(fast, in, frame), runFrames(plain, in, frame)
		if len(a) != len(b) {
			t.Fatalf("%d→%d: %d samples, the plain path %d", pair[0], pair[1], len(a), len(b))
		}
		for i := range a {
			if d := int(a[i]) - int(b[i]); d > 1 || d < -1 {
				t.Fatalf("%d→%d: sample %d is %d, the plain path's %d", pair[0], pair[1], i, a[i], b[i])
			}
		}
	}
}
