package media

import (
	"encoding/binary"
	"time"
)

// dtmfDecoder turns RFC 4733 telephone-event packets into key presses. An
// event is one RTP timestamp: it is sent repeatedly while the key is held
// and its end packet is sent three times, so a press is reported once, when
// its first end packet arrives. An event whose end packets were all lost is
// reported when the next event begins, or once no packet of it has arrived
// for dtmfEndTimeout.
type dtmfDecoder struct {
	current  uint32 // timestamp of the event in progress
	active   bool   // an event is in progress and not yet reported
	reported uint32 // timestamp of the last reported event
	has      bool   // reported is valid
	digit    rune
	duration uint16
	lastAt   time.Time // arrival of the last packet of the active event
	// clockRate times the events' durations: the audio codec's (RFC 4733
	// §2.1).
	clockRate int
}

// dtmfEndTimeout is the silence after which an event without an end packet
// is taken as ended. Senders refresh a held key every 50 ms or so.
const dtmfEndTimeout = 400 * time.Millisecond

// dtmfDigits maps event codes 0-15 to keys (RFC 4733 §3.2).
const dtmfDigits = "0123456789*#ABCD"

// push reads one telephone-event payload with its RTP timestamp and calls
// emit for each completed key press.
func (d *dtmfDecoder) push(now time.Time, ts uint32, payload []byte, emit func(digit rune, duration time.Duration)) {
	if len(payload) < 4 {
		return
	}
	event, end, dur := payload[0], payload[1]&0x80 != 0, binary.BigEndian.Uint16(payload[2:])
	if d.has && ts == d.reported {
		return // a repeat of the end of an event already reported
	}
	if d.active && ts != d.current {
		d.report(emit) // the previous event's end never came
	}
	if event >= 16 {
		d.active = false // not a key (flash, tones): ignore the event
		return
	}
	if !d.active {
		d.current, d.active, d.digit, d.duration = ts, true, rune(dtmfDigits[event]), 0
	}
	d.lastAt = now
	d.duration = max(d.duration, dur)
	if end {
		d.report(emit)
	}
}

// expire reports an event whose end packets never came once it has been
// quiet for dtmfEndTimeout.
func (d *dtmfDecoder) expire(now time.Time, emit func(rune, time.Duration)) {
	if d.active && now.Sub(d.lastAt) >= dtmfEndTimeout {
		d.report(emit)
	}
}

// deadline is when expire has work to do (zero when no event is open).
func (d *dtmfDecoder) deadline() time.Time {
	if !d.active {
		return time.Time{}
	}
	return d.lastAt.Add(dtmfEndTimeout)
}

func (d *dtmfDecoder) report(emit func(rune, time.Duration)) {
	emit(d.digit, time.Duration(d.duration)*time.Second/time.Duration(d.clockRate))
	d.reported, d.has, d.active, d.duration = d.current, true, false, 0
}
