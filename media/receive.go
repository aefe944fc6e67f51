package media

import (
	"net/netip"
	"time"

	"github.com/pion/rtp"
)

// The receive side of a call, run by its worker: the socket drained, each
// datagram checked and delivered, silence put in for the caller's gaps.

// maxDrain bounds the datagrams taken per wake-up, so a flood at the port
// cannot hold the loop (and the bot's audio) up; the rest wait their turn
// or overflow the socket's buffer.
const maxDrain = 64

// drain handles the datagrams waiting on the socket.
func (s *Session) drain(pkt *rtp.Packet) {
	s.rx.newDrain()
	for i := 0; i < maxDrain; i++ {
		data, from, arrival, ok, err := s.rx.next()
		if err != nil {
			s.cfg.Log.Debug().Err(err).Msg("rtp read")
			return
		}
		if !ok {
			return
		}
		s.handle(data, from, pkt, arrival)
	}
}

// expire does the receive path's timed work: a key press whose end never
// came is reported, and a gap in the caller's RTP is padded with silence.
func (s *Session) expire(now time.Time) {
	if d := s.dtmf.deadline(); !d.IsZero() && !now.Before(d) {
		s.dtmf.expire(now, s.cfg.OnDTMF)
	}
	if !s.padder.last.IsZero() && !now.Before(s.padder.deadline()) {
		s.padSilence(now)
	}
}

// padSilence feeds the model silence for an input gap, after delivering
// anything the reorder window still held.
func (s *Session) padSilence(now time.Time) {
	if s.held.Load() {
		// No silence for the model during hold, and none to backfill after.
		s.padder = silencePadder{after: s.cfg.InputSilenceAfter}
		return
	}
	frames := s.padder.due(now)
	if frames == 0 {
		return
	}
	s.rmu.Lock()
	s.reorder.flush(s.deliver)
	s.rmu.Unlock()
	for i := 0; i < frames; i++ {
		if s.cfg.OnPayload != nil {
			s.cfg.OnPayload(s.silentPayload(), s.codec)
			continue
		}
		s.cfg.OnAudio(s.silence, s.codec.SampleRate)
	}
	s.in.silence.Add(uint64(frames))
}

// HandleDatagram checks one received datagram and passes its audio on, as
// the media worker does with each; it is exported for fuzzing and
// benchmarks. pkt is scratch space the caller reuses. Not safe for
// concurrent use.
func (s *Session) HandleDatagram(data []byte, from netip.AddrPort, pkt *rtp.Packet) {
	s.handle(data, from, pkt, s.cfg.Clock.Now())
}

// handle is HandleDatagram for a datagram that arrived at now.
func (s *Session) handle(data []byte, from netip.AddrPort, pkt *rtp.Packet, now time.Time) {
	peer := s.peer.Load()
	if peer.gen != s.gen {
		s.newPeer(peer)
	}
	if !peer.accepts(from.Addr()) || (s.locked && from != s.source) {
		s.in.stranger.Add(1)
		return
	}
	data, ok := s.unprotect(peer, data)
	if !ok {
		s.in.srtpFailed.Add(1)
		return
	}
	if err := pkt.Unmarshal(data); err != nil || pkt.Version != 2 || len(pkt.Payload) > MaxPayload {
		s.in.malformed.Add(1)
		return
	}
	s.lastRx.Store(now.UnixNano())
	if s.held.Load() {
		s.in.held.Add(1)
		return
	}
	if peer.DTMFPayloadType != 0 && pkt.PayloadType == peer.DTMFPayloadType {
		// Key presses travel outside the reorder window: their timestamp,
		// not their sequence number, says which press a packet belongs to.
		s.in.dtmf.Add(1)
		s.dtmf.push(now, pkt.Timestamp, pkt.Payload, s.cfg.OnDTMF)
		return
	}
	if pkt.PayloadType != peer.Codec.PayloadType {
		s.in.wrongPT.Add(1)
		return
	}
	if !s.locked {
		if pkt.SSRC != s.ssrc {
			// A new stream (a new peer's, or the same peer's anew after
			// a re-INVITE) starts from a new encoder's state.
			s.decoder = s.codec.NewDecoder()
		}
		s.locked, s.source, s.ssrc = true, from, pkt.SSRC
		if peer.Symmetric {
			s.latched.Store(&latch{gen: peer.gen, addr: from})
			if from != peer.Remote {
				s.cfg.Log.Debug().Str("signalled", peer.Remote.String()).Str("latched", from.String()).Msg("rtp: sending to where the peer's RTP comes from")
			}
		}
	} else if pkt.SSRC != s.ssrc {
		// Same peer, new stream (a re-INVITE, a transfer on the far side).
		s.ssrc = pkt.SSRC
		s.jitter.reset()
		s.in.ssrcChanges.Add(1)
		s.rmu.Lock()
		s.reorder.flush(s.deliver) // the old stream's last packets, by its decoder
		s.reorder.reset()
		s.rmu.Unlock()
		s.decoder = s.codec.NewDecoder() // the new stream starts from a new encoder's state
	}
	s.in.packets.Add(1)
	s.in.bytes.Add(uint64(len(data)))
	s.jitter.packet(pkt.Timestamp, now)
	s.jitterNS.Store(int64(s.jitter.duration()))
	s.padder.onPacket(now)
	s.rmu.Lock()
	s.reorder.push(pkt.SequenceNumber, pkt.Payload, s.deliver)
	s.rmu.Unlock()
}

// newPeer starts the receive path over for a changed peer: a new source
// to lock onto and a new sequence space, after delivering what was held.
func (s *Session) newPeer(p *peerState) {
	s.gen = p.gen
	s.locked = false
	s.jitter.reset()
	s.rmu.Lock()
	s.reorder.flush(s.deliver)
	s.reorder.reset()
	s.rmu.Unlock()
	s.receiveCodec(p.Codec)
}

// receiveCodec makes the receive path's codec-dependent state follow the
// codec of the packets to come: decoding, the jitter and DTMF clocks, the
// silence put in for gaps. Buffers are made only when they must grow.
func (s *Session) receiveCodec(c Codec) {
	if c != s.codec || s.decoder == nil {
		// Same codec, same stream (an SRTP rekey, a new address for it):
		// the decoder keeps its state; a new stream gets a new one when
		// its first packet locks on (handle).
		s.decoder = c.NewDecoder()
	}
	s.codec = c
	s.jitter.clockRate = float64(c.ClockRate)
	s.dtmf.clockRate = c.ClockRate
	if need := MaxPayload * c.FrameSamples / c.FrameBytes; cap(s.pcm) < need {
		s.pcm = make([]int16, 0, need)
	}
	if len(s.silence) != c.FrameSamples {
		s.silence = make([]int16, c.FrameSamples)
	}
}

func (s *Session) deliver(payload []byte) {
	if s.cfg.OnPayload != nil {
		s.cfg.OnPayload(payload, s.codec)
		return
	}
	s.pcm = s.decoder.Decode(s.pcm[:0], payload)
	s.cfg.OnAudio(s.pcm, s.codec.SampleRate)
}

// silentPayload is a frame of the current codec's silence.
func (s *Session) silentPayload() []byte { return s.codec.Silence() }
