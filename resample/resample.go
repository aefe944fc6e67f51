// Package resample converts streams of 16-bit PCM between sample rates with a
// polyphase windowed-sinc FIR. State is carried across calls, so a call's audio
// can be fed frame by frame with no clicks at frame edges, and nothing is
// allocated per frame.
package resample

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Quality figures the design is built for: the telephone band passes flat and
// everything from the Nyquist of the narrower rate up is removed.
const (
	// PassbandHz is the top of the telephone voice band at 8 kHz; at other
	// rates but 16 kHz the pass band scales with the narrower rate.
	PassbandHz = 3400
	// WidebandPassbandHz is the top of the wideband voice band (G.722's
	// 50-7000 Hz), kept flat when the narrower rate is 16 kHz.
	WidebandPassbandHz = 7000
	// StopbandAttenuationDB is the design attenuation above the narrow rate's
	// Nyquist frequency (tests hold the implementation to at least 70 dB).
	StopbandAttenuationDB = 80
	// tapsPerPhase sets the telephone band's filter length: taps =
	// tapsPerPhase × max(up, down) (tapsFor: more for the wideband).
	tapsPerPhase = 72
)

// maxFactor bounds the up and down factors of a ratio.
const maxFactor = 160

// ErrUnsupportedRatio is returned for rate pairs without a small integer ratio.
var ErrUnsupportedRatio = errors.New("resample: unsupported rate ratio")

// Resampler converts PCM16 mono from one rate to another. It is not safe for
// concurrent use: one per direction per call.
type Resampler struct {
	inRate, outRate int
	up, down        int
	// phases[p] holds the taps of polyphase branch p in reverse order, so each
	// output is a forward dot product over the history window.
	phases [][]float32
	// streams[q] is, for a pure decimator, the taps phases[0][down·m+q]: the
	// filter split over the input's down interleaved streams (see decimate).
	streams [][]float32
	// split[p][q] is, for a small rational ratio (16k⇄24k), the taps
	// phases[p][down·m+q]: each branch split the same way (see rational).
	split [][][]float32
	taps  int // taps per phase
	// hist holds the last taps-1 input samples followed by the current block.
	hist []float32
	// phase is the position of the next output between input samples, in
	// units of 1/up of an input sample, relative to the start of the block.
	phase int
}

// New returns a resampler from inRate to outRate (Hz). The ratio must reduce
// to integers up/down no larger than maxFactor: 8k↔16k↔24k↔48k (at most 6)
// and the 44.1 kHz family to them (44.1k→24k is 80/147, 22.05k→24k
// 160/147) all qualify. The large ratios are for converting files: their
// filters have as many phases as up.
func New(inRate, outRate int) (*Resampler, error) {
	if inRate <= 0 || outRate <= 0 {
		return nil, fmt.Errorf("%w: %d → %d Hz", ErrUnsupportedRatio, inRate, outRate)
	}
	g := gcd(inRate, outRate)
	up, down := outRate/g, inRate/g
	if up > maxFactor || down > maxFactor {
		return nil, fmt.Errorf("%w: %d → %d Hz", ErrUnsupportedRatio, inRate, outRate)
	}
	r := &Resampler{inRate: inRate, outRate: outRate, up: up, down: down}
	if up == 1 && down == 1 {
		return r, nil
	}
	r.phases = filterFor(inRate, outRate, up, down)
	r.taps = len(r.phases[0])
	if up == 1 && r.taps%down == 0 {
		r.streams = streamsFor(inRate, outRate, r.phases[0], down)
	}
	if up > 1 && down > 1 && up*down <= maxSplit {
		r.split = splitFor(inRate, outRate, r.phases, down)
	}
	r.hist = make([]float32, r.taps-1, r.taps-1+480+7) // a 20 ms block at 24 kHz, and the padding (Process)
	return r, nil
}

// scratch holds Process calls' intermediate floats: a call keeps none
// between frames. A channel rather than a sync.Pool: a pool is emptied by
// every collection (and at random under the race detector), and each refill
// would be an allocation on the frame path. It holds as many buffers as
// Process calls ever ran at once, a handful.
var scratch = make(chan *[]float32, 64)

func getScratch(n int) *[]float32 {
	var b *[]float32
	select {
	case b = <-scratch:
	default:
		b = new([]float32)
	}
	if cap(*b) < n {
		*b = make([]float32, n, max(n, 2048))
	}
	*b = (*b)[:n]
	return b
}

func putScratch(b *[]float32) {
	select {
	case scratch <- b:
	default:
	}
}

// MustNew is New for rate pairs fixed in code; it panics on a bad pair.
func MustNew(inRate, outRate int) *Resampler {
	r, err := New(inRate, outRate)
	if err != nil {
		panic(err)
	}
	return r
}

// String names the conversion, for logs.
func (r *Resampler) String() string {
	return fmt.Sprintf("resample %d→%d Hz (×%d/%d, %d taps)", r.inRate, r.outRate, r.up, r.down, r.taps*r.up)
}

// OutRate is the rate the resampler converts to.
func (r *Resampler) OutRate() int { return r.outRate }

// Delay is the group delay the filter adds, in output samples. It is
// fractional: the filter's length is even, so its centre falls between two
// samples (107.5 output samples at 24 kHz for 8→24, 35.83 at 8 kHz for
// 24→8: 4.48 ms either way).
func (r *Resampler) Delay() float64 {
	if r.taps == 0 {
		return 0
	}
	return float64(r.taps*r.up-1) / 2 / float64(r.down)
}

// flushInput is how many input samples of silence bring every output
// whose centre lies within the stream out of the filter: its delay in
// input samples, rounded up.
func (r *Resampler) flushInput() int {
	return (r.taps*r.up - 1 + 2*r.up - 1) / (2 * r.up)
}

// silence feeds Flush: the longest telephone-band filter (maxFactor ×
// tapsPerPhase taps at the intermediate rate) holds half its length in
// input samples. A longer one (the wideband filter's) is fed it twice.
var silence [tapsPerPhase*maxFactor/2 + maxFactor]int16

// Flush ends the stream: the samples the filter still holds (its delay's
// worth, the last few milliseconds of what was put in) are appended to dst,
// and the resampler is Reset for the next stream. Without it a stream's end
// comes out at the start of the next one. With dst of capacity
// OutLen(FlushLen()) or more, nothing is allocated.
func (r *Resampler) Flush(dst []int16) []int16 {
	if r.taps == 0 {
		return dst
	}
	for n := r.flushInput(); n > 0; {
		k := min(n, len(silence))
		dst = r.Process(dst, silence[:k])
		n -= k
	}
	r.Reset()
	return dst
}

// FlushLen is how many input samples' worth Flush appends.
func (r *Resampler) FlushLen() int {
	if r.taps == 0 {
		return 0
	}
	return r.flushInput()
}

// OutLen is the most samples Process can return for n input samples.
func (r *Resampler) OutLen(n int) int { return (n*r.up)/r.down + 1 }

// Reset forgets the stream history, as at the start of a new stream.
func (r *Resampler) Reset() {
	if r.taps == 0 {
		return
	}
	r.hist = r.hist[:r.taps-1]
	clear(r.hist)
	r.phase = 0
}

// Process converts src and appends the result to dst, returning it. With dst
// of capacity OutLen(len(src)) or more, nothing is allocated.
func (r *Resampler) Process(dst, src []int16) []int16 {
	if r.taps == 0 {
		return append(dst, src...)
	}
	keep := r.taps - 1
	// 7 more than the block: the vector interpolator's padding outputs read
	// up to 7 samples past it (see interpolate).
	r.hist = slices.Grow(r.hist, len(src)+7)
	block := r.hist[len(r.hist) : len(r.hist)+len(src)]
	for i, s := range src {
		block[i] = float32(s)
	}
	r.hist = r.hist[:len(r.hist)+len(src)]
	avail := len(r.hist) - keep // new input samples in this block
	// Output j of this block reads input index base = phase/up (relative to the
	// block start) with polyphase branch phase%up.
	pos := r.phase
	switch {
	case useAVX2 && r.down == 1:
		dst = r.interpolate(dst, avail)
		pos = avail * r.up
	case useAVX2 && r.streams != nil:
		dst, pos = r.decimate(dst, avail, pos)
	case useAVX2 && r.split != nil:
		dst, pos = r.rational(dst, avail, pos)
	case r.down == 1 && r.up == 3:
		// Pure ×3 interpolation: the three branches share one window, so one
		// pass over it yields three outputs (a third of the loads).
		for base := 0; base < avail; base++ {
			s0, s1, s2 := dot3(r.phases[0], r.phases[1], r.phases[2], r.hist[base:base+r.taps])
			dst = append(dst, toInt16(s0), toInt16(s1), toInt16(s2))
		}
		pos = avail * 3
	case r.up == 1:
		// Pure decimation uses the linear-phase prototype's symmetry to halve
		// the multiplications.
		h := r.phases[0]
		if len(h) == hotTaps {
			hh := (*[hotTaps / 2]float32)(h)
			for ; pos < avail; pos += r.down {
				dst = append(dst, toInt16(dotSymmetricHot(hh, (*[hotTaps]float32)(r.hist[pos:pos+hotTaps]))))
			}
			break
		}
		for ; pos < avail; pos += r.down {
			dst = append(dst, toInt16(dotSymmetric(h, r.hist[pos:pos+r.taps])))
		}
	default:
		for {
			base := pos / r.up
			if base >= avail {
				break
			}
			ph := r.phases[pos%r.up]
			dst = append(dst, toInt16(dotFast(ph, r.hist[base:base+r.taps])))
			pos += r.down
		}
	}
	r.phase = pos - avail*r.up
	// Keep the last taps-1 samples as the history for the next block.
	copy(r.hist, r.hist[len(r.hist)-keep:])
	r.hist = r.hist[:keep]
	return dst
}

// The vector paths compute outputs eight at a time, across outputs rather
// than across taps: each tap is one broadcast and one fused multiply-add
// per eight outputs, with no horizontal sums. A block whose length is not a
// multiple of eight is padded, and the padding outputs thrown away, so
// every output is computed the same way wherever the block boundaries fall
// (a stream fed in pieces gives the same samples as fed whole).

// interpolate is Process for ×up: each branch is one convolution over the
// window, and the branches' outputs interleave.
func (r *Resampler) interpolate(dst []int16, avail int) []int16 {
	n8 := (avail + 7) &^ 7
	x := r.hist[:len(r.hist)+n8-avail] // Process left room for the padding
	sp := getScratch(r.up * n8)
	out := *sp
	for p, ph := range r.phases {
		convFast(ph, x, out[p*n8:], n8, false)
	}
	if r.up == 3 {
		a, b, c := out[:avail], out[n8:n8+avail], out[2*n8:2*n8+avail]
		for i := range a {
			dst = append(dst, toInt16(a[i]), toInt16(b[i]), toInt16(c[i]))
		}
	} else {
		for i := 0; i < avail; i++ {
			for p := 0; p < r.up; p++ {
				dst = append(dst, toInt16(out[p*n8+i]))
			}
		}
	}
	putScratch(sp)
	return dst
}

// decimate is Process for ÷down from input position pos. Output j is
// Σ_k h[k]·x[pos+down·j+k]; with k = down·m+q that is Σ_q Σ_m
// streams[q][m]·s_q[j+m] over the input's interleaved streams
// s_q[i] = x[pos+q+down·i]: down contiguous convolutions.
func (r *Resampler) decimate(dst []int16, avail, pos int) ([]int16, int) {
	if pos >= avail {
		return dst, pos
	}
	nout := (avail - pos + r.down - 1) / r.down
	n8 := (nout + 7) &^ 7
	span := n8 + len(r.streams[0]) - 1
	sp := getScratch(n8 + r.down*span)
	out := (*sp)[:n8]
	// The streams' samples in the history, and zeros for the padding
	// outputs' windows after them.
	have := min(span, (len(r.hist)-pos)/r.down)
	if r.down == 3 {
		s0, s1, s2 := (*sp)[n8:n8+span], (*sp)[n8+span:n8+2*span], (*sp)[n8+2*span:n8+3*span]
		x := r.hist[pos : pos+3*have]
		for i := range have {
			s0[i], s1[i], s2[i] = x[3*i], x[3*i+1], x[3*i+2]
		}
	} else {
		for q := range r.down {
			s := (*sp)[n8+q*span : n8+(q+1)*span]
			for i := range have {
				s[i] = r.hist[pos+q+r.down*i]
			}
		}
	}
	for q, h := range r.streams {
		s := (*sp)[n8+q*span : n8+(q+1)*span]
		// A stream may have one sample more in the history than whole
		// groups of down hold: it is read by no output kept, so zero too.
		clear(s[have:])
		convFast(h, s, out, n8, q > 0)
	}
	for _, v := range out[:nout] {
		dst = append(dst, toInt16(v))
	}
	putScratch(sp)
	return dst, pos + nout*r.down
}

// rational is Process for a small ratio up/down, both above one (16 kHz
// to 24 kHz is 3/2, back 2/3), from position pos. Output j sits at pos +
// down·j: branch (pos + down·j) mod up, input (pos + down·j) / up. The
// outputs j ≡ res (mod up) share a branch and step down inputs apart: a
// decimation by down with that branch, which decimate's reasoning turns
// into contiguous convolutions over the input's down interleaved streams
// S_c[i] = x[c + down·i] (built once for all the branches). Each output is
// the same sum of the same products, in the same order, wherever a block
// starts, so a stream fed in pieces equals it fed whole.
func (r *Resampler) rational(dst []int16, avail, pos int) ([]int16, int) {
	limit := avail * r.up
	if pos >= limit {
		return dst, pos
	}
	nout := (limit - pos + r.down - 1) / r.down
	start := len(dst)
	dst = slices.Grow(dst, nout)[:start+nout]
	out := dst[start:]
	n8 := ((nout+r.up-1)/r.up + 7) &^ 7 // the most outputs one branch has, padded
	longest := len(r.split[0][0])
	span := len(r.hist)/r.down + 1 + n8 + longest
	sp := getScratch(r.down*span + n8)
	buf := *sp
	acc := buf[r.down*span:]
	for c := range r.down {
		s := buf[c*span : (c+1)*span]
		i := 0
		for k := c; k < len(r.hist); k += r.down {
			s[i] = r.hist[k]
			i++
		}
		clear(s[i:]) // read only by padding outputs, thrown away
	}
	for res := 0; res < r.up && res < nout; res++ {
		at := pos + res*r.down
		branch, base := at%r.up, at/r.up
		n := (nout - res + r.up - 1) / r.up
		for q, h := range r.split[branch] {
			o := base + q
			convFast(h, buf[(o%r.down)*span+o/r.down:(o%r.down+1)*span], acc, (n+7)&^7, q > 0)
		}
		for k := range n {
			out[res+r.up*k] = toInt16(acc[k])
		}
	}
	putScratch(sp)
	return dst, pos + nout*r.down
}

// conv is out[j] (+)= Σ_k h[k]·x[j+k] for j < n, the vector kernel's
// reference.
func conv(h, x, out []float32, n int, acc bool) {
	for j := 0; j < n; j++ {
		var s float32
		if acc {
			s = out[j]
		}
		for k, c := range h {
			s += c * x[j+k]
		}
		out[j] = s
	}
}

func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func dot3(a, b, c, w []float32) (float32, float32, float32) {
	n := len(a)
	b, c, w = b[:n], c[:n], w[:n]
	var a0, a1, b0, b1, c0, c1 float32
	i := 0
	for ; i+2 <= n; i += 2 {
		x0, x1 := w[i], w[i+1]
		a0 += a[i] * x0
		a1 += a[i+1] * x1
		b0 += b[i] * x0
		b1 += b[i+1] * x1
		c0 += c[i] * x0
		c1 += c[i+1] * x1
	}
	for ; i < n; i++ {
		a0 += a[i] * w[i]
		b0 += b[i] * w[i]
		c0 += c[i] * w[i]
	}
	return a0 + a1, b0 + b1, c0 + c1
}

// hotTaps is the prototype length of the ÷3 decimator on the call path
// (24 kHz model audio to 8 kHz), which gets a loop with fixed bounds.
const hotTaps = tapsPerPhase * 3

// dotSymmetricHot is dotSymmetric for the ÷3 decimator: fixed-size arrays
// let the compiler drop every bounds check from the inner loop.
func dotSymmetricHot(h *[hotTaps / 2]float32, w *[hotTaps]float32) float32 {
	var s0, s1, s2, s3 float32
	for k := 0; k < hotTaps/2; k += 4 {
		s0 += h[k] * (w[k] + w[hotTaps-1-k])
		s1 += h[k+1] * (w[k+1] + w[hotTaps-2-k])
		s2 += h[k+2] * (w[k+2] + w[hotTaps-3-k])
		s3 += h[k+3] * (w[k+3] + w[hotTaps-4-k])
	}
	return (s0 + s1) + (s2 + s3)
}

// dotSymmetric is dot(h, w) for a symmetric h (h[k] == h[n-1-k]).
func dotSymmetric(h, w []float32) float32 {
	n := len(h)
	w = w[:n]
	half := n / 2
	var s0, s1, s2, s3 float32
	k := 0
	for ; k+4 <= half; k += 4 {
		j := n - 1 - k
		s0 += h[k] * (w[k] + w[j])
		s1 += h[k+1] * (w[k+1] + w[j-1])
		s2 += h[k+2] * (w[k+2] + w[j-2])
		s3 += h[k+3] * (w[k+3] + w[j-3])
	}
	for ; k < half; k++ {
		s0 += h[k] * (w[k] + w[n-1-k])
	}
	if n%2 == 1 {
		s0 += h[half] * w[half]
	}
	return (s0 + s1) + (s2 + s3)
}

// toInt16 rounds half away from zero and saturates, without branches: the
// sign of audio samples is a coin toss for a branch predictor.
func toInt16(v float32) int16 {
	v = min(max(v, -32768), 32767)
	half := math.Float32frombits(math.Float32bits(v)&(1<<31) | math.Float32bits(0.5))
	return int16(int32(v + half))
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
