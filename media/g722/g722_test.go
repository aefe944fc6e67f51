package g722

//go:generate sh testdata/regen.sh

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readPCM reads a raw little-endian PCM16 file.
func readPCM(t testing.TB, name string) []int16 {
	t.Helper()
	b := readFile(t, name)
	if len(b)%2 != 0 {
		t.Fatalf("%s: odd length %d", name, len(b))
	}
	pcm := make([]int16, len(b)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return pcm
}

// firstDiff returns the first index where a and b differ, or -1 when they
// are equal (a length difference counts as a difference at the shorter
// length).
func firstDiff[E comparable](a, b []E) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// TestFFmpegEncode checks the encoder against FFmpeg's non-trellis encoding
// of the speech-like test signal, byte for byte.
func TestFFmpegEncode(t *testing.T) {
	pcm := readPCM(t, "speech.s16")
	want := readFile(t, "speech.g722")
	got := NewEncoder().Encode(nil, pcm)
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("%d bytes; encoding differs from ffmpeg's at byte %d of %d", len(got), i, len(want))
	}
}

// TestFFmpegEncodeOverload pins down the one way the encoder and FFmpeg's
// part: FFmpeg does not LIMIT the transmit QMF's outputs to 15 bits, as
// the ITU reference does. The codings of loud.s16 must agree up to the
// first input pair whose sub-band signals overflow, and differ after.
func TestFFmpegEncodeOverload(t *testing.T) {
	pcm := readPCM(t, "loud.s16")
	want := readFile(t, "loud.g722")
	got := NewEncoder().Encode(nil, pcm)
	if len(got) != len(want) {
		t.Fatalf("%d bytes, want %d", len(got), len(want))
	}
	var shadow qmf // the same filter, unlimited
	overflow := -1
	for i := 0; i < len(pcm)/2; i++ {
		xa, xb := shadow.filter(int(pcm[2*i]), int(pcm[2*i+1]))
		if xl, xh := (xa+xb)>>14, (xa-xb)>>14; xl != limit(xl) || xh != limit(xh) {
			overflow = i
			break
		}
	}
	if overflow < 0 {
		t.Fatal("loud.s16 never overflows the QMF: the test tests nothing")
	}
	if i := firstDiff(got, want); i < overflow {
		t.Fatalf("encoding differs from ffmpeg's at byte %d, before the first overflow at %d", i, overflow)
	}
	if slices.Equal(got, want) {
		t.Fatalf("encoding equals ffmpeg's despite the overflow at byte %d: does ffmpeg LIMIT now?", overflow)
	}
	t.Logf("identical to ffmpeg's for the %d bytes before the QMF first overflows", overflow)
}

// TestFFmpegDecode checks the decoder against FFmpeg's decoding of its own
// encoding of the test signal, sample for sample.
func TestFFmpegDecode(t *testing.T) {
	payload := readFile(t, "speech.g722")
	want := readPCM(t, "speech.ffdec.s16")
	got := NewDecoder().Decode(nil, payload)
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("%d samples; decoding differs from ffmpeg's at sample %d of %d", len(got), i, len(want))
	}
}

// TestFFmpegDecodeRandom decodes pseudo-random code words, and runs of
// single code words that drive the predictors to their limits, and checks
// them against FFmpeg's decoding. They may differ only just after the
// zero predictor's sum (FILTEZ) overflowed 16 bits: the ITU reference
// saturates it term by term, FFmpeg (and spandsp) does not, and the
// difference decays through the pole section within a few samples.
func TestFFmpegDecodeRandom(t *testing.T) {
	// An overflow changes the next reconstructed sub-band sample, which
	// the receive QMF spreads over the next 12 output pairs.
	const window = 16
	payload := readFile(t, "random.g722")
	want := readPCM(t, "random.ffdec.s16")
	if len(want) != 2*len(payload) {
		t.Fatalf("%d reference samples for %d bytes", len(want), len(payload))
	}
	d := NewDecoder()
	lastOverflow, overflows, differ := -window-1, 0, 0
	var y []int16
	for i, code := range payload {
		y = d.Decode(y[:0], payload[i:i+1])
		y0, y1 := y[0], y[1]
		if filtezOverflows(&d.low) || filtezOverflows(&d.high) {
			lastOverflow = i
			overflows++
		}
		if y0 != want[2*i] || y1 != want[2*i+1] {
			differ++
			if i-lastOverflow > window {
				t.Fatalf("byte %d (%#02x): got %d %d, ffmpeg %d %d, %d bytes after the last FILTEZ overflow",
					i, code, y0, y1, want[2*i], want[2*i+1], i-lastOverflow)
			}
		}
	}
	if overflows == 0 {
		t.Fatal("the payload never overflows FILTEZ: the test tests less than it says")
	}
	t.Logf("%d of %d bytes decode differently from ffmpeg, all within %d bytes of one of %d FILTEZ overflows",
		differ, len(payload), window, overflows)
}

// filtezOverflows reports whether b's zero section, as the last update left
// it, has a sum that term-by-term saturation changes.
func filtezOverflows(b *band) bool {
	plain, saturated := 0, 0
	for i := 5; i >= 0; i-- {
		t := sat16(b.d[i]+b.d[i]) * b.b[i] >> 15
		plain += t
		saturated = sat16(saturated + t)
	}
	return plain != saturated
}

// TestFiltezSaturation pins down FILTEZ's term-by-term saturation, the
// reference's rule, on a state where it differs from saturating (or not)
// the total: the zero section's terms are +19921 three times, then -19922
// twice and 0, so the running sum saturates at 32767 twice and ends at
// -7077 rather than 19919.
func TestFiltezSaturation(t *testing.T) {
	b := band{det: lowDetInit}
	b.b = [6]int{-32768, -32768, -32768, 32767, 32767, 32767}
	b.d = [6]int{10000, 10000, 10000, 10000, 10000, 0}
	b.update(0, 0, lowNBMax, lowNBBase) // d = 0: the zeros only leak
	if b.sz != -7077 {
		t.Fatalf("FILTEZ = %d, want -7077", b.sz)
	}
}

// pieces cuts n into random piece lengths (some zero, some odd) that sum
// to n.
func pieces(r *rand.Rand, n, maxPiece int) []int {
	var p []int
	for n > 0 {
		k := min(r.IntN(maxPiece+1), n)
		p = append(p, k)
		n -= k
	}
	return p
}

// TestStreaming checks that coding a stream in pieces — 20 ms frames, or
// random sizes including odd sample counts and empty calls — gives what
// one call gives.
func TestStreaming(t *testing.T) {
	pcm := readPCM(t, "speech.s16")
	pcm = pcm[:len(pcm)-1] // odd, so a sample is left over at the end
	whole := NewEncoder().Encode(nil, pcm)
	wholePCM := NewDecoder().Decode(nil, whole)

	r := rand.New(rand.NewPCG(1, 2))
	cuts := map[string][]int{"20ms": nil, "odd": nil}
	for n := len(pcm); n > 0; n -= min(n, 320) {
		cuts["20ms"] = append(cuts["20ms"], min(n, 320))
	}
	for n := len(pcm); n > 0; n -= min(n, 37) {
		cuts["odd"] = append(cuts["odd"], min(n, 37))
	}
	for i := range 5 {
		cuts["random"+string(rune('0'+i))] = pieces(r, len(pcm), 1+r.IntN(700))
	}
	for name, cut := range cuts {
		t.Run(name, func(t *testing.T) {
			e := NewEncoder()
			var got []byte
			rest := pcm
			for _, k := range cut {
				got = e.Encode(got, rest[:k])
				rest = rest[k:]
				if want := (len(pcm) - len(rest)) / 2; len(got) != want {
					t.Fatalf("after %d samples, %d bytes, want %d", len(pcm)-len(rest), len(got), want)
				}
			}
			if i := firstDiff(got, whole); i >= 0 {
				t.Fatalf("encoding in pieces differs from one call at byte %d", i)
			}

			// The same cuts, halved, as decoder payloads.
			d := NewDecoder()
			var out []int16
			payload := whole
			for _, k := range cut {
				k = min(k/2, len(payload))
				out = d.Decode(out, payload[:k])
				payload = payload[k:]
			}
			out = d.Decode(out, payload)
			if i := firstDiff(out, wholePCM); i >= 0 {
				t.Fatalf("decoding in pieces differs from one call at sample %d", i)
			}
		})
	}
}

// TestPendingSample checks the odd-sample carry: "a, then b c" codes as
// "a b c", and a lone sample waits for its pair.
func TestPendingSample(t *testing.T) {
	pcm := readPCM(t, "speech.s16")[:101]
	want := NewEncoder().Encode(nil, pcm[:100])
	e := NewEncoder()
	var got []byte
	for i := range pcm {
		got = e.Encode(got, pcm[i:i+1])
		if len(got) != (i+1)/2 {
			t.Fatalf("after %d samples one at a time, %d bytes", i+1, len(got))
		}
	}
	if !slices.Equal(got, want) {
		t.Fatal("coding one sample at a time differs from one call")
	}
	if got = e.Encode(got, nil); len(got) != 50 {
		t.Fatalf("an empty call emitted a byte")
	}
}

// TestAppends checks that Encode and Decode append to dst, keeping what
// it holds.
func TestAppends(t *testing.T) {
	pcm := readPCM(t, "speech.s16")[:640]
	enc := NewEncoder().Encode([]byte("head"), pcm)
	if string(enc[:4]) != "head" || len(enc) != 4+320 {
		t.Fatalf("Encode did not append: %q..., %d bytes", enc[:4], len(enc))
	}
	dec := NewDecoder().Decode([]int16{7, 8}, enc[4:])
	if dec[0] != 7 || dec[1] != 8 || len(dec) != 2+640 {
		t.Fatalf("Decode did not append: %v..., %d samples", dec[:2], len(dec))
	}
}

// TestReset checks that a reset coder codes like a new one, including an
// encoder that was holding an odd sample.
func TestReset(t *testing.T) {
	pcm := readPCM(t, "speech.s16")
	a, b := pcm[:4001], pcm[8000:12000]

	e := NewEncoder()
	payload := e.Encode(nil, a)
	e.Reset()
	if got, want := e.Encode(nil, b), NewEncoder().Encode(nil, b); !slices.Equal(got, want) {
		t.Fatal("encoding after Reset differs from a new encoder's")
	}

	d := NewDecoder()
	d.Decode(nil, payload)
	d.Reset()
	if *d != *NewDecoder() {
		t.Fatal("a reset decoder's state differs from a new one's")
	}
	want := NewDecoder().Decode(nil, payload)
	if got := d.Decode(nil, payload); !slices.Equal(got, want) {
		t.Fatal("decoding after Reset differs from a new decoder's")
	}

	e.Encode(nil, a) // leaves a sample pending
	if e.Reset(); *e != *NewEncoder() {
		t.Fatal("a reset encoder's state differs from a new one's")
	}
}

// TestTables checks facts the tables must satisfy, so a mistyped entry
// shows.
func TestTables(t *testing.T) {
	sum := 0
	for i, h := range qmfCoeffs {
		sum += h
		if h != qmfCoeffs[23-i] {
			t.Errorf("QMF not symmetric at %d", i)
		}
	}
	if sum != 1<<13 {
		t.Errorf("QMF DC gain %d, want 8192", sum)
	}
	for i := 2; i < 30; i++ {
		if q6[i] <= q6[i-1] {
			t.Errorf("q6 not increasing at %d", i)
		}
	}
	for i := 1; i < 8; i++ {
		// Codes 1..7 are the negative levels of codes 8..14, largest
		// first; 0 and 15 both stand for zero.
		if qm4[i] != -qm4[i+7] {
			t.Errorf("qm4 not antisymmetric at %d", i)
		}
	}
	for i := 4; i < 32; i++ {
		// Likewise the 6-bit codes 4..31 and 32..59.
		if qm6[i] != -qm6[i+28] || qm6[i] >= 0 {
			t.Errorf("qm6 not antisymmetric at %d", i)
		}
	}
	if qm4[0] != 0 || qm4[15] != 0 {
		t.Error("qm4 zero codes")
	}
	for i := 1; i < 32; i++ {
		if ilb[i] <= ilb[i-1] {
			t.Errorf("ilb not increasing at %d", i)
		}
	}
	if scale(0, lowNBBase) != lowDetInit || scale(0, highNBBase) != highDetInit ||
		scale(lowNBMax, lowNBBase) != 16384 || scale(highNBMax, highNBBase) != 16384 {
		t.Error("scale factor range wrong")
	}
}

// TestQMF checks the filter's spelled-out coefficients and ring buffer
// against a plain convolution with the Recommendation's table.
func TestQMF(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var q qmf
	var hist []int // every sample pushed, oldest first
	for n := range 200 {
		older, newer := r.IntN(65536)-32768, r.IntN(65536)-32768
		hist = append(hist, older, newer)
		xa, xb := q.filter(older, newer)
		var wa, wb int
		for k, h := range qmfCoeffs {
			w := 0 // the sample k steps back; zero before the start
			if j := len(hist) - 1 - k; j >= 0 {
				w = hist[j]
			}
			if k%2 == 0 {
				wa += h * w
			} else {
				wb += h * w
			}
		}
		if xa != wa || xb != wb {
			t.Fatalf("pair %d: filter gives %d %d, convolution %d %d", n, xa, xb, wa, wb)
		}
	}
}

// TestNoAllocs checks that coding allocates nothing once dst has room.
func TestNoAllocs(t *testing.T) {
	pcm := readPCM(t, "speech.s16")[:320]
	e, d := NewEncoder(), NewDecoder()
	payload := make([]byte, 0, 160)
	out := make([]int16, 0, 320)
	if n := testing.AllocsPerRun(100, func() { payload = e.Encode(payload[:0], pcm) }); n != 0 {
		t.Errorf("Encode: %v allocations per call", n)
	}
	if n := testing.AllocsPerRun(100, func() { out = d.Decode(out[:0], payload) }); n != 0 {
		t.Errorf("Decode: %v allocations per call", n)
	}
	odd := pcm[:319] // leaves a pending sample every other call
	if n := testing.AllocsPerRun(100, func() { payload = e.Encode(payload[:0], odd) }); n != 0 {
		t.Errorf("Encode, odd length: %v allocations per call", n)
	}
}

func BenchmarkEncode20ms(b *testing.B) {
	pcm := readPCM(b, "speech.s16")[:320]
	e := NewEncoder()
	dst := make([]byte, 0, 160)
	b.SetBytes(2 * 320)
	b.ReportAllocs()
	for b.Loop() {
		dst = e.Encode(dst[:0], pcm)
	}
}

func BenchmarkDecode20ms(b *testing.B) {
	payload := readFile(b, "speech.g722")[:160]
	d := NewDecoder()
	dst := make([]int16, 0, 320)
	b.SetBytes(160)
	b.ReportAllocs()
	for b.Loop() {
		dst = d.Decode(dst[:0], payload)
	}
}
