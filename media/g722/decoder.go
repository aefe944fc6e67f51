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
func (d *Decoder) Decode(dst []int16, payload []byte) []int16 {
	start := len(dst)
	dst = slices.Grow(dst, 2*len(payload))[:start+2*len(payload)]
	out := dst[start:]
	for i, code := range payload {
		rl := d.low.decodeLow(int(code & 63))
		rh := d.high.decodeHigh(int(code >> 6))
		y0, y1 := d.qmf.synthesize(rl, rh)
		pair := out[2*i : 2*i+2 : 2*i+2]
		pair[0], pair[1] = int16(y0), int16(y1)
	}
	return dst
}

// decodeLow is the lower sub-band ADPCM decoder (blocks 5L, 6L and the
// shared 2L to 4L): the reconstructed sample for 6-bit code il.
func (b *band) decodeLow(il int) int {
	rl := limit(b.s + b.det*qm6[il&63]>>15) // INVQBL, RECONS, LIMIT
	il4 := il >> 2 & 15                     // the predictor adapts on 4 bits
	b.update(b.det*qm4[il4]>>15, wlStep[il4], lowNBMax, lowNBBase)
	return rl
}

// decodeHigh is the higher sub-band ADPCM decoder (blocks 2H to 6H): the
// reconstructed sample for 2-bit code ih.
func (b *band) decodeHigh(ih int) int {
	dh := b.det * qm2[ih&3] >> 15 // INVQAH
	rh := limit(b.s + dh)         // RECONS, LIMIT
	b.update(dh, whStep[ih&3], highNBMax, highNBBase)
	return rh
}
