package media

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/clock"
)

// Config describes one call's media.
type Config struct {
	// Remote is where the peer asked for RTP (its SDP c= and m=). Packets are
	// accepted from that IP only; the first source port seen is kept.
	Remote netip.AddrPort
	Codec  Codec
	// DTMFPayloadType is the negotiated telephone-event type, 0 if none.
	DTMFPayloadType uint8
	// ReorderWindow is how many packets may be held to restore order.
	ReorderWindow int
	// InputSilenceAfter is the RTP gap after which silence is fed to OnAudio.
	InputSilenceAfter time.Duration
	// OnAudio receives the caller's audio as PCM16 at 8 kHz, in order, from
	// the receive goroutine. pcm is only valid during the call.
	OnAudio func(pcm []int16)
	// OnDTMF receives each key the caller pressed (RFC 4733), once, from the
	// receive goroutine.
	OnDTMF func(digit rune, duration time.Duration)
	// Output, if set, receives every outgoing RTP packet instead of the
	// socket (benchmarks and tests). packet is only valid during the call.
	Output func(packet []byte) error
	Clock  clock.Clock
	Log    zerolog.Logger
}

// Stats counts what happened on the call's RTP.
type Stats struct {
	PacketsIn, BytesIn       uint64
	Lost, Late, Duplicate    uint64
	WrongPayloadType         uint64
	FromStranger             uint64
	Malformed                uint64
	DTMFPackets              uint64
	SSRCChanges              uint64
	SilenceFramesIn          uint64 // 20 ms frames padded for the model
	PacketsOut, AudioOut     uint64
	SkippedOut               uint64
	MaxLateness, AvgLateness time.Duration
}

// Session is one call's RTP. Create it with NewSession, start it with Run.
type Session struct {
	cfg  Config
	conn *net.UDPConn

	queue *playout
	kick  chan struct{}

	// Receive-side state: only the receive goroutine touches it.
	reorder *reorderer
	dtmf    dtmfDecoder
	padder  silencePadder
	source  netip.AddrPort
	ssrc    uint32
	locked  bool
	pcm     []int16
	silence []int16

	in struct {
		packets, bytes, wrongPT, stranger, malformed, dtmf, ssrcChanges, silence atomic.Uint64
	}
	rmu      sync.Mutex // guards the reorderer's counters for Stats
	pmu      sync.Mutex // guards the pacer (Stats reads its counters)
	pacer    *pacer
	flushBuf []ItemPlayed
}

// NewSession prepares media on conn, which the session does not close.
func NewSession(conn *net.UDPConn, cfg Config) *Session {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.InputSilenceAfter <= 0 {
		cfg.InputSilenceAfter = 500 * time.Millisecond
	}
	if cfg.OnAudio == nil {
		cfg.OnAudio = func([]int16) {}
	}
	if cfg.OnDTMF == nil {
		cfg.OnDTMF = func(rune, time.Duration) {}
	}
	s := &Session{
		cfg:     cfg,
		conn:    conn,
		queue:   newPlayout(),
		kick:    make(chan struct{}, 1),
		reorder: newReorderer(cfg.ReorderWindow),
		pcm:     make([]int16, 0, MaxPayload),
		silence: make([]int16, FrameSamples),
	}
	s.padder.after = cfg.InputSilenceAfter
	var seed [10]byte
	_, _ = rand.Read(seed[:])
	out := cfg.Output
	if out == nil {
		out = func(pkt []byte) error {
			_, err := conn.WriteToUDPAddrPort(pkt, cfg.Remote)
			return err
		}
	}
	s.pacer = newPacer(cfg.Codec, s.queue, binary.BigEndian.Uint32(seed[0:]), binary.BigEndian.Uint16(seed[4:]),
		binary.BigEndian.Uint32(seed[6:]), out)
	return s
}

// LocalAddr is the address RTP is received on.
func (s *Session) LocalAddr() netip.AddrPort {
	return s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Enqueue queues bot audio (PCM16 8 kHz) of one item for playout. pcm is copied.
func (s *Session) Enqueue(ref ItemRef, pcm []int16) {
	if s.queue.enqueue(ref, pcm) {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// Flush stops bot audio at once: it waits out a packet being sent at this
// instant, and nothing queued is sent after it. It returns, for each item
// that was playing or queued, how much of it was sent, and when the last
// packet carrying bot audio left (zero if none ever did). The slice is
// reused by the next Flush. Flush also ends a pause.
func (s *Session) Flush() (played []ItemPlayed, lastAudio time.Time) {
	s.pmu.Lock() // the pacer holds pmu while it sends
	defer s.pmu.Unlock()
	s.flushBuf = s.queue.flush(s.flushBuf[:0])
	return s.flushBuf, s.pacer.stats.lastAudio
}

// Pause holds bot audio where it is: the pacer sends silence and nothing
// queued is lost or counted as sent. Audio enqueued meanwhile waits too.
func (s *Session) Pause() { s.queue.setPaused(true) }

// Resume continues a paused playout where it stopped, as a new talkspurt.
func (s *Session) Resume() {
	s.queue.setPaused(false)
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Paused reports whether playout is held.
func (s *Session) Paused() bool { return s.queue.isPaused() }

// QueuedMS is the bot audio waiting to be played.
func (s *Session) QueuedMS() int { return s.queue.queued() * 1000 / SampleRate }

// Played returns what is known of an item's playout.
func (s *Session) Played(itemID string) (ItemPlayed, bool) { return s.queue.account(itemID) }

// Stats returns the counters so far.
func (s *Session) Stats() Stats {
	st := Stats{
		PacketsIn: s.in.packets.Load(), BytesIn: s.in.bytes.Load(),
		WrongPayloadType: s.in.wrongPT.Load(), FromStranger: s.in.stranger.Load(),
		Malformed: s.in.malformed.Load(), DTMFPackets: s.in.dtmf.Load(),
		SSRCChanges: s.in.ssrcChanges.Load(), SilenceFramesIn: s.in.silence.Load(),
	}
	s.rmu.Lock()
	st.Lost, st.Late, st.Duplicate = s.reorder.lost, s.reorder.late, s.reorder.duplicate
	s.rmu.Unlock()
	s.pmu.Lock()
	ps := s.pacer.stats
	s.pmu.Unlock()
	st.PacketsOut, st.AudioOut, st.SkippedOut = ps.packets, ps.audioFrames, ps.skipped
	st.MaxLateness = ps.maxLateness
	if ps.packets > 0 {
		st.AvgLateness = ps.sumLateness / time.Duration(ps.packets)
	}
	return st
}

// Run sends and receives until ctx ends. It returns once both of its
// goroutines have stopped; the caller then releases the socket.
func (s *Session) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.receiveLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		s.pacerLoop(ctx)
	}()
	<-ctx.Done()
	// Unblock the reader: a deadline in the past fails the pending read.
	_ = s.conn.SetReadDeadline(time.Unix(1, 0))
	wg.Wait()
	return nil
}

// Tick runs the pacer as its loop would at now: it sends the frames due.
// Tests and benchmarks drive it; Run's loop must not be running.
func (s *Session) Tick(now time.Time) {
	s.pmu.Lock()
	s.pacer.tick(now)
	s.pmu.Unlock()
}

func (s *Session) pacerLoop(ctx context.Context) {
	clk := s.cfg.Clock
	s.pmu.Lock()
	s.pacer.tick(clk.Now())
	wait := s.pacer.next().Sub(clk.Now())
	s.pmu.Unlock()
	timer := clk.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C():
			s.pmu.Lock()
			s.pacer.tick(clk.Now())
			s.pmu.Unlock()
		case <-s.kick:
			s.pmu.Lock()
			s.pacer.talkspurt(clk.Now())
			s.pmu.Unlock()
		}
		s.pmu.Lock()
		wait := s.pacer.next().Sub(clk.Now())
		s.pmu.Unlock()
		timer.Stop()
		timer.Reset(max(wait, 0))
	}
}

func (s *Session) receiveLoop(ctx context.Context) {
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	clk := s.cfg.Clock
	for {
		if ctx.Err() != nil {
			return
		}
		wait := time.Second
		if !s.padder.last.IsZero() {
			wait = max(s.padder.deadline().Sub(clk.Now()), 0)
		}
		if d := s.dtmf.deadline(); !d.IsZero() {
			wait = max(min(wait, d.Sub(clk.Now())), 0)
		}
		_ = s.conn.SetReadDeadline(time.Now().Add(wait))
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				s.dtmf.expire(clk.Now(), s.cfg.OnDTMF)
				s.padSilence(clk.Now())
				continue
			}
			s.cfg.Log.Debug().Err(err).Msg("rtp read")
			continue
		}
		s.HandleDatagram(buf[:n], from, &pkt)
	}
}

// padSilence feeds the model silence for an input gap, after delivering
// anything the reorder window still held.
func (s *Session) padSilence(now time.Time) {
	frames := s.padder.due(now)
	if frames == 0 {
		return
	}
	s.rmu.Lock()
	s.reorder.flush(s.deliver)
	s.rmu.Unlock()
	for i := 0; i < frames; i++ {
		s.cfg.OnAudio(s.silence)
	}
	s.in.silence.Add(uint64(frames))
}

// HandleDatagram checks one received datagram and passes its audio on. The
// receive loop calls it; it is exported for fuzzing and benchmarks. pkt is
// scratch space the caller reuses. Not safe for concurrent use.
func (s *Session) HandleDatagram(data []byte, from netip.AddrPort, pkt *rtp.Packet) {
	now := s.cfg.Clock.Now()
	if from.Addr().Unmap() != s.cfg.Remote.Addr().Unmap() || (s.locked && from != s.source) {
		s.in.stranger.Add(1)
		return
	}
	if err := pkt.Unmarshal(data); err != nil || pkt.Version != 2 || len(pkt.Payload) > MaxPayload {
		s.in.malformed.Add(1)
		return
	}
	if s.cfg.DTMFPayloadType != 0 && pkt.PayloadType == s.cfg.DTMFPayloadType {
		// Key presses travel outside the reorder window: their timestamp,
		// not their sequence number, says which press a packet belongs to.
		s.in.dtmf.Add(1)
		s.dtmf.push(now, pkt.Timestamp, pkt.Payload, s.cfg.OnDTMF)
		return
	}
	if pkt.PayloadType != s.cfg.Codec.PayloadType {
		s.in.wrongPT.Add(1)
		return
	}
	if !s.locked {
		s.locked, s.source, s.ssrc = true, from, pkt.SSRC
	} else if pkt.SSRC != s.ssrc {
		// Same peer, new stream (a re-INVITE, a transfer on the far side).
		s.ssrc = pkt.SSRC
		s.in.ssrcChanges.Add(1)
		s.rmu.Lock()
		s.reorder.flush(s.deliver)
		s.reorder.reset()
		s.rmu.Unlock()
	}
	s.in.packets.Add(1)
	s.in.bytes.Add(uint64(len(data)))
	s.padder.onPacket(now)
	s.rmu.Lock()
	s.reorder.push(pkt.SequenceNumber, pkt.Payload, s.deliver)
	s.rmu.Unlock()
}

func (s *Session) deliver(payload []byte) {
	s.pcm = s.cfg.Codec.Decode(s.pcm[:0], payload)
	s.cfg.OnAudio(s.pcm)
}
