package resample

import (
	"math"
	"testing"
)

// The filter's delay is a whole number of samples plus a half: reporting
// it rounded down put every figure built on it half a sample early.
func TestDelayIsFractional(t *testing.T) {
	for _, c := range []struct {
		in, out int
		want    float64
	}{{8000, 24000, 107.5}, {24000, 8000, 107.5 / 3}} {
		r := MustNew(c.in, c.out)
		got := r.Delay()
		if math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: Delay %v, want %v", r, got, c.want)
		}
		if ms := got / float64(c.out) * 1000; ms < 4.4 || ms > 4.6 {
			t.Errorf("%s: delay %.2f ms, want about 4.5", r, ms)
		}
	}
}

// A stream fed frame by frame and flushed gives every sample the same
// stream followed by long silence would give, up to the end of its input:
// nothing of it is left in the filter for the next stream.
func TestFlushEndsTheStream(t *testing.T) {
	for _, c := range []struct{ in, out, frame int }{{24000, 8000, 480}, {8000, 24000, 160}, {24000, 16000, 480}} {
		burst := tone(c.in/2, float64(c.in), 1000, testAmp) // half a second
		r := MustNew(c.in, c.out)
		got := runFrames(r, burst, c.frame)
		got = r.Flush(got)

		ref := MustNew(c.in, c.out).Process(nil, append(append([]int16(nil), burst...), make([]int16, c.in/10)...))
		wantLen := int(math.Ceil(float64(len(burst))*float64(c.out)/float64(c.in) + r.Delay()))
		if len(got) < wantLen || len(got) > wantLen+r.up {
			t.Errorf("%s: %d samples after Flush, want the input's %d and the delay's: %d", r, len(got), len(burst), wantLen)
		}
		for i := range got {
			if d := int(got[i]) - int(ref[i]); d < -1 || d > 1 {
				t.Fatalf("%s: sample %d is %d, the unbroken stream has %d", r, i, got[i], ref[i])
			}
		}
		// The burst's last 5 ms, as heard (a delay later), are all there:
		// up to the few samples where the filter straddles its end.
		end := wantLen - c.out/2000
		if tail := rms(got[end-c.out/200 : end]); tail < testAmp/math.Sqrt2*0.9 {
			t.Errorf("%s: the burst's last 5 ms come out at %.0f RMS, want about %.0f", r, tail, testAmp/math.Sqrt2)
		}
		// The next stream starts clean.
		next := r.Process(nil, make([]int16, c.frame))
		if peak := maxAbs(next); peak != 0 {
			t.Errorf("%s: the next stream starts with the last one's tail (peak %d)", r, peak)
		}
	}
}

func TestFlushAllocatesNothing(t *testing.T) {
	r := MustNew(24000, 8000)
	frame := tone(480, 24000, 1000, testAmp)
	dst := make([]int16, 0, r.OutLen(len(frame))+r.OutLen(r.FlushLen()))
	if n := testing.AllocsPerRun(100, func() {
		dst = r.Process(dst[:0], frame)
		dst = r.Flush(dst)
	}); n != 0 {
		t.Errorf("%v allocations per frame and flush", n)
	}
}

func maxAbs(x []int16) int {
	m := 0
	for _, v := range x {
		m = max(m, abs(int(v)))
	}
	return m
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
