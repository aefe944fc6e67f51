package g722

import "slices"

// Encoder codes one stream of 16 kHz PCM16 into G.722 at 64 kbit/s.
// The zero value is not ready for use; call NewEncoder.
type Encoder struct {
	low, high band
	qmf       qmf
	pending   int16 // an odd trailing sample waiting for its pair
	havePend  bool
}

// NewEncoder returns an Encoder in the Recommendation's reset state.
func NewEncoder() *Encoder {
	e := new(Encoder)
	e.Reset()
	return e
}

// Reset returns e to the initial (reset) state, dropping any pending
// odd sample.
func (e *Encoder) Reset() {
	e.low.reset(lowDetInit)
	e.high.reset(highDetInit)
	e.qmf.reset()
	e.pending, e.havePend = 0, false
}

// Encode appends to dst one byte per two samples of pcm and returns the
// extended slice. An odd trailing sample is kept and coded with the first
// sample of the next call, so the output of a stream does not depend on
// how it is cut. Encode allocates only when dst lacks capacity.
func (e *Encoder) Encode(dst []byte, pcm []int16) []byte {
	if len(pcm) == 0 {
		return dst
	}
	if e.havePend {
		pair := [2]int16{e.pending, pcm[0]}
		var code [1]byte
		e.encode(code[:], pair[:])
		dst = append(dst, code[0])
		pcm = pcm[1:]
		e.havePend = false
	}
	n := len(pcm) / 2
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n]
	out := dst[start:]
	for len(out) > 0 {
		k := min(len(out), maxBlock)
		e.encode(out[:k], pcm[:2*k])
		out, pcm = out[k:], pcm[2*k:]
	}
	if len(pcm) != 0 {
		e.pending, e.havePend = pcm[0], true
	}
	return dst
}

// encode codes the len(out) <= maxBlock sample pairs pcm into out, one
// byte per pair: the higher-band code in bits 7-6, the lower-band code in
// bits 5-0. The QMF runs over the whole block first, then each band's
// ADPCM coder: the bands' sample-to-sample chains are long, and coding
// one band at a time keeps each one's state in registers.
func (e *Encoder) encode(out []byte, pcm []int16) {
	var xl, xh [maxBlock]int32
	n := len(out)
	e.qmf.analyze(pcm, xl[:n], xh[:n])
	e.low.run(encodeLowBand, xl[:n], out)
	e.high.run(encodeHighBand, xh[:n], out)
}

// encodeLow is the lower sub-band ADPCM encoder (blocks 1L to 4L) for one
// sample: it returns the 6-bit code word for xl and adapts b as the
// decoder will.
func (b *band) encodeLow(xl int) int {
	x, code := [1]int32{int32(xl)}, [1]byte{}
	b.run(encodeLowBand, x[:], code[:])
	return int(code[0])
}

// encodeHigh is the higher sub-band ADPCM encoder (blocks 1H to 4H) for
// one sample xh, returning its 2-bit code word.
func (b *band) encodeHigh(xh int) int {
	x, code := [1]int32{int32(xh)}, [1]byte{}
	b.run(encodeHighBand, x[:], code[:])
	return int(code[0] >> 6)
}

// quantl is QUANTL: the 6-bit code word il of difference signal el, and
// its top four bits il4, which INVQAL and the adaptation use, for scale
// factor DETL = det, given as recip = ceil(2^recipShift / det). The
// magnitude wd (one's complement for negative el, as in the reference) is
// placed among the 29 decision levels q6[1..29]*det>>12: interval i
// (1..30) is the number of levels at or below wd, plus one.
//
// Rather than search the levels (a chain of dependent multiplies on the
// encoder's critical path), one division finds the largest q with
// q*det>>12 <= wd, exactly: wd >= q*det>>12 iff (wd+1)<<12 > q*det iff
// q <= ((wd+1)<<12 - 1)/det; a table then counts the levels up to it.
// The division is a multiplication by the reciprocal, which is exact
// here: with N = (wd+1)<<12 - 1 < 2^27 and det <= 2^14, N*det < 2^41, so
// N*recip>>41 == N/det (the rounding error of recip, times N, stays
// below 1/det), and N*recip < 2^27 * 2^36 does not overflow.
func quantl(el int, recip uint64) (il, il4 int) {
	wd := el ^ el>>63 // el >= 0 ? el : -(el+1)
	q := (uint64(wd+1)<<12 - 1) * recip >> recipShift
	i := int(levelsUpTo[min(q, maxLevel)]) + 1
	il = int(lowCode[i|int(uint(el)>>63)<<5])
	return il, il >> 2
}

const recipShift = 41

// maxLevel is the largest decision level, q6[29]; levelsUpTo[q] is the
// number of levels q6[1..29] that are <= q.
const maxLevel = 2919

var levelsUpTo = func() (n [maxLevel + 1]uint8) {
	for q := range n {
		for j := 1; j <= 29 && q6[j] <= q; j++ {
			n[q]++
		}
	}
	return n
}()

// lowCode is ilp followed by iln: the code word for interval i of a
// non-negative difference at i, of a negative one at 32+i.
var lowCode = func() (c [64]uint8) {
	for i := range 32 {
		c[i], c[32+i] = uint8(ilp[i]), uint8(iln[i])
	}
	return c
}()

// quanth is QUANTH: one decision level, 564*DETH>>12, splits each sign
// in two: codes 3 and 2 for a small and a large non-negative eh, 1 and 0
// for a small and a large negative one. The sign of eh is close to
// random, so the code is computed without branches.
func quanth(eh, det int) int {
	wd := eh ^ eh>>63                  // |eh|, one's complement for negative eh
	ih := 3 + eh>>63<<1                // 3, or 1 when eh < 0
	ih += (564*det>>12 - 1 - wd) >> 63 // -1 when wd is at or above the level
	return ih
}
