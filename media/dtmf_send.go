package media

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNoTelephoneEvent means the peer did not negotiate RFC 4733 events.
var ErrNoTelephoneEvent = errors.New("media: the peer did not negotiate telephone-event (RFC 4733)")

// RFC 4733 sending: each key is a tone of dtmfToneFrames packets with a
// growing duration, then its end packet three times, then dtmfGapFrames of
// silence before the next key. Every packet has a new sequence number; the
// packets of one event share its starting timestamp.
const (
	dtmfToneFrames = 5 // 100 ms: what carriers and IVRs expect of a key press
	dtmfEndFrames  = 3 // the end packet, sent three times (RFC 4733 §2.5.1.4)
	dtmfGapFrames  = 4 // 80 ms between keys
	dtmfVolume     = 10
	// maxDTMFQueue bounds what one request (or a misbehaving model) can queue.
	maxDTMFQueue = 64
)

// dtmfSender is the pacer's queue of keys to send. The pacer owns it.
type dtmfSender struct {
	queue   []byte // event codes waiting
	event   byte
	frame   int // frames of the current key sent so far, tone, end and gap
	active  bool
	startTS uint32
	payload [dtmfPayloadLen]byte
}

// dtmfPayloadLen is a telephone-event payload's size (RFC 4733 §2.3).
const dtmfPayloadLen = 4

// dtmfEvent maps a key to its RFC 4733 event code.
func dtmfEvent(key rune) (byte, bool) {
	i := strings.IndexRune(dtmfDigits, key)
	if i < 0 {
		i = strings.IndexRune("0123456789*#abcd", key)
	}
	if i < 0 {
		return 0, false
	}
	return byte(i), true
}

// add queues keys, all or none.
func (d *dtmfSender) add(keys string) error {
	events := make([]byte, 0, len(keys))
	for _, k := range keys {
		if k == ' ' || k == ',' || k == '-' {
			continue // people write "1234 #", "1-800"
		}
		e, ok := dtmfEvent(k)
		if !ok {
			return fmt.Errorf("media: %q is not a DTMF key (0-9, *, #, A-D)", k)
		}
		events = append(events, e)
	}
	if len(events) == 0 {
		return errors.New("media: no DTMF keys given")
	}
	if len(d.queue)+len(events) > maxDTMFQueue {
		return fmt.Errorf("media: at most %d DTMF keys may wait to be sent", maxDTMFQueue)
	}
	d.queue = append(d.queue, events...)
	return nil
}

// busy reports whether keys are being sent or wait: bot audio holds meanwhile.
func (d *dtmfSender) busy() bool { return d.active || len(d.queue) > 0 }

// pending is the number of keys not yet completely sent.
func (d *dtmfSender) pending() int {
	n := len(d.queue)
	if d.active {
		n++
	}
	return n
}

// next returns the telephone-event payload for this frame and whether it
// starts an event (the marker bit), or nil when this frame carries no event
// (a gap between keys). ts is the frame's RTP timestamp and step how far
// it advances a frame (the audio codec's clock times the events).
func (d *dtmfSender) next(ts, step uint32) (payload []byte, start bool) {
	if !d.active {
		if len(d.queue) == 0 {
			return nil, false
		}
		d.event, d.queue = d.queue[0], d.queue[1:]
		d.active, d.frame, d.startTS, start = true, 0, ts, true
	}
	d.frame++
	switch {
	case d.frame <= dtmfToneFrames:
		d.fill(false, uint16(uint32(d.frame)*step))
		return d.payload[:], start
	case d.frame <= dtmfToneFrames+dtmfEndFrames:
		d.fill(true, uint16(dtmfToneFrames*step))
		return d.payload[:], false
	default:
		if d.frame >= dtmfToneFrames+dtmfEndFrames+dtmfGapFrames {
			d.active = false
		}
		return nil, false
	}
}

func (d *dtmfSender) fill(end bool, duration uint16) {
	d.payload[0] = d.event
	d.payload[1] = dtmfVolume
	if end {
		d.payload[1] |= 0x80
	}
	d.payload[2], d.payload[3] = byte(duration>>8), byte(duration)
}
