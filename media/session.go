package media

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/clock"
)

// Peer is the far end of a call's RTP as signalled: where to send, what it
// carries. A re-INVITE or a late answer may change it (SetPeer).
type Peer struct {
	// Remote is where the peer asked for RTP (its SDP c= and m=). Packets
	// are accepted from its IP (and Sources) only; the first source port
	// seen is kept.
	Remote netip.AddrPort
	// Sources are further IPs RTP is accepted from: the address the call's
	// signalling came from, for a peer behind NAT whose SDP names a private
	// address. Packets from anywhere else are strangers.
	Sources []netip.Addr
	// Symmetric sends RTP back to the address the peer's first packet came
	// from (latching), not to Remote: a NATed peer is reachable only there.
	// The latch happens once per Peer, at the first packet, so a stranger
	// cannot take over the stream later.
	Symmetric bool
	// Codec is an entry of the codec table; the zero Codec means PCMU.
	Codec Codec
	// DTMFPayloadType is the negotiated telephone-event type, 0 if none.
	DTMFPayloadType uint8
	// SRTP, when set, encrypts the call's RTP both ways (SDES keys).
	SRTP *SRTP
}

// withCodec is p with the zero Codec made PCMU.
func (p Peer) withCodec() Peer {
	if !p.Codec.Valid() {
		p.Codec = PCMU
	}
	return p
}

// accepts reports whether RTP from ip may belong to this peer.
func (p *Peer) accepts(ip netip.Addr) bool {
	ip = ip.Unmap()
	if p.Remote.IsValid() && ip == p.Remote.Addr().Unmap() {
		return true
	}
	for _, s := range p.Sources {
		if ip == s.Unmap() {
			return true
		}
	}
	return false
}

// Config describes one call's media.
type Config struct {
	// Peer is the far end as first negotiated. An outbound call may start
	// without one (the answer brings it).
	Peer
	// ReorderWindow is how many packets may be held to restore order.
	ReorderWindow int
	// InputSilenceAfter is the RTP gap after which silence is fed to OnAudio.
	InputSilenceAfter time.Duration
	// OnAudio receives the caller's audio as PCM16 at rate (its codec's
	// SampleRate: a re-INVITE may change it), in order, from the media
	// worker. pcm is only valid during the call.
	OnAudio func(pcm []int16, rate int)
	// OnPayload, when set, receives the caller's audio as the bytes of
	// codec (the one the peer sends now: a re-INVITE may change it)
	// instead of OnAudio's PCM: the model takes G.711 itself, and nothing
	// is decoded. Silence is the codec's. payload is only valid during
	// the call.
	OnPayload func(payload []byte, codec Codec)
	// OnDTMF receives each key the caller pressed (RFC 4733), once, from the
	// media worker.
	OnDTMF func(digit rune, duration time.Duration)
	// OnSent, if set, receives each 20 ms frame of bot audio as it is sent
	// (PCM16 at rate, the codec's; valid during the call only), from the
	// pacer.
	OnSent func(at time.Time, pcm []int16, rate int)
	// Output, if set, receives every outgoing RTP packet instead of the
	// socket (benchmarks and tests). packet is only valid during the call.
	Output func(packet []byte) error
	Clock  clock.Clock
	// Engine runs the session (nil: Start starts an engine of its own).
	Engine *Engine
	Log    zerolog.Logger
}

// peerState is one generation of the peer: the receive path starts over
// (new lock, new latch, new sequence state) when the generation changes.
type peerState struct {
	Peer
	gen    uint64
	crypto *srtpState // nil: plain RTP
}

// latch is where the peer's RTP was seen coming from, for one generation.
type latch struct {
	gen  uint64
	addr netip.AddrPort
}

// Stats counts what happened on the call's RTP.
type Stats struct {
	PacketsIn, BytesIn    uint64
	Lost, Late, Duplicate uint64
	WrongPayloadType      uint64
	FromStranger          uint64
	Malformed             uint64
	DTMFPackets           uint64
	SSRCChanges           uint64
	SilenceFramesIn       uint64 // 20 ms frames padded for the model
	HeldIn                uint64 // packets dropped while the call was on hold
	SRTPFailed            uint64 // packets that failed SRTP authentication or replay checks
	PacketsOut, AudioOut  uint64
	DTMFOut               uint64 // telephone-event packets sent
	SkippedOut            uint64
	// MisratedOut counts pieces of bot audio dropped for coming at a rate
	// the call's codec no longer had (see Enqueue).
	MisratedOut              uint64
	MaxLateness, AvgLateness time.Duration
	// Lateness counts pacer sends by how late they were (LatenessBounds).
	Lateness LatenessHistogram
	// Jitter is the RFC 3550 interarrival jitter of the caller's RTP.
	Jitter time.Duration
}

// Session is one call's RTP. Create it with NewSession, start it with Run.
type Session struct {
	cfg  Config
	conn *net.UDPConn
	sock *callSocket // conn as the worker uses it (nil without conn)

	queue   *playout
	rx      *socketReader // the socket's non-blocking reader, once running
	tx      *socketWriter
	running atomic.Bool // Start has handed the session to a worker

	peer     atomic.Pointer[peerState]
	latched  atomic.Pointer[latch]
	held     atomic.Bool
	lastRx   atomic.Int64 // unix ns of the last valid packet from the peer
	jitterNS atomic.Int64 // the receive path's jitter estimate, published

	// Receive-side state: only the loop touches it.
	reorder *reorderer
	dtmf    dtmfDecoder
	padder  silencePadder
	gen     uint64 // the peer generation the state below belongs to
	source  netip.AddrPort
	ssrc    uint32
	locked  bool
	codec   Codec   // the codec of the packets being delivered
	decoder Decoder // the codec's, for the stream being received
	jitter  jitter
	pcm     []int16
	silence []int16

	in struct {
		packets, bytes, wrongPT, stranger, malformed, dtmf, ssrcChanges, silence, held, srtpFailed atomic.Uint64
	}
	rmu      sync.Mutex // guards the reorderer's counters for Stats
	pmu      sync.Mutex // guards the pacer (Stats reads its counters)
	emu      sync.Mutex // guards encoded, Enqueue's scratch, and misrated
	encoded  []byte
	misrated uint64 // bot audio dropped for arriving at a rate the call no longer has
	pacer    *pacer
	flushBuf []ItemPlayed

	out     func([]byte) error // where packets go once protected
	srtpOut []byte             // the pacer's encryption buffer (made by the first SRTP packet)
	srtpIn  []byte             // the receive path's decryption buffer (likewise)
}

// NewSession prepares media on conn. Its owner closes conn after the
// session stopped; on Linux, Start has already closed conn's descriptor
// then, and used a duplicate of it (see callSocket), so that Close only
// frees what the owner keeps with it (a port in Ports).
func NewSession(conn *net.UDPConn, cfg Config) *Session {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.InputSilenceAfter <= 0 {
		cfg.InputSilenceAfter = 500 * time.Millisecond
	}
	if cfg.OnAudio == nil {
		cfg.OnAudio = func([]int16, int) {}
	}
	if cfg.OnDTMF == nil {
		cfg.OnDTMF = func(rune, time.Duration) {}
	}
	cfg.Peer = cfg.Peer.withCodec()
	s := &Session{
		cfg:     cfg,
		conn:    conn,
		queue:   newPlayout(queued(cfg.Codec)),
		reorder: newReorderer(cfg.ReorderWindow),
	}
	s.padder.after = cfg.InputSilenceAfter
	s.peer.Store(&peerState{Peer: cfg.Peer, gen: 1, crypto: cryptoFor(cfg.Peer, nil)})
	s.receiveCodec(cfg.Codec)
	var seed [10]byte
	_, _ = rand.Read(seed[:])
	if conn != nil {
		s.sock = newCallSocket(conn)
	}
	s.out = cfg.Output
	if s.out == nil {
		s.out = s.sendToPeer
		if conn != nil {
			s.tx = newSocketWriter(s.sock)
		}
	}
	s.pacer = newPacer(cfg.Codec, s.queue, binary.BigEndian.Uint32(seed[0:]), binary.BigEndian.Uint16(seed[4:]),
		binary.BigEndian.Uint32(seed[6:]), s.protect)
	s.pacer.dtmfPT = cfg.DTMFPayloadType
	s.pacer.onSent = cfg.OnSent
	return s
}

// sendToPeer writes one packet where the peer receives: the latched source
// of its RTP when symmetric, else the signalled address. Before the peer is
// known (an outbound call not yet answered) nothing is sent.
func (s *Session) sendToPeer(pkt []byte) error {
	p := s.peer.Load()
	to := p.Remote
	if l := s.latched.Load(); p.Symmetric && l != nil && l.gen == p.gen {
		to = l.addr
	}
	if !to.IsValid() || to.Addr().IsUnspecified() || to.Port() == 0 {
		return nil
	}
	if s.tx == nil {
		return nil // no socket: a session driven by tests
	}
	return s.tx.write(pkt, to)
}

// SetPeer changes the far end (a re-INVITE with a new address or codec, the
// answer to an outbound call). The receive path locks on and latches anew.
func (s *Session) SetPeer(p Peer) {
	p = p.withCodec()
	s.pmu.Lock()
	defer s.pmu.Unlock()
	old := s.peer.Load()
	next := &peerState{Peer: p, gen: old.gen + 1, crypto: cryptoFor(p, old)}
	if next.crypto != nil && next.crypto.err != nil {
		s.cfg.Log.Warn().Err(next.crypto.err).Msg("rtp: SRTP keys unusable; media stops")
	}
	s.emu.Lock() // no audio is encoded in the old codec from here on
	s.peer.Store(next)
	if p.Codec != s.pacer.codec {
		s.queue.recode(queued(p.Codec))
		s.pacer.setCodec(p.Codec)
	} else if p.Remote != old.Remote && p.Codec.Stateful() {
		// Media moved to another endpoint (a PBX handing the call on):
		// its decoder starts afresh, and so must the stream it gets.
		s.pacer.setCodec(p.Codec)
	}
	s.emu.Unlock()
	s.pacer.dtmfPT = p.DTMFPayloadType
}

// CurrentPeer is the far end as last set.
func (s *Session) CurrentPeer() Peer { return s.peer.Load().Peer }

// Hold stops media both ways while the call is on hold: nothing is sent
// (the schedule and timestamps run on), the caller's audio is dropped (it
// is music on hold, not speech for the model), and queued bot audio waits,
// nothing lost. Hold(false) resumes where it stopped.
func (s *Session) Hold(held bool) {
	s.held.Store(held) // the receive path's copy, read per packet without a lock
	s.queue.setHeld(held)
	if !held {
		s.startTalkspurt()
	}
}

// LastReceived is when the last valid RTP packet came from the peer (zero
// before the first): a caller gone without a BYE sends none.
func (s *Session) LastReceived() time.Time {
	if ns := s.lastRx.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Held reports whether the call is on hold.
func (s *Session) Held() bool { return s.held.Load() }

// SendDTMF queues keys (0-9, *, #, A-D) to be sent as RFC 4733 events in
// the RTP stream, 100 ms each with 80 ms between them. Bot audio waits
// while they are sent. It fails without a negotiated telephone-event type.
func (s *Session) SendDTMF(keys string) error {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if s.pacer.dtmfPT == 0 {
		return ErrNoTelephoneEvent
	}
	return s.pacer.dtmf.add(keys)
}

// DTMFPending is how many queued keys have not been completely sent.
func (s *Session) DTMFPending() int {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return s.pacer.dtmf.pending()
}

// LocalAddr is the address RTP is received on.
func (s *Session) LocalAddr() netip.AddrPort {
	return s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Enqueue queues bot audio (PCM16 at rate) of one item for playout, in the
// call's codec's form (see queued). pcm is copied. Audio at a rate the
// call's codec no longer has (a re-INVITE changed it while the audio was
// being converted) is dropped: the caller converts what follows at the new
// rate (CurrentPeer), and the queue was dropped by the change anyway.
func (s *Session) Enqueue(ref ItemRef, pcm []int16, rate int) {
	s.emu.Lock()
	codec := s.peer.Load().Codec
	if rate != codec.SampleRate {
		s.misrated++
		s.emu.Unlock()
		return
	}
	s.encoded = queued(codec).Encode(s.encoded[:0], pcm)
	first := s.queue.enqueue(ref, s.encoded)
	s.emu.Unlock()
	if first {
		s.startTalkspurt()
	}
}

// EnqueuePayload is Enqueue for audio already in the call's codec (a
// passthrough model's G.711): nothing is decoded or encoded. The codec
// must be stateless: a stateful one's audio is encoded as it leaves.
func (s *Session) EnqueuePayload(ref ItemRef, payload []byte) {
	s.emu.Lock() // the codec cannot change between the check and the queueing (SetPeer)
	if s.peer.Load().Codec.Stateful() {
		s.misrated++
		s.emu.Unlock()
		return
	}
	first := s.queue.enqueue(ref, payload)
	s.emu.Unlock()
	if first {
		s.startTalkspurt()
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
	s.startTalkspurt()
}

// Paused reports whether playout is held.
func (s *Session) Paused() bool { return s.queue.isPaused() }

// QueuedMS is the bot audio waiting to be played.
func (s *Session) QueuedMS() int { return s.queue.queuedMS() }

// Played returns what is known of an item's playout.
func (s *Session) Played(itemID string) (ItemPlayed, bool) { return s.queue.account(itemID) }

// Stats returns the counters so far.
func (s *Session) Stats() Stats {
	st := Stats{
		PacketsIn: s.in.packets.Load(), BytesIn: s.in.bytes.Load(),
		WrongPayloadType: s.in.wrongPT.Load(), FromStranger: s.in.stranger.Load(),
		Malformed: s.in.malformed.Load(), DTMFPackets: s.in.dtmf.Load(),
		SSRCChanges: s.in.ssrcChanges.Load(), SilenceFramesIn: s.in.silence.Load(),
		HeldIn: s.in.held.Load(), SRTPFailed: s.in.srtpFailed.Load(),
	}
	s.rmu.Lock()
	st.Lost, st.Late, st.Duplicate = s.reorder.lost, s.reorder.late, s.reorder.duplicate
	s.rmu.Unlock()
	s.pmu.Lock()
	ps := s.pacer.stats
	s.pmu.Unlock()
	st.PacketsOut, st.AudioOut, st.SkippedOut, st.DTMFOut = ps.packets, ps.audioFrames, ps.skipped, ps.dtmfPackets
	st.MaxLateness, st.Lateness = ps.maxLateness, ps.lateness
	st.Jitter = time.Duration(s.jitterNS.Load())
	s.emu.Lock()
	st.MisratedOut = s.misrated
	s.emu.Unlock()
	if ps.packets > 0 {
		st.AvgLateness = ps.sumLateness / time.Duration(ps.packets)
	}
	return st
}

// Start hands the session to cfg.Engine's workers (or an engine of its
// own when there is none), which send and receive from now on. The stop
// func it returns ends that and returns once no worker touches the
// session any more; the caller then releases the socket. A session starts
// once.
func (s *Session) Start() (stop func(), err error) {
	if s.sock != nil {
		r, err := newSocketReader(s.sock)
		if err != nil {
			return nil, fmt.Errorf("rtp socket: %w", err)
		}
		s.rx = r
	}
	e, own := s.cfg.Engine, false
	if e == nil {
		e, own = NewEngine(s.cfg.Clock, 1), true
	}
	w := e.add(s)
	s.running.Store(true)
	return func() {
		s.running.Store(false)
		w.remove(s)
		if s.sock != nil {
			s.pmu.Lock() // a frame being sent (startTalkspurt) is done first
			s.sock.close()
			s.pmu.Unlock()
		}
		if own {
			e.Close()
		}
	}, nil
}

// Run is Start until ctx ends, then stop.
func (s *Session) Run(ctx context.Context) error {
	stop, err := s.Start()
	if err != nil {
		return err
	}
	<-ctx.Done()
	stop()
	return nil
}

// startTalkspurt sends queued audio at once, from the caller's goroutine,
// when the bot was quiet: the first frame need not wait for the worker.
// Before Start, nothing is sent (the call is not answered yet); the first
// pass sends it.
func (s *Session) startTalkspurt() {
	if !s.running.Load() {
		return
	}
	s.pmu.Lock()
	s.pacer.talkspurt(s.cfg.Clock.Now())
	s.pmu.Unlock()
}

// Tick runs the pacer as a media worker would at now: it sends the frames
// due. Tests and benchmarks drive it on a session that is not started.
func (s *Session) Tick(now time.Time) {
	s.pmu.Lock()
	s.pacer.tick(now)
	s.pmu.Unlock()
}
