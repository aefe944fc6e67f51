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
		dst = append(dst, e.encode(int(e.pending), int(pcm[0])))
		pcm = pcm[1:]
		e.havePend = false
	}
	n := len(pcm) / 2
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n]
	out := dst[start:]
	for i := range out {
		pair := pcm[2*i : 2*i+2 : 2*i+2]
		out[i] = e.encode(int(pair[0]), int(pair[1]))
	}
	if len(pcm)%2 != 0 {
		e.pending, e.havePend = pcm[len(pcm)-1], true
	}
	return dst
}

// encode codes the sample pair x0 (earlier), x1 into one byte: the
// higher-band code in bits 7-6, the lower-band code in bits 5-0.
func (e *Encoder) encode(x0, x1 int) byte {
	xl, xh := e.qmf.analyze(x0, x1)
	return byte(e.high.encodeHigh(xh)<<6 | e.low.encodeLow(xl))
}

// encodeLow is the lower sub-band ADPCM encoder (blocks 1L to 4L): it
// returns the 6-bit code word for xl and adapts b as the decoder will.
func (b *band) encodeLow(xl int) int {
	il := quantl(sat16(xl-b.s), b.det) // SUBTRA, QUANTL
	il4 := il >> 2 & 15                // INVQAL and the adaptation use 4 bits
	b.update(b.det*qm4[il4]>>15, wlStep[il4], lowNBMax, lowNBBase)
	return il
}

// quantl is QUANTL: the 6-bit code word of difference signal el for scale
// factor det. The magnitude wd (one's complement for negative el, as in
// the reference) is placed among the 29 decision levels q6[1..29]*det>>12:
// interval i (1..30) is the number of levels at or below wd, plus one.
//
// Rather than search the levels (a chain of dependent multiplies on the
// encoder's critical path), one division finds the largest q with
// q*det>>12 <= wd, exactly: wd >= q*det>>12 iff (wd+1)<<12 > q*det iff
// q <= ((wd+1)<<12 - 1)/det; a table then counts the levels up to it.
func quantl(el, det int) int {
	wd := el ^ el>>63 // el >= 0 ? el : -(el+1)
	q := uint32((wd+1)<<12-1) / uint32(det)
	i := int(levelsUpTo[min(q, maxLevel)]) + 1
	if el < 0 {
		return iln[i&31]
	}
	return ilp[i&31]
}

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

// encodeHigh is the higher sub-band ADPCM encoder (blocks 1H to 4H) for
// xh, returning its 2-bit code word.
func (b *band) encodeHigh(xh int) int {
	eh := sat16(xh - b.s) // SUBTRA
	// QUANTH: one decision level, 564*DETH>>12, splits each sign in two:
	// codes 3 and 2 for a small and a large non-negative eh, 1 and 0 for
	// a small and a large negative one.
	ih := 3
	if eh < 0 {
		ih = 1
	}
	if eh^eh>>63 >= 564*b.det>>12 {
		ih--
	}
	dh := b.det * qm2[ih] >> 15 // INVQAH
	b.update(dh, whStep[ih], highNBMax, highNBBase)
	return ih
}
