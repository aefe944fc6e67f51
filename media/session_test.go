package media

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type audioSink struct {
	mu       sync.Mutex
	samples  []int16
	calls    int
	lastRate int
}

func (a *audioSink) write(pcm []int16, rate int) {
	a.mu.Lock()
	a.samples = append(a.samples, pcm...)
	a.calls++
	a.lastRate = rate
	a.mu.Unlock()
}

func (a *audioSink) all() []int16 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.samples)
}

func (a *audioSink) rate() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastRate
}

func (a *audioSink) reset() {
	a.mu.Lock()
	a.samples, a.calls = nil, 0
	a.mu.Unlock()
}

func (a *audioSink) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.samples)
}

func packet(seq uint16, pt uint8, ssrc uint32, fill byte, n int) []byte {
	payload := make([]byte, n)
	for i := range payload {
		payload[i] = fill
	}
	b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: ssrc}, Payload: payload}).Marshal()
	return b
}

// A real session on loopback: packets in any order come out in order, other
// payload types and strangers are dropped, a gap in the input is padded with
// silence, and Run returns promptly when its context ends.
func TestSessionOnLoopback(t *testing.T) {
	ports, err := NewPorts(netip.MustParseAddr("127.0.0.1"), 32000, 32100)
	if err != nil {
		t.Fatal(err)
	}
	peer, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer peer.Close()
	stranger, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer stranger.Close()

	conn, err := ports.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	sink := &audioSink{}
	s := NewSession(conn, Config{
		Peer:          Peer{Remote: peer.LocalAddr().(*net.UDPAddr).AddrPort(), Codec: PCMU, DTMFPayloadType: 101},
		ReorderWindow: 3, InputSilenceAfter: 200 * time.Millisecond, OnAudio: sink.write,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()

	to := net.UDPAddrFromAddrPort(s.LocalAddr())
	for _, seq := range []uint16{1, 3, 2, 4} {
		peer.WriteToUDP(packet(seq, 0, 7, byte(0x80+seq), 160), to)
	}
	peer.WriteToUDP(packet(5, 101, 7, 0, 4), to)        // DTMF: counted, not audio
	peer.WriteToUDP(packet(6, 18, 7, 0, 20), to)        // G.729: wrong type
	peer.WriteToUDP([]byte{}, to)                       // empty datagram
	peer.WriteToUDP([]byte{0x80}, to)                   // truncated header
	stranger.WriteToUDP(packet(7, 0, 9, 0x10, 160), to) // not the peer's port once locked

	deadline := time.Now().Add(3 * time.Second)
	for sink.len() < 4*160+5*160 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	sink.mu.Lock()
	got := append([]int16(nil), sink.samples...)
	sink.mu.Unlock()
	if len(got) < 4*160 {
		t.Fatalf("only %d samples delivered", len(got))
	}
	for i, seq := range []uint16{1, 2, 3, 4} {
		want := PCMU.Decode(nil, []byte{byte(0x80 + seq)})[0]
		if got[i*160] != want {
			t.Errorf("frame %d is not packet %d", i, seq)
		}
	}
	for _, v := range got[4*160 : 9*160] {
		if v != 0 {
			t.Fatal("the gap after the last packet was not padded with silence")
		}
	}
	st := s.Stats()
	if st.PacketsIn != 4 || st.DTMFPackets != 1 || st.WrongPayloadType != 1 || st.Malformed != 2 || st.FromStranger != 1 || st.SilenceFramesIn < 5 {
		t.Errorf("stats %+v", st)
	}
	// The pacer has been sending silence to the peer all along.
	_ = peer.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 1500)
	n, _, err := peer.ReadFromUDP(buf)
	var p rtp.Packet
	if err != nil || p.Unmarshal(buf[:n]) != nil || p.PayloadType != 0 || len(p.Payload) != 160 {
		t.Errorf("no RTP from the session: %v", err)
	}

	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	ports.Release(conn)
	if ports.InUse() != 0 {
		t.Error("port not released")
	}
	// Nothing still holds the port: the socket's duplicate (see
	// callSocket) ended with the session.
	again, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(s.LocalAddr()))
	if err != nil {
		t.Fatalf("the call's port is still bound after release: %v", err)
	}
	again.Close()
}

func TestPortsRotateAndRunOut(t *testing.T) {
	ports, _ := NewPorts(netip.MustParseAddr("127.0.0.1"), 32201, 32206) // even ports: 32202, 32204, 32206
	var conns []*net.UDPConn
	for i := 0; i < 3; i++ {
		c, err := ports.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		if p := c.LocalAddr().(*net.UDPAddr).Port; p%2 != 0 {
			t.Errorf("odd RTP port %d", p)
		}
		conns = append(conns, c)
	}
	if _, err := ports.Allocate(); err != ErrNoPorts {
		t.Errorf("want ErrNoPorts, got %v", err)
	}
	for _, c := range conns {
		ports.Release(c)
	}
}

func FuzzHandleDatagram(f *testing.F) {
	f.Add(packet(1, 0, 1, 0xff, 160))
	f.Add(packet(2, 101, 1, 0, 4))
	f.Add([]byte{0x90, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0}) // header extension
	f.Add([]byte{0xa0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0, 3})                   // padding
	f.Add([]byte{0x8f, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1})                                     // 15 CSRCs promised
	f.Add(packet(1, 9, 1, 0x7f, 161))                                                        // G.722, an odd size
	peer := netip.MustParseAddrPort("127.0.0.1:4000")
	f.Fuzz(func(t *testing.T, data []byte) {
		// The same datagram to a G.711 call and to a G.722 one (two
		// samples a byte, a decoder with state).
		for _, codec := range []Codec{PCMU, G722} {
			s := NewSession(nil, Config{Peer: Peer{Remote: peer, Codec: codec, DTMFPayloadType: 101}, ReorderWindow: 3, OnAudio: func(pcm []int16, rate int) {
				if len(pcm) > MaxPayload*codec.FrameSamples/codec.FrameBytes || rate != codec.SampleRate {
					t.Fatalf("%s: delivered %d samples at %d Hz from one datagram", codec.Name, len(pcm), rate)
				}
			}})
			var p rtp.Packet
			s.HandleDatagram(data, peer, &p)
			s.HandleDatagram(data, peer, &p) // and again, as a duplicate
		}
	})
}
