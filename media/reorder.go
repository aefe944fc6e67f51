package media

// reorderer puts RTP packets back in sequence order within a small window.
// In-order packets pass straight through (no added delay); a packet after a
// gap is held until the missing one arrives or the window is full, at which
// point the missing ones are counted lost. Late packets (behind what was
// already delivered) and duplicates are dropped and counted.
type reorderer struct {
	window  int
	started bool
	next    uint16 // next sequence number to deliver
	slots   []heldPacket
	held    int
	// recent has bit i set when sequence next-1-i was delivered, to tell a
	// duplicate from a late packet.
	recent uint64

	// badSeq is the sequence number that would confirm a restart (RFC 3550
	// A.1): a packet far outside the window is held on probation until the
	// next one follows it.
	badSeq   uint16
	probing  bool
	restarts uint64

	lost, late, duplicate uint64
}

type heldPacket struct {
	valid   bool
	seq     uint16
	payload []byte // backed by buf
	buf     []byte
}

// Beyond these a sequence number is not reordering or loss but a restart of
// the numbering (a peer that restarted, a replayed stream): RFC 3550 A.1's
// MAX_DROPOUT and MAX_MISORDER, with the dropout scaled to 20 ms packets.
const (
	seqJump     = 1000
	maxMisorder = 100
)

func newReorderer(window int) *reorderer {
	r := &reorderer{window: window, slots: make([]heldPacket, window)}
	for i := range r.slots {
		r.slots[i].buf = make([]byte, MaxPayload)
	}
	return r
}

// reset forgets the sequence state (a new SSRC).
func (r *reorderer) reset() {
	r.started = false
	r.recent = 0
	for i := range r.slots {
		r.slots[i].valid = false
	}
	r.held = 0
}

// push accepts one packet; deliver is called for each packet now in order.
// payload is only read during the call (held packets are copied).
func (r *reorderer) push(seq uint16, payload []byte, deliver func([]byte)) {
	if !r.started {
		r.started = true
		r.next = seq
	}
	d := int16(seq - r.next)
	if r.probing && int(d) < seqJump && int(d) >= -maxMisorder {
		r.probing = false // the stream went on as before
	}
	switch {
	case d == 0:
		r.deliverOne(payload, deliver)
		r.drain(deliver)
	case int(d) >= seqJump || int(d) < -maxMisorder:
		if !r.probing || seq != r.badSeq {
			// One packet far off may be garbage: wait for a second in sequence.
			r.probing, r.badSeq = true, seq+1
			r.late++
			return
		}
		// Two in a row: a new numbering. Deliver what was held, start over.
		r.probing = false
		r.restarts++
		r.flush(deliver)
		r.recent = 0
		r.next = seq
		r.deliverOne(payload, deliver)
	case d < 0:
		back := -int(d) - 1 // 0 = the packet just delivered
		if back < 64 && r.recent&(1<<back) != 0 {
			r.duplicate++
		} else {
			r.late++
		}
	default: // ahead of a gap
		if r.isHeld(seq) {
			r.duplicate++
			return
		}
		if r.window == 0 || int(d) > r.window {
			// Too far ahead to wait for: the gap is lost.
			r.flush(deliver)
			gap := uint64(uint16(seq - r.next))
			r.lost += gap
			r.shift(int(gap))
			r.next = seq
			r.deliverOne(payload, deliver)
			return
		}
		r.hold(seq, payload)
		if r.held >= r.window {
			r.skipToHeld(deliver)
		}
	}
}

// flush delivers every held packet in order, counting the gaps as lost; used
// when the input pauses so no audio waits behind a packet that never comes.
func (r *reorderer) flush(deliver func([]byte)) {
	for r.held > 0 {
		r.skipToHeld(deliver)
	}
}

func (r *reorderer) deliverOne(payload []byte, deliver func([]byte)) {
	deliver(payload)
	r.next++
	r.shift(1)
	r.recent |= 1
}

// shift ages the duplicate bitmap by n delivered-or-lost positions.
func (r *reorderer) shift(n int) {
	if n >= 64 {
		r.recent = 0
		return
	}
	r.recent <<= uint(n)
}

func (r *reorderer) drain(deliver func([]byte)) {
	for r.held > 0 {
		i := r.find(r.next)
		if i < 0 {
			return
		}
		r.slots[i].valid = false
		r.held--
		r.deliverOne(r.slots[i].payload, deliver)
	}
}

// skipToHeld gives up on the missing packets before the earliest held one.
func (r *reorderer) skipToHeld(deliver func([]byte)) {
	best := -1
	var bestD int16
	for i := range r.slots {
		if r.slots[i].valid {
			d := int16(r.slots[i].seq - r.next)
			if best < 0 || d < bestD {
				best, bestD = i, d
			}
		}
	}
	if best < 0 {
		return
	}
	r.lost += uint64(bestD)
	r.shift(int(bestD))
	r.next = r.slots[best].seq
	r.drain(deliver)
}

func (r *reorderer) hold(seq uint16, payload []byte) {
	for i := range r.slots {
		if !r.slots[i].valid {
			n := copy(r.slots[i].buf, payload)
			r.slots[i] = heldPacket{valid: true, seq: seq, payload: r.slots[i].buf[:n], buf: r.slots[i].buf}
			r.held++
			return
		}
	}
}

func (r *reorderer) isHeld(seq uint16) bool { return r.find(seq) >= 0 }

func (r *reorderer) find(seq uint16) int {
	for i := range r.slots {
		if r.slots[i].valid && r.slots[i].seq == seq {
			return i
		}
	}
	return -1
}
