package media

import (
	"time"

	"github.com/pion/rtp"
)

// pacer sends one 20 ms RTP packet per deadline on an absolute schedule:
// deadline n = anchor + n·20 ms, so timer jitter never accumulates into drift.
// While the bot is quiet it sends silence (carriers hang up on calls that
// stop sending). The first packet of a talkspurt leaves as soon as its audio
// exists, with the marker bit, and the schedule is re-anchored there.
//
// Schedules are anchored on a grid of pacingGrid: the calls' deadlines fall
// on a few shared instants, and the runtime serves all calls due at one
// instant with one thread wake instead of one each. The frame after a
// talkspurt's first follows it by 18 to 20 ms.
//
// A stateful codec (G.722) is encoded here, as each frame leaves, by the
// one encoder of the call's stream: the far end's decoder follows exactly
// the state of what was sent, silence and DTMF gaps included, and never of
// audio a barge-in dropped from the queue.
//
// pacer holds no goroutine or clock of its own: a media worker calls tick,
// and Session talkspurt, with the time, which keeps it testable on a fake
// clock.
type pacer struct {
	onSent  func(at time.Time, pcm []int16, rate int) // each frame of bot audio sent, for recordings
	codec   Codec
	queued  Codec   // the form the queue holds: codec, or linear PCM for a stateful codec
	encoder Encoder // a stateful codec's, for the stream sent; nil otherwise
	queue   *playout
	write   func(packet []byte) error
	anchor  time.Time
	n       int64 // frames sent since anchor
	started bool
	talking bool

	dtmfPT uint8 // negotiated telephone-event payload type, 0 if none
	dtmf   dtmfSender

	header  rtp.Header
	tsStep  uint32  // timestamp units per frame: the codec's
	frame   []int16 // a frame decoded, for onSent and a stateful encoder
	payload []byte  // a frame taken from the queue
	wire    []byte  // a frame a stateful encoder coded
	zeros   []int16 // a frame of silence for a stateful encoder
	silence []byte  // the codec's, shared (stateless codecs)
	packet  []byte

	stats pacerStats
}

type pacerStats struct {
	lastAudio   time.Time // when the last packet carrying bot audio was written
	packets     uint64
	audioFrames uint64
	dtmfPackets uint64
	skipped     uint64 // frames dropped from the schedule after a long stall
	maxLateness time.Duration
	sumLateness time.Duration
	lateness    LatenessHistogram
	writeErrors uint64
}

// maxBurst is how many overdue frames one wake-up may send. A longer stall
// (a paused process, an overloaded box) skips ahead instead of flooding the
// far end's jitter buffer; the skipped time shows as a timestamp jump.
const maxBurst = 3

const frameDuration = FrameDurationMS * time.Millisecond

// pacingGrid is the granularity of the pacers' anchors (see pacer).
const pacingGrid = 2 * time.Millisecond

// onGrid is the grid instant at or before t.
func onGrid(t time.Time) time.Time { return t.Truncate(pacingGrid) }

func newPacer(codec Codec, queue *playout, ssrc uint32, seq uint16, ts uint32, write func([]byte) error) *pacer {
	p := &pacer{
		queue: queue, write: write,
		header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc},
	}
	p.setCodec(codec)
	return p
}

// setCodec switches the codec of the frames that follow (a re-INVITE may
// change it); sequence numbers and timestamps carry on. Buffers are sized
// for the codec's frame, so they are only made again for a larger one.
func (p *pacer) setCodec(codec Codec) {
	p.codec, p.queued = codec, queued(codec)
	p.encoder = nil
	if codec.Stateful() {
		p.encoder = codec.NewEncoder()
	}
	p.header.PayloadType = codec.PayloadType
	p.tsStep = codec.FrameTimestamp()
	p.silence = codec.Silence()
	if cap(p.payload) < p.queued.FrameBytes {
		p.payload = make([]byte, 0, p.queued.FrameBytes)
	}
	if cap(p.wire) < codec.FrameBytes {
		p.wire = make([]byte, 0, codec.FrameBytes)
		p.packet = make([]byte, 12+max(codec.FrameBytes, dtmfPayloadLen))
	}
	if cap(p.frame) < codec.FrameSamples {
		p.frame = make([]int16, 0, codec.FrameSamples)
	}
	if len(p.zeros) < codec.FrameSamples {
		p.zeros = make([]int16, codec.FrameSamples)
	}
}

// silentFrame is a frame of silence in the codec: a stateless codec's
// shared one, or a stateful codec's stream carried on over silence.
func (p *pacer) silentFrame() []byte {
	if p.encoder == nil {
		return p.silence
	}
	p.wire = p.encoder.Encode(p.wire[:0], p.zeros[:p.codec.FrameSamples])
	return p.wire
}

// next is the deadline of the next frame.
func (p *pacer) next() time.Time { return p.anchor.Add(time.Duration(p.n) * frameDuration) }

// tick sends every frame whose deadline has passed by now.
func (p *pacer) tick(now time.Time) {
	if !p.started {
		p.started = true
		p.anchor, p.n = onGrid(now), 0
	}
	due := 0
	for d := p.next(); !d.After(now); d = d.Add(frameDuration) {
		due++
		if due > maxBurst {
			break
		}
	}
	if due == 0 {
		return
	}
	late := now.Sub(p.next())
	p.stats.sumLateness += late
	p.stats.lateness.observe(late)
	if late > p.stats.maxLateness {
		p.stats.maxLateness = late
	}
	if due > maxBurst {
		// Skip the backlog: keep timestamps continuous with elapsed time.
		behind := int64(now.Sub(p.anchor)/frameDuration) + 1 - p.n
		skip := behind - maxBurst
		p.n += skip
		p.header.Timestamp += uint32(skip) * p.tsStep
		p.stats.skipped += uint64(skip)
		due = maxBurst
	}
	for i := 0; i < due; i++ {
		p.sendAt(now)
		p.n++
	}
}

// talkspurt is called when audio is queued while the bot was quiet: the
// first frame goes now and the schedule restarts from it.
func (p *pacer) talkspurt(now time.Time) {
	if p.talking || p.dtmf.busy() || p.queue.queued() == 0 || p.queue.isPaused() {
		return
	}
	if p.started && !now.Before(p.next()) {
		p.tick(now) // a regular frame is due anyway
		return
	}
	p.started = true
	p.sendAt(now)
	p.anchor, p.n = onGrid(now), 1
}

func (p *pacer) sendAt(now time.Time) {
	keys := p.dtmf.busy()
	p.payload = p.payload[:p.queued.FrameBytes]
	n, held := p.queue.take(p.payload, keys)
	if held {
		// On hold nothing is sent (RFC 3264: the peer is recvonly or
		// inactive) while the schedule and timestamps run on.
		p.talking = false
		p.header.Timestamp += p.tsStep
		return
	}
	if keys {
		p.sendDTMF()
		return
	}
	var payload []byte
	p.header.Marker = false
	if n > 0 {
		copy(p.payload[n:], p.queued.Silence()[n:]) // the end of a talkspurt
		payload = p.payload
		if p.onSent != nil || p.encoder != nil {
			p.frame = p.queued.Decode(p.frame[:0], p.payload)
		}
		if p.onSent != nil {
			p.onSent(now, p.frame, p.codec.SampleRate)
		}
		if p.encoder != nil {
			p.wire = p.encoder.Encode(p.wire[:0], p.frame)
			payload = p.wire
		}
		p.header.Marker = !p.talking
		p.talking = true
		p.stats.audioFrames++
	} else {
		p.talking = false
		payload = p.silentFrame()
	}
	hn, err := p.header.MarshalTo(p.packet)
	if err == nil {
		pkt := append(p.packet[:hn], payload...)
		if err = p.write(pkt); err != nil {
			p.stats.writeErrors++
		}
		if n > 0 {
			p.stats.lastAudio = now
		}
	}
	p.stats.packets++
	p.header.SequenceNumber++
	p.header.Timestamp += p.tsStep
}

// sendDTMF sends this frame's telephone-event packet, or silence in the gap
// between keys. Bot audio waits in the queue meanwhile.
func (p *pacer) sendDTMF() {
	p.talking = false
	event, start := p.dtmf.next(p.header.Timestamp, p.tsStep)
	h := p.header
	var payload []byte
	h.Marker = false
	if event != nil {
		h.PayloadType, h.Timestamp, h.Marker = p.dtmfPT, p.dtmf.startTS, start
		payload = event
		p.stats.dtmfPackets++
	} else {
		payload = p.silentFrame()
	}
	if hn, err := h.MarshalTo(p.packet); err == nil {
		if err := p.write(append(p.packet[:hn], payload...)); err != nil {
			p.stats.writeErrors++
		}
	}
	p.stats.packets++
	p.header.SequenceNumber++
	p.header.Timestamp += p.tsStep
}
