package media

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// More datagrams than one recvmmsg takes come out whole and in order, in
// one drain.
func TestSocketReaderDrainsPastOneBatch(t *testing.T) {
	conn, peer := loopbackPair(t)
	rx, err := newSocketReader(newCallSocket(conn))
	if err != nil {
		t.Fatal(err)
	}
	const count = 3*readBatch + 1
	for i := 0; i < count; i++ {
		b := make([]byte, 100+i)
		b[0] = byte(i)
		if _, err := peer.WriteTo(b, conn.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < count; i++ {
		data, _, _, ok, err := rx.next()
		if !ok || err != nil {
			t.Fatalf("datagram %d: ok %v err %v", i, ok, err)
		}
		if len(data) != 100+i || data[0] != byte(i) {
			t.Fatalf("datagram %d: %d bytes starting %d", i, len(data), data[0])
		}
	}
	if _, _, _, ok, _ := rx.next(); ok {
		t.Fatal("a datagram from nowhere")
	}
}

// A recvmmsg that returns fewer datagrams than it asked for has emptied the
// socket: the drain ends there without asking the kernel again, and the
// next drain asks afresh. This is what makes the usual frame one system
// call.
func TestSocketReaderShortBatchEndsTheDrain(t *testing.T) {
	conn, peer := loopbackPair(t)
	rx, err := newSocketReader(newCallSocket(conn))
	if err != nil {
		t.Fatal(err)
	}
	send := func(b byte) {
		t.Helper()
		if _, err := peer.WriteTo([]byte{b}, conn.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	send(1)
	if data, _, _, ok, err := rx.next(); !ok || err != nil || data[0] != 1 {
		t.Fatalf("first datagram: %v %v %v", data, ok, err)
	}
	send(2) // arrives after the socket was found empty: the next drain's
	if _, _, _, ok, err := rx.next(); ok || err != nil {
		t.Fatalf("the drain went on past a short batch: ok %v err %v", ok, err)
	}
	if data, _, _, ok, err := rx.next(); !ok || err != nil || data[0] != 2 {
		t.Fatalf("the next drain: %v %v %v, want the second datagram", data, ok, err)
	}
	if _, _, _, ok, err := rx.next(); ok || err != nil {
		t.Fatalf("after the second: ok %v err %v, want the drain's end", ok, err)
	}
	if _, _, _, ok, err := rx.next(); ok || err != nil {
		t.Fatalf("an empty socket: ok %v err %v, want neither", ok, err)
	}
}

// A closed socket is an error, not an endless empty drain, for the reader
// and the writer alike.
func TestSocketClosed(t *testing.T) {
	conn, peer := loopbackPair(t)
	sock := newCallSocket(conn)
	rx, err := newSocketReader(sock)
	if err != nil {
		t.Fatal(err)
	}
	tx := newSocketWriter(sock)
	sock.close()
	if _, _, _, ok, err := rx.next(); ok || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("closed socket: ok %v err %v, want net.ErrClosed", ok, err)
	}
	if err := tx.write([]byte{1}, peer.LocalAddr().(*net.UDPAddr).AddrPort()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on a closed socket: %v, want net.ErrClosed", err)
	}
}

// Once detached, no descriptor of the socket is registered with the
// runtime's poller (whose registrations /proc lists), conn's own is closed,
// and the socket still carries datagrams both ways through the duplicate.
// Detaching through conn.File() would fail here: that duplicate is a
// non-blocking os.File, which registers itself.
func TestSocketDetachLeavesThePoller(t *testing.T) {
	conn, peer := loopbackPair(t)
	sock := newCallSocket(conn)
	var original int
	if err := sock.raw.Control(func(fd uintptr) { original = int(fd) }); err != nil {
		t.Fatal(err)
	}
	if !pollerWatches(t, original) {
		t.Fatalf("conn's descriptor %d is not in the poller before detach: the check below proves nothing", original)
	}
	rx, err := newSocketReader(sock) // detaches
	if err != nil {
		t.Fatal(err)
	}
	tx := newSocketWriter(sock)
	if !tx.usable() {
		t.Fatal("the raw path is not used")
	}
	// The original descriptor's number may be reused by a later open, so
	// the dup is what must be absent, and conn must be closed.
	if pollerWatches(t, sock.fd) {
		t.Errorf("the duplicate %d is registered with the poller", sock.fd)
	}
	if _, err := conn.WriteTo([]byte{0}, peer.LocalAddr()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("conn after detach: %v, want net.ErrClosed", err)
	}
	if _, err := peer.WriteTo([]byte{7}, conn.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		data, from, _, ok, err := rx.next()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if data[0] != 7 || from != peer.LocalAddr().(*net.UDPAddr).AddrPort() {
				t.Fatalf("read %v from %v", data, from)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the datagram never reached the duplicate")
		}
		time.Sleep(time.Millisecond)
	}
	if err := tx.write([]byte{8}, peer.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Fatal(err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 8)
	if n, from, err := peer.ReadFromUDPAddrPort(buf); err != nil || n != 1 || buf[0] != 8 || from != conn.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Fatalf("peer read %v from %v: %v", buf[:n], from, err)
	}
	// An address the socket's family cannot reach is an error that says so.
	if err := tx.write([]byte{9}, netip.MustParseAddrPort("[::1]:9")); !errors.Is(err, syscall.EAFNOSUPPORT) {
		t.Errorf("IPv6 peer from an IPv4 socket: %v, want EAFNOSUPPORT", err)
	}
}

// pollerWatches reports whether fd is registered with any epoll instance
// of this process (the runtime has one), from /proc/self/fdinfo.
func pollerWatches(t *testing.T, fd int) bool {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	found := false
	for _, e := range entries {
		link, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || link != "anon_inode:[eventpoll]" {
			continue
		}
		found = true
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(info), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "tfd:" && f[1] == strconv.Itoa(fd) {
				return true
			}
		}
	}
	if !found {
		t.Skip("no epoll instance in /proc/self/fd")
	}
	return false
}

// A drain stopped right after a short batch's last datagram (as maxDrain
// stops one) does not make the next drain end before it has read.
func TestSocketReaderNewDrainAfterAStoppedOne(t *testing.T) {
	conn, peer := loopbackPair(t)
	rx, err := newSocketReader(newCallSocket(conn))
	if err != nil {
		t.Fatal(err)
	}
	for b := byte(1); b <= 2; b++ {
		if _, err := peer.WriteTo([]byte{b}, conn.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		rx.newDrain()
		if data, _, _, ok, err := rx.next(); !ok || err != nil || data[0] != b {
			t.Fatalf("drain %d: %v %v %v, want datagram %d", b, data, ok, err, b)
		}
		// the caller stops here, as at maxDrain, without asking past it
	}
}
