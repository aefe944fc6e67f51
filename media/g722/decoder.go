package g722

import "slices"

// Decoder decodes one G.722 64 kbit/s stream into 16 kHz PCM16.
// The zero value is not ready for use; call NewDecoder.
type Decoder struct {
	low, high band
	qmf       qmf
}

// NewDecoder returns a Decoder in the Recommendation's reset state.
func NewDecoder() *Decoder {
	d := new(Decoder)
	d.Reset()
	return d
}

// Reset returns d to the initial (reset) state.
func (d *Decoder) Reset() {
	d.low.reset(lowDetInit)
	d.high.reset(highDetInit)
	d.qmf.reset()
}

// Decode appends to dst two 16 kHz samples per byte of payload and returns
// the extended slice. Every byte value is a valid code word. Decode
// allocates only when dst lacks capacity.
//
// It decodes a block (up to 20 ms) at a time: each band's ADPCM decoder
// over the whole block, then the QMF over the block.
func (d *Decoder) Decode(dst []int16, payload []byte) []int16 {
	start := len(dst)
	dst = slices.Grow(dst, 2*len(payload))[:start+2*len(payload)]
	out := dst[start:]
	for len(payload) > 0 {
		n := min(len(payload), maxBlock)
		var rl, rh [maxBlock]int32
		d.low.run(decodeLowBand, rl[:n], payload[:n])
		d.high.run(decodeHighBand, rh[:n], payload[:n])
		d.qmf.synthesize(rl[:n], rh[:n], out[:2*n])
		payload, out = payload[n:], out[2*n:]
	}
	return dst
}

// decodeLow is the lower sub-band ADPCM decoder (blocks 5L, 6L and the
// shared 2L to 4L) for one code: the reconstructed sample for 6-bit code
// il.
func (b *band) decodeLow(il int) int {
	x, code := [1]int32{}, [1]byte{byte(il & 63)}
	b.run(decodeLowBand, x[:], code[:])
	return int(x[0])
}

// decodeHigh is the higher sub-band ADPCM decoder (blocks 2H to 6H) for
// one code: the reconstructed sample for 2-bit code ih.
func (b *band) decodeHigh(ih int) int {
	x, code := [1]int32{}, [1]byte{byte(ih << 6)}
	b.run(decodeHighBand, x[:], code[:])
	return int(x[0])
}
