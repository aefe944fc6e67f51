package resample

import (
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// soxrResampler runs each whole signal through sox's "rate -v" (libsoxr,
// very high quality) so the same measurements can be taken of it.
type soxrRun struct {
	t       testing.TB
	dir     string
	in, out int
	calls   int
}

func (s *soxrRun) process(src []int16) []int16 {
	s.calls++
	inPath := filepath.Join(s.dir, "in.raw")
	outPath := filepath.Join(s.dir, "out.raw")
	b := make([]byte, 2*len(src))
	for i, v := range src {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	os.WriteFile(inPath, b, 0o644)
	raw := []string{"-t", "raw", "-e", "signed", "-b", "16", "-c", "1"}
	args := append(append([]string{"-D"}, raw...), "-r", strconv.Itoa(s.in), inPath)
	args = append(append(args, raw...), "-r", strconv.Itoa(s.out), outPath, "rate", "-v")
	if out, err := exec.Command("sox", args...).CombinedOutput(); err != nil {
		s.t.Fatalf("sox: %v %s", err, out)
	}
	ob, _ := os.ReadFile(outPath)
	pcm := make([]int16, len(ob)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(ob[2*i:]))
	}
	return pcm
}

// TestCompareWithSoxr prints our figures beside libsoxr's for
// docs/BENCHMARKS.md. It measures, it does not judge: run it with
// VBTEST_SOXR=1 (sox must be installed; ./test.sh installs it).
func TestCompareWithSoxr(t *testing.T) {
	if os.Getenv("VBTEST_SOXR") == "" {
		t.Skip("set VBTEST_SOXR=1 to compare with libsoxr")
	}
	if _, err := exec.LookPath("sox"); err != nil {
		t.Skip("sox not installed")
	}
	up := &soxrRun{t: t, dir: t.TempDir(), in: 8000, out: 24000}
	down := &soxrRun{t: t, dir: t.TempDir(), in: 24000, out: 8000}

	// The same measurements as measureUp/measureDown, on sox's output.
	lo, hi, worst := math.Inf(1), math.Inf(-1), math.Inf(1)
	for f := 100.0; f <= PassbandHz; f += 100 {
		out := up.process(tone(8000, 8000, f, testAmp))
		amp, res := fitTone(out[2000:22000], 24000, f)
		g := db(amp / testAmp)
		lo, hi = math.Min(lo, g), math.Max(hi, g)
		worst = math.Min(worst, db(amp/(res*math.Sqrt2)))
	}
	ours := measureUp(t, MustNew(8000, 24000), 8000)
	t.Logf("8k→24k  ours:   ripple %.4f dB, worst image rejection %.1f dB", ours.rippleDB, ours.worstRejectDB)
	t.Logf("8k→24k  soxr -v: ripple %.4f dB, worst image rejection %.1f dB", hi-lo, worst)

	lo, hi, worst = math.Inf(1), math.Inf(-1), math.Inf(1)
	for f := 100.0; f <= PassbandHz; f += 100 {
		out := down.process(tone(24000, 24000, f, testAmp))
		amp, _ := fitTone(out[1000:7000], 8000, f)
		g := db(amp / testAmp)
		lo, hi = math.Min(lo, g), math.Max(hi, g)
	}
	for f := 4000.0; f < 12000; f += 50 {
		out := down.process(tone(24000, 24000, f, testAmp))
		worst = math.Min(worst, db(testAmp/math.Sqrt2/math.Max(rms(out[1000:7000]), 1e-9)))
	}
	oursDown := measureDown(t, MustNew(24000, 8000), 8000)
	t.Logf("24k→8k  ours:   ripple %.4f dB, worst alias rejection %.1f dB", oursDown.rippleDB, oursDown.worstRejectDB)
	t.Logf("24k→8k  soxr -v: ripple %.4f dB, worst alias rejection %.1f dB", hi-lo, worst)
	r := MustNew(24000, 8000)
	t.Logf("delay: ours %.2f output samples at 8 kHz (%.2f ms); %s", r.Delay(), r.Delay()/8, r)
}
