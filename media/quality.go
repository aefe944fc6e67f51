package media

import (
	"math"
	"time"
)

// LatenessBounds are the upper bounds of the pacer lateness histogram in
// Stats.Lateness (the last bucket is everything beyond): how late each
// send of a 20 ms frame was against its exact schedule.
var LatenessBounds = [...]time.Duration{
	250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond,
	5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
}

// LatenessHistogram counts pacer sends by lateness bucket.
type LatenessHistogram [len(LatenessBounds) + 1]uint64

func (h *LatenessHistogram) observe(late time.Duration) {
	for i, b := range LatenessBounds {
		if late <= b {
			h[i]++
			return
		}
	}
	h[len(LatenessBounds)]++
}

// jitter is the RFC 3550 §6.4.1 interarrival jitter estimate of the
// caller's stream, in timestamp units, kept by the media worker.
type jitter struct {
	j         float64
	prev      float64 // the last packet's transit time
	have      bool
	epoch     time.Time
	clockRate float64
}

// packet updates the estimate with a packet's RTP timestamp and arrival.
func (j *jitter) packet(ts uint32, arrival time.Time) {
	if j.epoch.IsZero() {
		j.epoch = arrival
	}
	transit := arrival.Sub(j.epoch).Seconds()*j.clockRate - float64(ts)
	if j.have {
		d := math.Abs(transit - j.prev)
		if d < 1<<30 { // a timestamp jump (new stream) is not jitter
			j.j += (d - j.j) / 16
		}
	}
	j.prev, j.have = transit, true
}

func (j *jitter) reset() { j.have, j.epoch = false, time.Time{} }

// duration is the estimate as time.
func (j *jitter) duration() time.Duration {
	return time.Duration(j.j / j.clockRate * float64(time.Second))
}
