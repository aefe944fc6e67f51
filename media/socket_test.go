package media

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// The reader takes what is waiting without blocking: each datagram with
// its source and an arrival time from when it arrived, not when it was read.
func TestSocketReaderTakesWaitingDatagrams(t *testing.T) {
	for _, network := range []struct{ name, ip string }{{"udp4", "127.0.0.1"}, {"udp6", "::1"}} {
		t.Run(network.name, func(t *testing.T) {
			ip := netip.MustParseAddr(network.ip)
			conn, err := net.ListenUDP(network.name, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
			if err != nil {
				t.Skipf("no %s loopback: %v", network.name, err)
			}
			defer conn.Close()
			peer, err := net.ListenUDP(network.name, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			rx, err := newSocketReader(newCallSocket(conn))
			if err != nil {
				t.Fatal(err)
			}
			if _, _, _, ok, err := rx.next(); ok || err != nil {
				t.Fatalf("empty socket: ok %v err %v, want neither", ok, err)
			}
			// The kernel turns receive timestamps on asynchronously the first
			// time a socket asks; until then it stamps datagrams when read.
			time.Sleep(20 * time.Millisecond)
			sentAt := time.Now()
			for i := byte(1); i <= 3; i++ {
				if _, err := peer.WriteToUDPAddrPort([]byte{i, i, i}, conn.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(50 * time.Millisecond) // they wait on the socket meanwhile
			for i := byte(1); i <= 3; i++ {
				data, from, arrival, ok, err := rx.next()
				if !ok || err != nil {
					t.Fatalf("datagram %d: ok %v err %v", i, ok, err)
				}
				if len(data) != 3 || data[0] != i {
					t.Errorf("datagram %d: %v", i, data)
				}
				if from != peer.LocalAddr().(*net.UDPAddr).AddrPort() {
					t.Errorf("datagram %d from %v, want %v", i, from, peer.LocalAddr())
				}
				if arrival.Before(sentAt.Add(-time.Millisecond)) || arrival.After(sentAt.Add(40*time.Millisecond)) {
					t.Errorf("datagram %d arrived %v after sending: the read time, not the kernel's arrival time", i, arrival.Sub(sentAt))
				}
			}
			if _, _, _, ok, _ := rx.next(); ok {
				t.Error("a fourth datagram from nowhere")
			}
			to := conn.LocalAddr().(*net.UDPAddr).AddrPort()
			allocs := testing.AllocsPerRun(100, func() {
				_, _ = peer.WriteToUDPAddrPort([]byte{9}, to)
				for {
					if _, _, _, ok, _ := rx.next(); !ok {
						break
					}
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per read, want 0", allocs)
			}
		})
	}
}

// Pacers started at different moments share deadlines: their schedules are
// anchored on the pacing grid.
func TestPacersShareTheGrid(t *testing.T) {
	base := time.Unix(1000, 0)
	var deadlines []time.Time
	for _, offset := range []time.Duration{0, pacingGrid / 3, pacingGrid - 1} {
		p := newPacer(PCMU, newPlayout(PCMU), 1, 1, 1, func([]byte) error { return nil })
		p.tick(base.Add(offset))
		deadlines = append(deadlines, p.next())
	}
	for _, d := range deadlines {
		if !d.Equal(base.Add(frameDuration)) {
			t.Errorf("deadlines %v, want all at %v", deadlines, base.Add(frameDuration))
			break
		}
	}
}

// The writer reaches IPv4 and IPv6 peers, from sockets of either family
// (a dual-stack socket sends to IPv4 as mapped addresses), allocation-free,
// before the session starts and after (once the socket is detached).
func TestSocketWriterReachesEitherFamily(t *testing.T) {
	for _, c := range []struct {
		name, local, peer string
		detached          bool
	}{
		{"v4", "127.0.0.1", "127.0.0.1", false},
		{"v6", "::1", "::1", false},
		{"dual-stack to v4", "::", "127.0.0.1", false},
		{"v4 detached", "127.0.0.1", "127.0.0.1", true},
		{"v6 detached", "::1", "::1", true},
		{"dual-stack to v4 detached", "::", "127.0.0.1", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(c.local), 0)))
			if err != nil {
				t.Skipf("no socket on %s: %v", c.local, err)
			}
			defer conn.Close()
			peer, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(c.peer), 0)))
			if err != nil {
				t.Skipf("no socket on %s: %v", c.peer, err)
			}
			defer peer.Close()
			sock := newCallSocket(conn)
			w := newSocketWriter(sock)
			if c.detached {
				if err := sock.detach(); err != nil {
					t.Fatal(err)
				}
				defer sock.close()
			}
			to := peer.LocalAddr().(*net.UDPAddr).AddrPort()
			if err := w.write([]byte{1, 2, 3}, to); err != nil {
				t.Fatal(err)
			}
			_ = peer.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 16)
			n, _, err := peer.ReadFromUDPAddrPort(buf)
			if err != nil || n != 3 || buf[2] != 3 {
				t.Fatalf("peer read %v %v", buf[:n], err)
			}
			pkt := []byte{4}
			if allocs := testing.AllocsPerRun(50, func() { _ = w.write(pkt, to) }); allocs != 0 {
				t.Errorf("%v allocations per packet", allocs)
			}
		})
	}
}

// BenchmarkSocketDrain is one frame's receive: a datagram arrives (the
// sender's cost is in the figure too) and the socket is drained.
func BenchmarkSocketDrain(b *testing.B) {
	conn, peer := loopbackPair(b)
	rx, err := newSocketReader(newCallSocket(conn))
	if err != nil {
		b.Fatal(err)
	}
	to := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	pkt := make([]byte, 172)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = peer.WriteToUDPAddrPort(pkt, to)
		for {
			if _, _, _, ok, _ := rx.next(); !ok {
				break
			}
		}
	}
}

// loopbackPair is two UDP sockets on 127.0.0.1, closed when the test ends.
func loopbackPair(t testing.TB) (conn, peer *net.UDPConn) {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	peer, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	return conn, peer
}
