//go:build !linux

package media

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"time"
)

// callSocket is a call's UDP socket. Outside Linux it stays conn, used
// through the runtime; detach and close do nothing (conn's owner closes it).
type callSocket struct{ conn *net.UDPConn }

func newCallSocket(conn *net.UDPConn) *callSocket { return &callSocket{conn: conn} }

func (c *callSocket) detach() error { return nil }

func (c *callSocket) close() {}

// socketReader takes the datagrams already waiting on a call's socket.
// Outside Linux there is no portable non-blocking read, so a read deadline
// just ahead stands in for one, and the arrival time is the time of the read.
type socketReader struct {
	conn *net.UDPConn
	buf  []byte
}

func newSocketReader(sock *callSocket) (*socketReader, error) {
	return &socketReader{conn: sock.conn, buf: make([]byte, 1500)}, nil
}

func (r *socketReader) newDrain() {}

func (r *socketReader) next() (data []byte, from netip.AddrPort, arrival time.Time, ok bool, err error) {
	_ = r.conn.SetReadDeadline(time.Now().Add(50 * time.Microsecond))
	n, from, err := r.conn.ReadFromUDPAddrPort(r.buf)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, netip.AddrPort{}, time.Time{}, false, nil
		}
		return nil, netip.AddrPort{}, time.Time{}, false, err
	}
	return r.buf[:n], from, time.Now(), true, nil
}

// socketWriter sends the call's packets (the ordinary way outside Linux).
type socketWriter struct{ conn *net.UDPConn }

func newSocketWriter(sock *callSocket) *socketWriter { return &socketWriter{conn: sock.conn} }

func (w *socketWriter) write(pkt []byte, to netip.AddrPort) error {
	_, err := w.conn.WriteToUDPAddrPort(pkt, to)
	return err
}
