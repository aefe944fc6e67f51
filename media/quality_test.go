package media

import (
	"testing"
	"time"
)

// RFC 3550 jitter: a stream arriving exactly on its timestamps has none; one
// whose packets arrive alternately 10 ms early and late converges to about
// the mean absolute transit difference (20 ms).
func TestJitterEstimate(t *testing.T) {
	j := jitter{clockRate: 8000}
	start := time.Unix(0, 0)
	for i := 0; i < 200; i++ {
		j.packet(uint32(i*160), start.Add(time.Duration(i)*20*time.Millisecond))
	}
	if d := j.duration(); d > time.Microsecond {
		t.Fatalf("perfect stream: jitter %v", d)
	}
	j = jitter{clockRate: 8000}
	for i := 0; i < 500; i++ {
		off := 10 * time.Millisecond
		if i%2 == 0 {
			off = -off
		}
		j.packet(uint32(i*160), start.Add(time.Duration(i)*20*time.Millisecond+off))
	}
	if d := j.duration(); d < 18*time.Millisecond || d > 22*time.Millisecond {
		t.Fatalf("±10 ms stream: jitter %v, want about 20 ms", d)
	}
}

func TestLatenessHistogram(t *testing.T) {
	var h LatenessHistogram
	for _, d := range []time.Duration{0, 300 * time.Microsecond, 3 * time.Millisecond, time.Second} {
		h.observe(d)
	}
	if h[0] != 1 || h[1] != 1 || h[4] != 1 || h[len(LatenessBounds)] != 1 {
		t.Fatalf("%v", h)
	}
}
