package media

import "testing"

// More datagrams than one recvmmsg takes come out whole and in order, in
// one drain.
func TestSocketReaderDrainsPastOneBatch(t *testing.T) {
	conn, peer := loopbackPair(t)
	rx, err := newSocketReader(conn)
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
	rx, err := newSocketReader(conn)
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

// A closed socket is an error, not an endless empty drain.
func TestSocketReaderClosedSocket(t *testing.T) {
	conn, _ := loopbackPair(t)
	rx, err := newSocketReader(conn)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if _, _, _, ok, err := rx.next(); ok || err == nil {
		t.Fatalf("closed socket: ok %v err %v, want an error", ok, err)
	}
}

// A drain stopped right after a short batch's last datagram (as maxDrain
// stops one) does not make the next drain end before it has read.
func TestSocketReaderNewDrainAfterAStoppedOne(t *testing.T) {
	conn, peer := loopbackPair(t)
	rx, err := newSocketReader(conn)
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
