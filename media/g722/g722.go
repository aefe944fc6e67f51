// Package g722 is an ITU-T G.722 wideband (50–7000 Hz) speech codec in pure
// Go: sub-band ADPCM, in its 64 kbit/s mode (mode 1) only.
//
// The encoder splits 16 kHz signed 16-bit PCM into two 8 kHz sub-bands
// with a 24-tap quadrature mirror filter (QMF) and codes the lower band
// with 6-bit ADPCM and the higher band with 2-bit ADPCM. Every byte carries
// one pair of input samples: the higher-band code in bits 7–6, the
// lower-band code in bits 5–0 (the octet RTP payload type 9 carries). The
// decoder reverses this, reconstructing the lower band with the full 6-bit
// inverse quantizer, and appends two 16 kHz samples per byte.
//
// An Encoder or Decoder codes one stream and carries its adaptive state
// (predictors, scale factors, QMF delay lines and, for the encoder, an odd
// trailing sample) from one call to the next, so a stream may be cut into
// pieces of any size with the same result as one call. They are not safe
// for concurrent use.
//
// The arithmetic is that of the ITU-T reference implementation (the G.722
// module of the ITU-T Software Tool Library, G.191): 16-bit words,
// saturation where it saturates, truncating shifts; it passes the
// Recommendation's digital test sequences. Except near full scale, where
// FFmpeg skips a limiter, it is bit-exact with FFmpeg's G.722 coder in
// both directions; testdata/README.md has the details.
//
// The encoder-decoder pair delays the signal by 22 samples (1.375 ms),
// the group delay of the two QMFs.
package g722

// The code names the Recommendation's blocks (QUANTL, INVQAL, LOGSCL,
// SCALEL, UPZERO, FILTEZ, ...) where it implements them and keeps the
// reference's fixed-point scaling, so values can be checked against the
// Recommendation's tables. Values are held in int; the coders' state
// stays within the 16-bit range of the reference's words.

// Lower sub-band quantizer decision levels (QUANTL), in the 12-bit scaling
// of the comparison wd >= (q6[i]*DETL)>>12. Index 0 is unused.
var q6 = [30]int{
	0, 35, 72, 110, 150, 190, 233, 276,
	323, 370, 422, 473, 530, 587, 650, 714,
	786, 858, 940, 1023, 1121, 1219, 1339, 1458,
	1612, 1765, 1980, 2195, 2557, 2919,
}

// Lower sub-band 6-bit code words for each quantizer interval i (1..30) of
// a non-negative (ilp) and a negative (iln) difference signal.
var (
	ilp = [32]int{
		0, 61, 60, 59, 58, 57, 56, 55,
		54, 53, 52, 51, 50, 49, 48, 47,
		46, 45, 44, 43, 42, 41, 40, 39,
		38, 37, 36, 35, 34, 33, 32, 0,
	}
	iln = [32]int{
		0, 63, 62, 31, 30, 29, 28, 27,
		26, 25, 24, 23, 22, 21, 20, 19,
		18, 17, 16, 15, 14, 13, 12, 11,
		10, 9, 8, 7, 6, 5, 4, 0,
	}
)

// qm6 is the 6-bit inverse quantizer (INVQBL, mode 1) the decoder
// reconstructs its output with, indexed by the lower-band code word
// (codes 0-3, which the encoder never sends, stand for a tiny negative
// value).
var qm6 = [64]int{
	-136, -136, -136, -136, -24808, -21904, -19008, -16704,
	-14984, -13512, -12280, -11192, -10232, -9360, -8576, -7856,
	-7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576,
	-3168, -2776, -2400, -2032, -1688, -1360, -1040, -728,
	24808, 21904, 19008, 16704, 14984, 13512, 12280, 11192,
	10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456,
	4944, 4464, 4008, 3576, 3168, 2776, 2400, 2032,
	1688, 1360, 1040, 728, 432, 136, -432, -136,
}

// qm4 is the 4-bit inverse quantizer (INVQAL) both encoder and decoder
// feed the lower-band predictor with, indexed by the code word's top four
// bits. Adapting on 4 bits is what lets a decoder in mode 2 or 3, or one
// behind a link that stole the low bits, stay in step with the encoder.
var qm4 = [16]int{
	0, -20456, -12896, -8968, -6288, -4240, -2584, -1200,
	20456, 12896, 8968, 6288, 4240, 2584, 1200, 0,
}

// qm2 is the higher sub-band 2-bit inverse quantizer (INVQAH).
var qm2 = [4]int{-7408, -1616, 7408, 1616}

// Scale factor adaptation: wl and wh are the log-domain multipliers
// (LOGSCL, LOGSCH), selected through rl42 and rh2 by the quantizer
// interval a code word stands for.
var (
	wl   = [8]int{-60, -30, 58, 172, 334, 538, 1198, 3042}
	rl42 = [16]int{0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0}
	wh   = [3]int{0, -214, 798}
	rh2  = [4]int{2, 1, 2, 1}
)

// ilb is the antilog table SCALEL and SCALEH read: 2048 * 2^(i/32).
var ilb = [32]int{
	2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383,
	2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
	2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371,
	3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
}

// wlStep and whStep compose wl∘rl42 and wh∘rh2: the LOGSCL and LOGSCH
// increment for a (4-bit) lower-band or (2-bit) higher-band code word.
var wlStep, whStep = func() (l [16]int, h [4]int) {
	for i := range l {
		l[i] = wl[rl42[i]]
	}
	for i := range h {
		h[i] = wh[rh2[i]]
	}
	return
}()

// Ranges of the two bands' log scale factors (LOGSCL, LOGSCH) and the
// power-of-two offset that maps each onto its linear scale (SCALEL,
// SCALEH): DETL spans 32..16384 and DETH 8..16384.
const (
	lowNBMax    = 18432
	highNBMax   = 22528
	lowNBBase   = 8
	highNBBase  = 10
	lowDetInit  = 32 // DETL after reset: SCALEL(0)
	highDetInit = 8  // DETH after reset: SCALEH(0)
)

// sat16 saturates to a 16-bit word, as the reference's add and sub do.
//
// Saturation is rare, so it is a predictable branch off the hot path
// rather than two conditional moves on it; the bound is read from a
// table because a load keeps the compiler from turning the branch back
// into conditional moves.
func sat16(x int) int {
	if uint(x+32768) > 0xffff {
		x = bounds16[x>>63&1]
	}
	return x
}

// limit is the reference's LIMIT block: the sub-band signals are 15-bit.
func limit(x int) int {
	if uint(x+16384) > 0x7fff {
		x = bounds15[x>>63&1]
	}
	return x
}

var (
	bounds16 = [2]int{32767, -32768}
	bounds15 = [2]int{16383, -16384}
)

// sameSign reports whether x and y have equal sign bits (the reference's
// "sg = x >> 15" comparisons, which count zero as positive).
func sameSign(x, y int) bool { return x^y >= 0 }

// band is the adaptive state of one sub-band's ADPCM coder: the quantizer
// scale factor (blocks 3L/3H) and the pole-zero predictor (block 4). The
// encoder and the decoder run identical copies, kept in step by the code
// words alone.
type band struct {
	s   int    // predictor output SL/SH (PREDIC): the estimate of the next sample
	sz  int    // zero-section output SZL/SZH (FILTEZ)
	nb  int    // log scale factor NBL/NBH (LOGSCL/LOGSCH)
	det int    // linear scale factor DETL/DETH (SCALEL/SCALEH)
	a1  int    // pole coefficients AL1/AH1, AL2/AH2
	a2  int    //
	b   [6]int // zero coefficients BL1..BL6 (b[0] is BL1)
	d   [6]int // quantized difference history DLT1..DLT6 (d[0] is DLT1)
	p1  int    // partially reconstructed signal history PLT1, PLT2
	p2  int    //
	r1  int    // reconstructed signal history RLT1, RLT2, each doubled
	r2  int    // and saturated, as FILTEP uses them
}

func (b *band) reset(det int) { *b = band{det: det} }

// scale is SCALEL/SCALEH: the linear scale factor for log scale factor nb,
// ilb[frac] * 2^(int - base), times four, truncated as the reference
// truncates. base is 8 for the lower band and 10 for the higher.
func scale(nb, base int) int {
	wd1 := ilb[(nb>>6)&31]
	if sh := base - nb>>11; sh >= 0 {
		return wd1 >> (sh & 15) << 2 // sh <= 10; the mask spares a range check
	}
	return wd1 << 3 // nb at its maximum: 2^(int-base) == 2
}

// SCALEL and SCALEH depend only on nb>>6 (the five fraction bits and the
// integer part above them), so the coders read them from tables indexed
// by it: one load on the path from a code word to the next sample's
// quantizer instead of a load and two shifts. The tables are padded to a
// power of two so a mask, not a range check, keeps the index in bounds.
const detTableLen = 512 // > highNBMax>>6

// scaleTables holds a band's SCALEL/SCALEH table and, for the lower band,
// the reciprocals quantl divides by.
type scaleTables struct {
	det   [detTableLen]int32
	recip [detTableLen]uint64 // ceil(2^recipShift / det)
}

var lowScale, highScale = newScaleTables(lowNBMax, lowNBBase), newScaleTables(highNBMax, highNBBase)

func newScaleTables(nbMax, base int) *scaleTables {
	t := new(scaleTables)
	for i := range t.det {
		det := scale(min(i<<6, nbMax), base)
		t.det[i] = int32(det)
		t.recip[i] = (1<<recipShift + uint64(det) - 1) / uint64(det)
	}
	return t
}

// logScale is LOGSCL/LOGSCH: the log scale factor leaks by 1/128 and
// steps by step, within 0..nbMax.
func logScale(nb, step, nbMax int) int {
	return min(max(nb*127>>7+step, 0), nbMax)
}

// update adapts b to the new quantized difference signal d: blocks 3L/3H
// (LOGSCL/LOGSCH, SCALEL/SCALEH) and block 4, the adaptive predictor. It
// is the per-sample form of the adaptation band.run does for a block,
// built from the same pieces; the tests use it to set up states.
func (b *band) update(d, nbStep, nbMax, base int) {
	b.nb = logScale(b.nb, nbStep, nbMax)
	b.det = scale(b.nb, base)
	p := d + b.sz
	r := b.s + d
	step := zeroStep(d)
	d0, d1, d2, d3, d4, d5 := b.d[0], b.d[1], b.d[2], b.d[3], b.d[4], b.d[5]
	b5, t5 := zeroTap(b.b[5], d5, d, step, 2*d4)
	b4, t4 := zeroTap(b.b[4], d4, d, step, 2*d3)
	b3, t3 := zeroTap(b.b[3], d3, d, step, 2*d2)
	b2, t2 := zeroTap(b.b[2], d2, d, step, 2*d1)
	b1, t1 := zeroTap(b.b[1], d1, d, step, 2*d0)
	b0, t0 := zeroTap(b.b[0], d0, d, step, 2*d)
	b.b = [6]int{b0, b1, b2, b3, b4, b5}
	b.d = [6]int{d, d0, d1, d2, d3, d4}
	var overflow bool
	if b.sz, overflow = filtez(t5, t4, t3, t2, t1, t0); overflow {
		b.sz = filtezSaturated(t5, t4, t3, t2, t1, t0)
	}
	b.a2 = uppol2(b.a1, b.a2, p, b.p1, b.p2)
	b.a1 = uppol1(b.a1, b.a2, p, b.p1)
	b.p2, b.p1 = b.p1, p
	b.r2, b.r1 = b.r1, sat16(r+r)
	b.s = predict(b.a1, b.a2, b.r1, b.r2, b.sz)
}

// run codes a block with one band: the encoders turn the sub-band samples
// x into code words, the decoders code words into reconstructed sub-band
// samples. Apart from the quantizer it is the same per-sample adaptation
// as update: blocks 3L/3H (LOGSCL/LOGSCH, SCALEL/SCALEH) and block 4, the
// adaptive predictor: reconstruct, adapt the six zeros and two poles
// with their sign-sign algorithms, and compute the next estimate s.
//
// The state lives in local variables for the block, so the compiler can
// keep the values on the sample-to-sample dependency chain in registers;
// it is loaded from b once and stored back once. Running a band over a
// whole block (rather than both bands per sample pair) keeps the live
// state within the register file.
//
// The nb*127>>7 leak, and the 32640 (255/256) and 32512 (127/128) leaks
// of block 4, are the reference's mult(x, 32512) etc.: (x*k)>>15 with
// truncation toward minus infinity. The reference does all its additions
// with 16-bit saturation; sat16 appears where that can change a result,
// and is left out, with the bound that makes it a no-op, where it cannot:
// every value here is confined by construction (|DLT| <= 10228, |BL| <=
// 32768, |AL2| <= 12288, |AL1| <= 27648, |SL|, |SZL| <= 32768).
func (b *band) run(k coder, x []int32, codes []byte) {
	n := len(x)
	if n > maxBlock {
		panic("g722: block too long")
	}
	codes = codes[:n]
	tab, nbMax := lowScale, lowNBMax
	if k == encodeHighBand || k == decodeHighBand {
		tab, nbMax = highScale, highNBMax
	}
	// The quantized difference signal DLT (kept doubled, as FILTEZ uses
	// it) and the partially reconstructed and reconstructed signals PLT
	// and RLT shift along their delay lines every sample. Rather than
	// move the values along, the block writes each sample's values once
	// into arrays behind their history and reads the delay lines from
	// there: sample i's DLT1..DLT6 are dlt2[i+5]..dlt2[i], its PLT1, PLT2
	// plt[i+1], plt[i] (and likewise RLT).
	var dlt2 [6 + maxBlock]int32
	var plt, rlt [2 + maxBlock]int32
	for j := range 6 {
		dlt2[j] = int32(2 * b.d[5-j])
	}
	plt[0], plt[1] = int32(b.p2), int32(b.p1)
	rlt[0], rlt[1] = int32(b.r2), int32(b.r1)

	s, sz, nb, det, a1, a2 := b.s, b.sz, b.nb, b.det, b.a1, b.a2
	b0, b1, b2, b3, b4, b5 := b.b[0], b.b[1], b.b[2], b.b[3], b.b[4], b.b[5]
	for i := range n {
		// The quantizer and inverse quantizer: the new quantized
		// difference d (DLT) and the LOGSCL/LOGSCH step its code gives.
		var d, step int
		switch k {
		case encodeLowBand:
			il, il4 := quantl(sat16(int(x[i])-s), tab.recip[nb>>6&(detTableLen-1)]) // SUBTRA, QUANTL
			codes[i] = byte(il)
			d, step = det*qm4[il4]>>15, wlStep[il4] // INVQAL
		case encodeHighBand:
			ih := quanth(sat16(int(x[i])-s), det) // SUBTRA, QUANTH
			codes[i] |= byte(ih << 6)
			d, step = det*qm2[ih]>>15, whStep[ih] // INVQAH
		case decodeLowBand:
			il := int(codes[i] & 63)
			x[i] = int32(limit(s + det*qm6[il]>>15)) // INVQBL, RECONS, LIMIT
			il4 := il >> 2                           // the predictor adapts on 4 bits
			d, step = det*qm4[il4]>>15, wlStep[il4]
		case decodeHighBand:
			ih := int(codes[i] >> 6)
			d, step = det*qm2[ih]>>15, whStep[ih] // INVQAH
			x[i] = int32(limit(s + d))            // RECONS, LIMIT
		}

		nb = logScale(nb, step, nbMax)
		det = int(tab.det[nb>>6&(detTableLen-1)])

		// UPZERO adapts each zero coefficient BLi for the sign agreement
		// of d with the DLTi it weighted; then DLT shifts by one and
		// FILTEZ sums BLi·2·DLTi over the new values, from BL6 down to
		// BL1, the order of the reference's sum.
		d2 := d + d
		dlt2[i+6] = int32(d2)
		zs := zeroStep(d)
		var t0, t1, t2, t3, t4, t5 int
		b5, t5 = zeroTap(b5, int(dlt2[i]), d, zs, int(dlt2[i+1]))
		b4, t4 = zeroTap(b4, int(dlt2[i+1]), d, zs, int(dlt2[i+2]))
		b3, t3 = zeroTap(b3, int(dlt2[i+2]), d, zs, int(dlt2[i+3]))
		b2, t2 = zeroTap(b2, int(dlt2[i+3]), d, zs, int(dlt2[i+4]))
		b1, t1 = zeroTap(b1, int(dlt2[i+4]), d, zs, int(dlt2[i+5]))
		b0, t0 = zeroTap(b0, int(dlt2[i+5]), d, zs, d2)

		// PARREC and RECONS: the partially reconstructed and the
		// reconstructed signal. The reference saturates both; p is only
		// used for its sign, which saturation keeps, and r only doubled
		// and saturated again by FILTEP, which absorbs the first
		// saturation.
		p := d + sz
		r := s + d
		var overflow bool
		if sz, overflow = filtez(t5, t4, t3, t2, t1, t0); overflow {
			sz = filtezSaturated(t5, t4, t3, t2, t1, t0)
		}

		plt[i+2] = int32(p)
		a2 = uppol2(a1, a2, p, int(plt[i+1]), int(plt[i]))
		a1 = uppol1(a1, a2, p, int(plt[i+1]))

		r1 := sat16(r + r) // FILTEP keeps r doubled and saturated
		rlt[i+2] = int32(r1)
		s = predict(a1, a2, r1, int(rlt[i+1]), sz)
	}
	b.s, b.sz, b.nb, b.det, b.a1, b.a2 = s, sz, nb, det, a1, a2
	b.b = [6]int{b0, b1, b2, b3, b4, b5}
	for j := range 6 {
		b.d[j] = int(dlt2[n+5-j]) >> 1
	}
	b.p1, b.p2 = int(plt[n+1]), int(plt[n])
	b.r1, b.r2 = int(rlt[n+1]), int(rlt[n])
}

// coder selects what band.run does.
type coder uint8

const (
	encodeLowBand  coder = iota // QUANTL: x to 6-bit codes (bits 5-0)
	encodeHighBand              // QUANTH: x to 2-bit codes, ORed into bits 7-6
	decodeLowBand               // INVQBL: bits 5-0 to x
	decodeHighBand              // INVQAH: bits 7-6 to x
)

// zeroStep is UPZERO's step size: 128, or none when d is zero.
func zeroStep(d int) int {
	if d == 0 {
		return 0
	}
	return 128
}

// zeroTap is one tap of UPZERO and FILTEZ: the zero coefficient bi leaks
// by 1/256 and steps ±step as the signs of d and of its old input di
// (either may be doubled) agree or not (the leak keeps it within
// -32768..32767 without saturation); it returns the new coefficient and
// its FILTEZ term for in2, twice the input that shifts into its place
// (2·in fits: |DLT| <= 10228).
func zeroTap(bi, di, d, step, in2 int) (nbi, term int) {
	m := (d ^ di) >> 63 // -1 when the signs differ, else 0
	nbi = bi*32640>>15 + (step ^ m) - m
	return nbi, in2 * nbi >> 15
}

// filtez is FILTEZ's sum of the six terms, BL6's first. The reference
// saturates it after every term. That almost never acts, so the sum is
// taken plainly while recording whether a partial sum left the 16-bit
// range (s+32768 outside 0..65535; one term alone cannot); only then
// must the caller redo it term by term with filtezSaturated. (FFmpeg and
// spandsp saturate only the total, or not at all; only a decoder driven
// far out of its normal range can tell.) The slow path is the caller's
// so that this stays small enough to inline.
func filtez(t5, t4, t3, t2, t1, t0 int) (sz int, overflow bool) {
	const bias = 32768
	sz = t5 + t4
	out := sz + bias
	sz += t3
	out |= sz + bias
	sz += t2
	out |= sz + bias
	sz += t1
	out |= sz + bias
	sz += t0
	out |= sz + bias
	return sz, uint(out) > 0xffff
}

// filtezSaturated is FILTEZ's sum as the reference takes it, saturating
// after every term.
//
//go:noinline
func filtezSaturated(t5, t4, t3, t2, t1, t0 int) int {
	return sat16(sat16(sat16(sat16(sat16(t5+t4)+t3)+t2)+t1) + t0)
}

// uppol2 is UPPOL2, the new second pole coefficient: leak 1/128, plus a
// term steering against the first pole's trend, plus ±128 by the sign
// correlation of the partially reconstructed signal p with PLT2; confined
// to ±12288 (±0.75) for stability.
//
// The signs of p, PLT1 and PLT2 are close to random, so the sign
// selections here and in uppol1 are arithmetic (signFlip) rather than
// branches, so that the cost does not depend on the signal. (On speech
// the two measure the same.)
func uppol2(a1, a2, p, p1, p2 int) int {
	// The reference saturates 4·AL1 to 16 bits (|AL1| reaches 27648) and
	// negates it, saturating again, when p and PLT1 agree in sign.
	// Saturating to ±32767 instead gives the same value after the >>7
	// (-32768>>7 == -32767>>7) and makes the negation safe.
	wd2 := min(max(a1<<2, -32767), 32767)
	wd2 = signFlip(-wd2, p, p1)
	wd3 := signFlip(128, p, p2)
	return min(max(wd2>>7+wd3+a2*32512>>15, -12288), 12288)
}

// uppol1 is UPPOL1, the new first pole coefficient: leak 1/256, ±192 by
// the sign correlation of p with PLT1, confined to ±(15360 - AL2) so the
// two-pole section stays stable (it runs after UPPOL2 and takes its AL2).
func uppol1(a1, a2, p, p1 int) int {
	wd1 := signFlip(192, p, p1)
	lim := 15360 - a2
	return min(max(wd1+a1*32640>>15, -lim), lim)
}

// signFlip returns v when x and y have equal sign bits (see sameSign),
// else -v, without a branch.
func signFlip(v, x, y int) int {
	m := (x ^ y) >> 63 // -1 when the signs differ, else 0
	return (v ^ m) - m
}

// predict is FILTEP and PREDIC: the pole section's output on the doubled
// reconstructed signals r1, r2, plus the zero section's sz, the estimate
// of the next sample.
func predict(a1, a2, r1, r2, sz int) int {
	return sat16(sat16(a1*r1>>15+a2*r2>>15) + sz)
}
