package realtime

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// rawPair is a loopback TCP connection: ours through newRawConn, and the
// far end as it is.
func rawPair(t *testing.T) (ours net.Conn, theirs *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			c = nil
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	far := <-accepted
	if far == nil {
		t.Fatal("accept failed")
	}
	ours = newRawConn(c.(*net.TCPConn))
	if _, ok := ours.(*rawConn); !ok {
		t.Fatalf("newRawConn gave %T, not the raw connection", ours)
	}
	t.Cleanup(func() { ours.Close(); far.Close() })
	return ours, far.(*net.TCPConn)
}

func TestRawConnCarriesBytesBothWays(t *testing.T) {
	ours, theirs := rawPair(t)
	want := make([]byte, 300<<10) // more than a socket buffer: short writes and many reads
	for i := range want {
		want[i] = byte(i * 7)
	}
	done := make(chan error, 1)
	go func() {
		_, err := theirs.Write(want)
		if err == nil {
			err = theirs.CloseWrite()
		}
		done <- err
	}()
	var got bytes.Buffer
	small := make([]byte, 1000)
	for {
		n, err := ours.Read(small)
		got.Write(small[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("read %d bytes, not the %d written, or not the same", got.Len(), len(want))
	}

	go func() {
		b, err := io.ReadAll(theirs)
		if err == nil && !bytes.Equal(b, want) {
			err = errors.New("the far end got other bytes")
		}
		done <- err
	}()
	if n, err := ours.Write(want); err != nil || n != len(want) {
		t.Fatalf("write: %d, %v", n, err)
	}
	_ = ours.(*rawConn).CloseWrite()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestRawConnReadDeadlineAndClose(t *testing.T) {
	ours, theirs := rawPair(t)
	_ = ours.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := ours.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	_ = ours.SetReadDeadline(time.Time{})
	if _, err := theirs.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 10)
	if n, err := ours.Read(b); err != nil || string(b[:n]) != "after" {
		t.Fatalf("read after the deadline was lifted: %q, %v", b[:n], err)
	}

	// A reader waiting in the netpoller is woken by Close, as the
	// WebSocket's reader is when a call ends.
	errc := make(chan error, 1)
	go func() {
		_, err := ours.Read(b)
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond) // let it reach the wait; the test holds either way
	ours.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a closed connection: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the reader")
	}
}

func TestRawConnReportsReset(t *testing.T) {
	ours, theirs := rawPair(t)
	_ = theirs.SetLinger(0) // close sends a reset
	if _, err := ours.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	theirs.Close()
	_ = ours.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := ours.Read(make([]byte, 10))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after the far end reset: %v, want connection reset", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("reset reported as %#v, want a net.OpError from read", err)
	}
}

// The write deadline the connection skips re-setting is always the one the
// socket has, however it was set.
func TestRawConnWriteDeadline(t *testing.T) {
	ours, _ := rawPair(t)
	timedOut := func(err error) bool {
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout()
	}
	past := time.Now().Add(-time.Second)
	steps := []struct {
		name    string
		set     func() error
		timeout bool
	}{
		{"no deadline", func() error { return ours.SetWriteDeadline(time.Time{}) }, false},
		{"a past deadline", func() error { return ours.SetWriteDeadline(past) }, true},
		{"the same past deadline again", func() error { return ours.SetWriteDeadline(past) }, true},
		{"lifted", func() error { return ours.SetWriteDeadline(time.Time{}) }, false},
		{"a past deadline for both ways", func() error { return ours.SetDeadline(past) }, true},
		{"the write deadline lifted after SetDeadline", func() error { return ours.SetWriteDeadline(time.Time{}) }, false},
		{"no deadline again", func() error { return ours.SetWriteDeadline(time.Time{}) }, false},
	}
	for _, step := range steps {
		if err := step.set(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		_, err := ours.Write([]byte("x"))
		if step.timeout != timedOut(err) {
			t.Fatalf("%s: write gave %v, want timeout %v", step.name, err, step.timeout)
		}
	}
}
