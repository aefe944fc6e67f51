package media

import "time"

// silencePadder decides when the model must be fed silence because the
// caller's RTP has stopped (silence suppression, a dead line, hold): without
// it the model's VAD never sees the end of the turn. After a gap of `after`
// it backfills the whole gap, then keeps up one frame per 20 ms, so the
// model's input timeline stays true to the wall clock.
type silencePadder struct {
	after   time.Duration
	last    time.Time // last packet or padded frame
	padding bool
}

// onPacket records a packet's arrival; padding stops.
func (s *silencePadder) onPacket(now time.Time) {
	s.last = now
	s.padding = false
}

// deadline is when the next silence frame is due.
func (s *silencePadder) deadline() time.Time {
	if s.padding {
		return s.last.Add(frameDuration)
	}
	return s.last.Add(s.after)
}

// due returns how many 20 ms silence frames to send now.
func (s *silencePadder) due(now time.Time) int {
	if s.last.IsZero() || now.Before(s.deadline()) {
		return 0
	}
	n := int(now.Sub(s.last) / frameDuration)
	s.last = s.last.Add(time.Duration(n) * frameDuration)
	s.padding = true
	return n
}
