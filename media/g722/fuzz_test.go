package g722

import (
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
)

// splits cuts n items into pieces at random points chosen by seed (some
// pieces empty, some odd).
func splits(seed uint64, n int) []int {
	r := rand.New(rand.NewPCG(seed, seed>>32|1))
	return pieces(r, n, 1+r.IntN(n+1))
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{}, uint64(0))
	f.Add([]byte{0x00, 0xff, 0x3f, 0xc0}, uint64(1))
	f.Add(slices.Repeat([]byte{0x20}, 300), uint64(2)) // drives the scale factor to its maximum
	f.Add(slices.Repeat([]byte{0x04, 0xe0}, 200), uint64(3))
	f.Add([]byte("any bytes at all are code words"), uint64(4))
	f.Fuzz(func(t *testing.T, payload []byte, seed uint64) {
		whole := NewDecoder().Decode(nil, payload)
		if len(whole) != 2*len(payload) {
			t.Fatalf("%d bytes decoded to %d samples", len(payload), len(whole))
		}
		d := NewDecoder()
		var got []int16
		rest := payload
		for _, k := range splits(seed, len(payload)) {
			got = d.Decode(got, rest[:k])
			rest = rest[k:]
			if len(got) != 2*(len(payload)-len(rest)) {
				t.Fatalf("%d bytes decoded to %d samples", len(payload)-len(rest), len(got))
			}
		}
		if i := firstDiff(got, whole); i >= 0 {
			t.Fatalf("decoding in pieces differs from one call at sample %d", i)
		}
	})
}

func FuzzEncode(f *testing.F) {
	f.Add([]byte{}, uint64(0))
	f.Add([]byte{1, 2, 3}, uint64(1))
	full := make([]byte, 2000) // full-scale square wave: overflows the QMF
	for i := 0; i < len(full); i += 2 {
		binary.LittleEndian.PutUint16(full[i:], uint16(0x7fff+(i/10)%2))
	}
	f.Add(full, uint64(2))
	f.Add(slices.Repeat([]byte{0x00, 0x80, 0xff, 0x7f}, 300), uint64(3)) // -32768, 32767, ...
	f.Fuzz(func(t *testing.T, raw []byte, seed uint64) {
		pcm := make([]int16, len(raw)/2)
		for i := range pcm {
			pcm[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
		}
		whole := NewEncoder().Encode(nil, pcm)
		if len(whole) != len(pcm)/2 {
			t.Fatalf("%d samples encoded to %d bytes", len(pcm), len(whole))
		}
		e := NewEncoder()
		var got []byte
		rest := pcm
		for _, k := range splits(seed, len(pcm)) {
			got = e.Encode(got, rest[:k])
			rest = rest[k:]
			if len(got) != (len(pcm)-len(rest))/2 {
				t.Fatalf("%d samples encoded to %d bytes", len(pcm)-len(rest), len(got))
			}
		}
		if i := firstDiff(got, whole); i >= 0 {
			t.Fatalf("encoding in pieces differs from one call at byte %d", i)
		}
		// Whatever the input, the output decodes, and both coders' states
		// stay in their ranges.
		NewDecoder().Decode(nil, whole)
		for _, b := range []*band{&e.low, &e.high} {
			if b.det < 8 || b.det > 16384 || b.a2 < -12288 || b.a2 > 12288 || b.nb < 0 || b.nb > highNBMax {
				t.Fatalf("band state out of range: %+v", *b)
			}
		}
	})
}
