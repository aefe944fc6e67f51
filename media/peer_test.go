package media

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/rs/zerolog"
)

// session on a fake output with its received audio counted.
func peerSession(t *testing.T, p Peer) (*Session, *audioSink, *[]netip.AddrPort) {
	t.Helper()
	sink := &audioSink{}
	var dests []netip.AddrPort
	s := NewSession(nil, Config{Peer: p, ReorderWindow: 3, OnAudio: sink.write, Log: zerolog.Nop()})
	s.pacer.write = func(b []byte) error {
		pp := s.peer.Load()
		to := pp.Remote
		if l := s.latched.Load(); pp.Symmetric && l != nil && l.gen == pp.gen {
			to = l.addr
		}
		dests = append(dests, to)
		return nil
	}
	return s, sink, &dests
}

// A peer behind NAT: its SDP names a private address, its RTP comes from
// the address its INVITE came from. Symmetric RTP latches onto that source
// at the first packet, and only then: a stranger from the same public IP
// cannot take the stream over afterwards, and nobody else is heard at all.
func TestSymmetricRTPLatchesOnceToAnAllowedSource(t *testing.T) {
	private := netip.MustParseAddrPort("192.168.1.20:4000")
	public := netip.MustParseAddr("127.0.0.1")
	s, sink, dests := peerSession(t, Peer{Remote: private, Sources: []netip.Addr{public}, Symmetric: true, Codec: PCMU})
	var p rtp.Packet
	now := time.Unix(0, 0)
	s.Tick(now)
	if (*dests)[0] != private {
		t.Fatalf("before any RTP, sent to %v, want the signalled %v", (*dests)[0], private)
	}
	stranger := netip.MustParseAddrPort("127.0.0.9:5000")
	s.HandleDatagram(packet(1, 0, 7, 0x80, 160), stranger, &p)
	nat := netip.AddrPortFrom(public, 61000)
	s.HandleDatagram(packet(2, 0, 7, 0x81, 160), nat, &p)
	hijack := netip.AddrPortFrom(public, 61002)
	s.HandleDatagram(packet(3, 0, 8, 0x82, 160), hijack, &p)
	s.HandleDatagram(packet(3, 0, 7, 0x83, 160), nat, &p)
	s.Tick(now.Add(20 * time.Millisecond))
	if got := (*dests)[len(*dests)-1]; got != nat {
		t.Errorf("after the first packet, sent to %v, want the latched %v", got, nat)
	}
	if st := s.Stats(); st.FromStranger != 2 || st.PacketsIn != 2 {
		t.Errorf("stats %+v: want the stranger and the hijacker dropped, two packets in", st)
	}
	if sink.len() != 2*160 {
		t.Errorf("%d samples delivered, want two frames", sink.len())
	}

	// A re-INVITE moves the peer: the receive path locks and latches anew.
	moved := netip.MustParseAddrPort("127.0.0.1:7000")
	s.SetPeer(Peer{Remote: moved, Symmetric: true, Codec: PCMA})
	s.Tick(now.Add(40 * time.Millisecond))
	if got := (*dests)[len(*dests)-1]; got != moved {
		t.Errorf("after SetPeer, sent to %v, want %v", got, moved)
	}
	s.HandleDatagram(packet(900, 8, 9, 0xd5, 160), netip.MustParseAddrPort("127.0.0.1:7002"), &p)
	s.Tick(now.Add(60 * time.Millisecond))
	if got := (*dests)[len(*dests)-1]; got != netip.MustParseAddrPort("127.0.0.1:7002") {
		t.Errorf("no new latch after SetPeer: sent to %v", got)
	}
	if s.pacer.header.PayloadType != 8 {
		t.Errorf("codec not switched: payload type %d", s.pacer.header.PayloadType)
	}
}

// Without symmetric RTP the signalled address is where RTP goes, whatever
// port the peer sends from, and only the signalled IP is heard.
func TestNonSymmetricSendsWhereSignalled(t *testing.T) {
	remote := netip.MustParseAddrPort("127.0.0.1:4000")
	s, sink, dests := peerSession(t, Peer{Remote: remote, Codec: PCMU})
	var p rtp.Packet
	s.HandleDatagram(packet(1, 0, 7, 0x80, 160), netip.MustParseAddrPort("127.0.0.1:4444"), &p)
	s.Tick(time.Unix(0, 0))
	if (*dests)[0] != remote || sink.len() != 160 {
		t.Errorf("sent to %v (want %v), %d samples heard", (*dests)[0], remote, sink.len())
	}
	// An outbound call's session before the answer has no peer: nothing is heard or sent.
	s2 := NewSession(nil, Config{Log: zerolog.Nop()})
	s2.HandleDatagram(packet(1, 0, 7, 0x80, 160), remote, &p)
	if st := s2.Stats(); st.FromStranger != 1 {
		t.Errorf("a session without a peer accepted RTP: %+v", st)
	}
}

// On hold nothing is sent, the caller's audio (music on hold) is not given
// to the model and no silence is padded for it; queued bot audio waits and
// plays on resume, nothing lost; sequence numbers stay continuous.
func TestHoldMutesBothWaysAndKeepsTheQueue(t *testing.T) {
	r := newPacerRig()
	s, sink, _ := peerSession(t, Peer{Remote: netip.MustParseAddrPort("127.0.0.1:4000"), Codec: PCMU})
	s.pacer, s.queue = r.p, r.q
	now := r.clk.Now()
	s.Tick(now)
	s.Enqueue(ItemRef{ItemID: "a"}, tone160(3000), 8000)
	s.Hold(true)
	before := len(r.sent)
	r.run(200*time.Millisecond, time.Millisecond)
	if len(r.sent) != before {
		t.Fatalf("%d packets sent on hold", len(r.sent)-before)
	}
	var p rtp.Packet
	s.HandleDatagram(packet(1, 0, 7, 0x80, 160), netip.MustParseAddrPort("127.0.0.1:4000"), &p)
	if sink.len() != 0 || s.Stats().HeldIn != 1 {
		t.Errorf("audio on hold reached the model (%d samples)", sink.len())
	}
	s.padder.onPacket(now)
	s.padSilence(now.Add(time.Second))
	if sink.len() != 0 {
		t.Error("silence padded during hold")
	}
	s.Hold(false)
	r.p.talkspurt(r.clk.Now())
	r.run(40*time.Millisecond, time.Millisecond)
	audio := 0
	for _, sp := range r.sent[before:] {
		if sp.pkt.Payload[0] != 0xFF {
			audio++
			if !sp.pkt.Marker {
				t.Error("resumed audio without a talkspurt marker")
			}
		}
	}
	if audio != 1 {
		t.Errorf("%d audio frames after resume, want the one queued", audio)
	}
	for i := 1; i < len(r.sent); i++ {
		if r.sent[i].pkt.SequenceNumber != r.sent[i-1].pkt.SequenceNumber+1 {
			t.Fatalf("sequence gap at %d", i)
		}
	}
	// Timestamps tell the hold's length: 200 ms went by unsent.
	if d := r.sent[before].pkt.Timestamp - r.sent[before-1].pkt.Timestamp; d < 10*PCMU.FrameTimestamp() {
		t.Errorf("timestamp advanced %d over the hold", d)
	}
}

// Keys go out as RFC 4733 events: per key five updates of growing duration
// (the first with the marker), the end packet three times, all with the
// key's starting timestamp and new sequence numbers; bot audio waits and
// follows; a bad key or an unnegotiated type is refused.
func TestSendDTMF(t *testing.T) {
	r := newPacerRig()
	r.p.dtmfPT = 101
	if err := r.p.dtmf.add("1#"); err != nil {
		t.Fatal(err)
	}
	r.q.enqueue(ItemRef{ItemID: "a"}, PCMU.Encode(nil, tone160(3000)))
	r.p.tick(r.clk.Now())
	r.run(time.Second, time.Millisecond)
	var events []rtp.Packet
	firstAudio := -1
	for i, sp := range r.sent {
		if sp.pkt.PayloadType == 101 {
			events = append(events, sp.pkt)
		} else if sp.pkt.Payload[0] != 0xFF && firstAudio < 0 {
			firstAudio = i
		}
	}
	if len(events) != 2*(dtmfToneFrames+dtmfEndFrames) {
		t.Fatalf("%d event packets, want %d", len(events), 2*(dtmfToneFrames+dtmfEndFrames))
	}
	for k, key := range []byte{1, 11} {
		ev := events[k*8 : k*8+8]
		for i, p := range ev {
			end := p.Payload[1]&0x80 != 0
			dur := int(p.Payload[2])<<8 | int(p.Payload[3])
			if p.Payload[0] != key || p.Timestamp != ev[0].Timestamp || p.Marker != (i == 0) {
				t.Errorf("key %d packet %d: %+v %x", key, i, p.Header, p.Payload)
			}
			if i < dtmfToneFrames && (end || dur != (i+1)*PCMU.FrameSamples) {
				t.Errorf("key %d update %d: end %v duration %d", key, i, end, dur)
			}
			if i >= dtmfToneFrames && (!end || dur != dtmfToneFrames*PCMU.FrameSamples) {
				t.Errorf("key %d end packet %d: end %v duration %d", key, i, end, dur)
			}
		}
	}
	if d := events[8].Timestamp - events[0].Timestamp; d != (dtmfToneFrames+dtmfEndFrames+dtmfGapFrames)*PCMU.FrameTimestamp() {
		t.Errorf("second key starts %d samples after the first", d)
	}
	if firstAudio < 0 || r.sent[firstAudio].pkt.SequenceNumber-events[15].SequenceNumber <= dtmfGapFrames-1 {
		t.Errorf("bot audio did not wait for the keys (first audio at packet %d)", firstAudio)
	}
	for i := 1; i < len(r.sent); i++ {
		if r.sent[i].pkt.SequenceNumber != r.sent[i-1].pkt.SequenceNumber+1 {
			t.Fatalf("sequence gap at %d", i)
		}
	}
	if err := r.p.dtmf.add("12x"); err == nil || r.p.dtmf.pending() != 0 {
		t.Errorf("bad key accepted: %v", err)
	}
	s := NewSession(nil, Config{Peer: Peer{Codec: PCMU}, Log: zerolog.Nop()})
	if err := s.SendDTMF("1"); err != ErrNoTelephoneEvent {
		t.Errorf("without telephone-event: %v", err)
	}
	long := make([]byte, maxDTMFQueue+1)
	for i := range long {
		long[i] = '5'
	}
	if err := r.p.dtmf.add(string(long)); err == nil {
		t.Error("an unbounded key string was queued")
	}
}

// Audio queued in one codec leaves in the new one after a re-INVITE
// changed it mid-answer: the queue is recoded, not replayed wrongly.
func TestQueuedAudioFollowsACodecChange(t *testing.T) {
	var sent []rtp.Packet
	s := NewSession(nil, Config{Peer: Peer{Codec: PCMU}, Log: zerolog.Nop(), Output: func(b []byte) error {
		var p rtp.Packet
		if err := p.Unmarshal(append([]byte(nil), b...)); err != nil {
			return err
		}
		sent = append(sent, p)
		return nil
	}})
	tone := tone160(3000)
	s.Enqueue(ItemRef{ItemID: "a"}, tone, 8000)
	s.SetPeer(Peer{Codec: PCMA})
	s.Tick(time.Unix(1000, 0))
	if len(sent) != 1 || sent[0].PayloadType != PCMA.PayloadType {
		t.Fatalf("sent %d packets, first type %v; want one PCMA packet", len(sent), sent)
	}
	got := PCMA.Decode(nil, sent[0].Payload)
	for i := range tone {
		if d := int(got[i]) - int(tone[i]); d > 300 || d < -300 {
			t.Fatalf("sample %d: %d, want about %d (the tone, through two codecs)", i, got[i], tone[i])
		}
	}
}
