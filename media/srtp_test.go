package media

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/rs/zerolog"
)

func keys(a, b byte, suite string) (*SRTP, *SRTP) {
	ka, kb := bytes.Repeat([]byte{a}, 30), bytes.Repeat([]byte{b}, 30)
	return &SRTP{Suite: suite, Local: ka, Remote: kb}, &SRTP{Suite: suite, Local: kb, Remote: ka}
}

// Two sessions keyed as an SDES offer and answer make them: what one
// sends encrypted, the other decrypts and hears; forged, replayed and
// plain packets are dropped and counted.
func TestSRTPBetweenTwoSessions(t *testing.T) {
	for _, suite := range []string{"AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"} {
		t.Run(suite, func(t *testing.T) {
			ours, theirs := keys(1, 2, suite)
			addrA, addrB := netip.MustParseAddrPort("127.0.0.1:4000"), netip.MustParseAddrPort("127.0.0.1:4002")
			var wire [][]byte
			a := NewSession(nil, Config{Peer: Peer{Remote: addrB, Codec: PCMU, SRTP: ours}, Log: zerolog.Nop(),
				Output: func(pkt []byte) error { wire = append(wire, append([]byte(nil), pkt...)); return nil }})
			sink := &audioSink{}
			b := NewSession(nil, Config{Peer: Peer{Remote: addrA, Codec: PCMU, SRTP: theirs}, ReorderWindow: 0, OnAudio: sink.write, Log: zerolog.Nop()})

			tone := make([]int16, 160*5)
			for i := range tone {
				tone[i] = int16(4000 * (i%16 - 8))
			}
			a.Enqueue(ItemRef{ResponseID: "r", ItemID: "i"}, tone, 8000)
			now := time.Unix(0, 0)
			for i := 0; i < 5; i++ {
				a.Tick(now.Add(time.Duration(i) * 20 * time.Millisecond))
			}
			if len(wire) < 5 {
				t.Fatalf("%d packets sent", len(wire))
			}
			var plain rtp.Packet
			if err := plain.Unmarshal(wire[0]); err != nil {
				t.Fatal(err)
			}
			if want := 160 + map[string]int{"AES_CM_128_HMAC_SHA1_80": 10, "AES_CM_128_HMAC_SHA1_32": 4}[suite]; len(plain.Payload) != want {
				t.Fatalf("payload %d bytes on the wire, want %d (160 + auth tag)", len(plain.Payload), want)
			}
			if bytes.Equal(plain.Payload[:160], PCMU.Encode(nil, tone[:160])) {
				t.Fatal("the audio went out in clear")
			}
			var scratch rtp.Packet
			for _, pkt := range wire {
				b.HandleDatagram(pkt, addrA, &scratch)
			}
			if got := sink.len(); got != len(wire)*160 {
				t.Fatalf("%d samples heard of %d sent", got, len(wire)*160)
			}
			heard := sink.samplesCopy()
			if want := PCMU.Decode(nil, PCMU.Encode(nil, tone[:160])); !equalInt16(heard[:160], want) {
				t.Error("the decrypted audio is not what was sent")
			}
			forged := append([]byte(nil), wire[1]...)
			forged[20] ^= 0xff
			b.HandleDatagram(forged, addrA, &scratch)                       // tampered
			b.HandleDatagram(wire[2], addrA, &scratch)                      // replayed
			b.HandleDatagram(packet(900, 0, 7, 0x7f, 160), addrA, &scratch) // plain RTP into an SRTP call
			if st := b.Stats(); st.SRTPFailed != 3 {
				t.Errorf("SRTPFailed %d, want 3 (forged, replayed, plain)", st.SRTPFailed)
			}
			if got := sink.len(); got != len(wire)*160 {
				t.Errorf("dropped packets were heard: %d samples", got)
			}
		})
	}
}

// A re-INVITE that keeps the keys keeps the contexts (their rollover
// counters run on); new keys make new ones.
func TestSRTPContextsSurviveARenegotiation(t *testing.T) {
	ours, _ := keys(1, 2, "AES_CM_128_HMAC_SHA1_80")
	s := NewSession(nil, Config{Peer: Peer{Remote: netip.MustParseAddrPort("127.0.0.1:4000"), Codec: PCMU, SRTP: ours}, Log: zerolog.Nop()})
	first := s.peer.Load().crypto
	same := *ours
	s.SetPeer(Peer{Remote: netip.MustParseAddrPort("127.0.0.1:4000"), Codec: PCMU, SRTP: &same})
	if s.peer.Load().crypto != first {
		t.Error("the same keys made new contexts")
	}
	rekeyed, _ := keys(3, 4, "AES_CM_128_HMAC_SHA1_80")
	s.SetPeer(Peer{Remote: netip.MustParseAddrPort("127.0.0.1:4000"), Codec: PCMU, SRTP: rekeyed})
	if c := s.peer.Load().crypto; c == first || c.err != nil {
		t.Error("new keys kept the old contexts")
	}
	s.SetPeer(Peer{Remote: netip.MustParseAddrPort("127.0.0.1:4000"), Codec: PCMU, SRTP: &SRTP{Suite: "NULL", Local: []byte{1}}})
	if c := s.peer.Load().crypto; c.err == nil {
		t.Error("unusable keys were taken")
	}
	if err := s.protect(packet(1, 0, 1, 0, 160)); err == nil {
		t.Error("sent with unusable keys")
	}
}

func equalInt16(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// BenchmarkSRTPFrame is one 20 ms frame encrypted and sent, and one
// received and decrypted: the hot path of an SRTP call.
func BenchmarkSRTPFrame(b *testing.B) {
	ours, theirs := keys(1, 2, "AES_CM_128_HMAC_SHA1_80")
	addrA := netip.MustParseAddrPort("127.0.0.1:4000")
	var last []byte
	a := NewSession(nil, Config{Peer: Peer{Remote: addrA, Codec: PCMU, SRTP: ours}, Log: zerolog.Nop(),
		Output: func(pkt []byte) error { last = append(last[:0], pkt...); return nil }})
	rx := NewSession(nil, Config{Peer: Peer{Remote: addrA, Codec: PCMU, SRTP: theirs}, Log: zerolog.Nop()})
	frame := make([]int16, 160)
	now := time.Unix(0, 0)
	var scratch rtp.Packet
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.Enqueue(ItemRef{ResponseID: "r", ItemID: "i"}, frame, 8000)
		now = now.Add(20 * time.Millisecond)
		a.Tick(now)
		rx.HandleDatagram(last, addrA, &scratch)
	}
}

func (a *audioSink) samplesCopy() []int16 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]int16(nil), a.samples...)
}

// FuzzSRTPDatagram feeds anything to an SRTP call's receive path: it must
// be authenticated or dropped, never delivered unchecked, never a panic.
func FuzzSRTPDatagram(f *testing.F) {
	ours, theirs := keys(1, 2, "AES_CM_128_HMAC_SHA1_80")
	peer := netip.MustParseAddrPort("127.0.0.1:4000")
	var wire [][]byte
	tx := NewSession(nil, Config{Peer: Peer{Remote: peer, Codec: PCMU, SRTP: ours}, Log: zerolog.Nop(),
		Output: func(pkt []byte) error { wire = append(wire, append([]byte(nil), pkt...)); return nil }})
	tx.Enqueue(ItemRef{ResponseID: "r", ItemID: "i"}, make([]int16, 480), 8000)
	for i := 0; i < 3; i++ {
		tx.Tick(time.Unix(0, 0).Add(time.Duration(i) * 20 * time.Millisecond))
	}
	for _, w := range wire {
		f.Add(w)
	}
	f.Add(packet(1, 0, 1, 0xff, 160))
	f.Fuzz(func(t *testing.T, data []byte) {
		delivered := 0
		rx := NewSession(nil, Config{Peer: Peer{Remote: peer, Codec: PCMU, SRTP: theirs}, OnAudio: func(pcm []int16, _ int) { delivered += len(pcm) }, Log: zerolog.Nop()})
		var p rtp.Packet
		rx.HandleDatagram(data, peer, &p)
		rx.HandleDatagram(data, peer, &p)
		if st := rx.Stats(); st.PacketsIn > 1 {
			t.Fatalf("a packet was taken twice (replay): %+v", st)
		}
		if delivered > 0 && rx.Stats().SRTPFailed == 2 {
			t.Fatal("audio delivered from packets that failed authentication")
		}
	})
}
