package g722

// qmfCoeffs are the QMF coefficients h0..h23, in the Recommendation's
// 2^-13 scaling. The filter is linear phase, h[i] == h[23-i], with a DC
// gain of 2^13, so the analysis sums are shifted down 14 bits (giving
// sub-band signals at half the input's scale) and the synthesis sums 11
// (restoring it). qmf.filter spells them out as constants; TestQMF checks
// it against this table.
var qmfCoeffs = [24]int{
	3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876,
	3876, 951, -805, -210, 362, 32, -156, 12, 53, -11, -11, 3,
}

// qmf is the 24-sample delay line of the transmit or the receive QMF.
// Rather than shift 22 values along for every pair, it is a ring in which
// each sample is written twice, at i and i+24, so the last 24 samples are
// always one contiguous slice, newest first as the Recommendation indexes
// them.
type qmf struct {
	x   [48]int
	pos int // index of the newest sample; even, 0..22
}

func (q *qmf) reset() { *q = qmf{} }

// filter shifts in a pair, older sample first, and returns the two
// polyphase sums over the delay line w (w[k] is the sample k steps back):
// xa = Σ h[2i]·w[2i] and xb = Σ h[2i+1]·w[2i+1] (XA and XB of the
// transmit QMF; the two output samples' sums in the receive QMF). Both
// stay within 2^29: Σ|h| · 2^15 < 2^29.
func (q *qmf) filter(older, newer int) (xa, xb int) {
	p := q.pos - 2
	if p < 0 {
		p = 22
	}
	q.pos = p
	x := q.x[p : p+26 : p+26]
	x[0], x[1] = newer, older
	x[24], x[25] = newer, older
	w := (*[24]int)(x[:24])
	// Constant multipliers let the compiler fold each load into its
	// multiply.
	xa = 3*w[0] - 11*w[2] + 12*w[4] + 32*w[6] - 210*w[8] + 951*w[10] +
		3876*w[12] - 805*w[14] + 362*w[16] - 156*w[18] + 53*w[20] - 11*w[22]
	xb = -11*w[1] + 53*w[3] - 156*w[5] + 362*w[7] - 805*w[9] + 3876*w[11] +
		951*w[13] - 210*w[15] + 32*w[17] + 12*w[19] - 11*w[21] + 3*w[23]
	return xa, xb
}

// analyze is the transmit QMF: it takes the input pair x0 (earlier) and x1
// and returns the lower and higher sub-band samples, each LIMITed to 15
// bits as the reference does for 16-bit input. (FFmpeg does not limit
// them, which only a signal near full scale notices.)
func (q *qmf) analyze(x0, x1 int) (xl, xh int) {
	xa, xb := q.filter(x0, x1)
	return limit((xa + xb) >> 14), limit((xa - xb) >> 14)
}

// synthesize is the receive QMF: from the reconstructed sub-band samples
// rl and rh it returns the next two output samples, earlier first,
// saturated to 16 bits.
func (q *qmf) synthesize(rl, rh int) (y0, y1 int) {
	xa, xb := q.filter(rl+rh, rl-rh)
	return sat16(xa >> 11), sat16(xb >> 11)
}
