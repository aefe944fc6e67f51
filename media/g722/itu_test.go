package g722

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestITUSequences runs the Recommendation's own conformance test of the
// sub-band ADPCM coders (G.722 Appendix II, mode 1), which by-passes the
// QMFs: each input word feeds both bands, and the references are the code
// words and the two bands' reconstructed signals. The sequences are ITU
// property and are not kept here: set G722_ITU_VECTORS to a directory
// holding the ASCII files (T1C1.XMT ... T3H3.RC0, from the G.722 software
// package, T-REC-G.722-201209, folder G.722_MB-testvectors/g722-ascii) to
// run it. Sets whose files are missing are skipped.
func TestITUSequences(t *testing.T) {
	dir := os.Getenv("G722_ITU_VECTORS")
	if dir == "" {
		t.Skip("G722_ITU_VECTORS not set")
	}
	load := func(t *testing.T, name string) []uint16 {
		w, err := readITU(filepath.Join(dir, name))
		if os.IsNotExist(err) {
			t.Skip(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	// Configuration 1: encoder, input sequence to code words.
	for _, c := range [][2]string{{"T1C1.XMT", "T2R1.COD"}, {"T1C2.XMT", "T2R2.COD"}} {
		t.Run(c[0], func(t *testing.T) {
			in, ref := load(t, c[0]), load(t, c[1])
			if len(in) != len(ref) {
				t.Fatalf("%d input words, %d reference words", len(in), len(ref))
			}
			var low, high band
			for i, w := range in {
				if w&1 != 0 { // a reset word; the reference holds one too
					low.reset(lowDetInit)
					high.reset(highDetInit)
					continue
				}
				x := int(int16(w)) >> 1
				code := uint16(high.encodeHigh(x)<<6|low.encodeLow(x)) << 8
				if code != ref[i] {
					t.Fatalf("word %d: code %04X, reference %04X", i, code, ref[i])
				}
			}
		})
	}
	// Configuration 2: decoder, code words to both bands' reconstructed
	// signals (mode 1 references .RC1 for the lower band, .RC0 for the
	// higher), each shifted left a bit.
	for _, c := range [][3]string{
		{"T2R1.COD", "T3L1.RC1", "T3H1.RC0"},
		{"T2R2.COD", "T3L2.RC1", "T3H2.RC0"},
		{"T1D3.COD", "T3L3.RC1", "T3H3.RC0"},
	} {
		t.Run(c[0], func(t *testing.T) {
			in, refL, refH := load(t, c[0]), load(t, c[1]), load(t, c[2])
			if len(in) != len(refL) || len(in) != len(refH) {
				t.Fatalf("%d input words, %d and %d reference words", len(in), len(refL), len(refH))
			}
			var low, high band
			for i, w := range in {
				if w&1 != 0 {
					low.reset(lowDetInit)
					high.reset(highDetInit)
					continue
				}
				code := int(w >> 8)
				rl := uint16(low.decodeLow(code&63) << 1)
				rh := uint16(high.decodeHigh(code>>6) << 1)
				if rl != refL[i] || rh != refH[i] {
					t.Fatalf("word %d (code %02X): lower %04X, reference %04X; higher %04X, reference %04X",
						i, code, rl, refL[i], rh, refH[i])
				}
			}
		})
	}
}

// readITU reads a test sequence in the ITU's ASCII format: comment lines
// in /* */, then lines of 16 hexadecimal words and a checksum byte.
func readITU(name string) ([]uint16, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var words []uint16
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "/*") {
			continue
		}
		raw, err := hex.DecodeString(line[:len(line)-2]) // drop the checksum
		if err != nil {
			return nil, err
		}
		for i := 0; i+1 < len(raw); i += 2 {
			words = append(words, uint16(raw[i])<<8|uint16(raw[i+1]))
		}
	}
	return words, sc.Err()
}
