package g722

// qmfCoeffs are the QMF coefficients h0..h23, in the Recommendation's
// 2^-13 scaling. The filter is linear phase, h[i] == h[23-i], with a DC
// gain of 2^13, so the analysis sums are shifted down 14 bits (giving
// sub-band signals at half the input's scale) and the synthesis sums 11
// (restoring it). polyphase spells them out as constants; TestQMF checks
// it against this table.
var qmfCoeffs = [24]int{
	3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876,
	3876, 951, -805, -210, 362, 32, -156, 12, 53, -11, -11, 3,
}

// qmfHist is the number of past samples the QMF needs with a new pair.
const qmfHist = 22

// qmf is the delay line of the transmit or the receive QMF: the last 22
// samples, oldest first. The coders filter a block at a time: the history
// and the block's samples go into one array, the filter slides along it,
// and the last 22 samples become the new history.
type qmf struct {
	hist [qmfHist]int32
}

func (q *qmf) reset() { *q = qmf{} }

// filter shifts in a pair, older sample first, and returns the two
// polyphase sums over the delay line (see polyphase).
func (q *qmf) filter(older, newer int) (xa, xb int) {
	var w [24]int64
	for i, x := range q.hist {
		w[i] = int64(x)
	}
	w[qmfHist], w[qmfHist+1] = int64(older), int64(newer)
	copy(q.hist[:], q.hist[2:])
	q.hist[qmfHist-2], q.hist[qmfHist-1] = int32(older), int32(newer)
	a, b := polyphase(&w)
	return int(a), int(b)
}

// polyphase returns the two polyphase sums over the 24 samples w, oldest
// first: with v[k] = w[23-k] the sample k steps back, xa = Σ h[2i]·v[2i]
// and xb = Σ h[2i+1]·v[2i+1] (XA and XB of the transmit QMF; the two
// output samples' sums in the receive QMF). Both stay within 2^29:
// Σ|h| · 2^15 < 2^29. Constant multipliers let the compiler fold each
// load into its multiply, or use shifts and adds.
//
// The filter is linear, and its sums need 30 bits, so the coders run it
// on two filters' worth of samples at once (see pack): each w[j] holds a
// sample in its low 32 bits plus, shifted up 32, the sample two later,
// and the sums come out as xa(n) + xa(n+1)<<32, for half the multiplies.
func polyphase(w *[24]int64) (xa, xb int64) {
	xa = 3*w[23] - 11*w[21] + 12*w[19] + 32*w[17] - 210*w[15] + 951*w[13] +
		3876*w[11] - 805*w[9] + 362*w[7] - 156*w[5] + 53*w[3] - 11*w[1]
	xb = -11*w[22] + 53*w[20] - 156*w[18] + 362*w[16] - 805*w[14] + 3876*w[12] +
		951*w[10] - 210*w[8] + 32*w[6] + 12*w[4] - 11*w[2] + 3*w[0]
	return xa, xb
}

// maxBlock is the number of pairs the coders process at once: 20 ms.
// Longer inputs are coded in blocks of it.
const maxBlock = 160

// A block's samples, after the 22 of history and padded with two zeros
// for the packing.
const blockLen = qmfHist + 2*maxBlock + 2

// pack returns w packed for polyphase: p[m] = w[m] + w[m+2]<<32, so
// that the filter for pair n over p[2n:] gives pairs n and n+1 at once.
// unpack splits such a sum.
func pack(p *[blockLen]int64, w *[blockLen]int32, n int) {
	for m := range n {
		p[m] = int64(w[m]) + int64(w[m+2])<<32
	}
}

func unpack(x int64) (lo, hi int) {
	l := int64(int32(x))
	return int(l), int((x - l) >> 32)
}

// analyze is the transmit QMF for a block of len(xl) input pairs pcm
// (len(pcm) == 2*len(xl) <= 2*maxBlock): it writes the lower and higher
// sub-band samples, each LIMITed to 15 bits as the reference does for
// 16-bit input. (FFmpeg does not limit them, which only a signal near
// full scale notices.)
func (q *qmf) analyze(pcm []int16, xl, xh []int32) {
	n := len(xl)
	if n > maxBlock {
		panic("g722: block too long")
	}
	xh = xh[:n]
	pcm = pcm[:2*n]
	var buf [blockLen]int32
	copy(buf[:], q.hist[:])
	for i, x := range pcm {
		buf[qmfHist+i] = int32(x)
	}
	copy(q.hist[:], buf[2*n:])
	var p [blockLen]int64
	pack(&p, &buf, qmfHist+2*n)
	for i := 0; i < n; i += 2 {
		xa, xb := polyphase((*[24]int64)(p[2*i:]))
		xa0, xa1 := unpack(xa)
		xb0, xb1 := unpack(xb)
		xl[i] = int32(limit((xa0 + xb0) >> 14))
		xh[i] = int32(limit((xa0 - xb0) >> 14))
		if i+1 < n {
			xl[i+1] = int32(limit((xa1 + xb1) >> 14))
			xh[i+1] = int32(limit((xa1 - xb1) >> 14))
		}
	}
}

// synthesize is the receive QMF: from len(rl) reconstructed sub-band
// sample pairs rl, rh it writes the next 2*len(rl) output samples to
// out, each saturated to 16 bits.
func (q *qmf) synthesize(rl, rh []int32, out []int16) {
	n := len(rl)
	if n > maxBlock {
		panic("g722: block too long")
	}
	rh = rh[:n]
	out = out[:2*n]
	var buf [blockLen]int32
	copy(buf[:], q.hist[:])
	for i, l := range rl {
		h := rh[i]
		buf[qmfHist+2*i] = l + h
		buf[qmfHist+2*i+1] = l - h
	}
	copy(q.hist[:], buf[2*n:])
	var p [blockLen]int64
	pack(&p, &buf, qmfHist+2*n)
	for i := 0; i < n; i += 2 {
		xa, xb := polyphase((*[24]int64)(p[2*i:]))
		xa0, xa1 := unpack(xa)
		xb0, xb1 := unpack(xb)
		out[2*i] = int16(sat16(xa0 >> 11))
		out[2*i+1] = int16(sat16(xb0 >> 11))
		if i+1 < n {
			out[2*i+2] = int16(sat16(xa1 >> 11))
			out[2*i+3] = int16(sat16(xb1 >> 11))
		}
	}
}
