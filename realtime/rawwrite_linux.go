package realtime

import (
	"context"
	"net"
	"syscall"
	"unsafe"
)

// dialTCP dials the model's host and returns a connection whose writes
// try one raw write(2) first: the socket is non-blocking, so it returns at
// once, and an event (an audio append every 20 ms per call) then skips the
// runtime's syscall bookkeeping and the scheduler hand-offs it invites. A
// short or refused write finishes the ordinary, waiting way.
func dialTCP(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return c, nil
	}
	w := &rawWriteConn{TCPConn: tcp, raw: raw}
	w.write = w.writeRaw
	return w, nil
}

type rawWriteConn struct {
	*net.TCPConn
	raw   syscall.RawConn
	write func(fd uintptr) bool

	buf   []byte
	n     int
	errno syscall.Errno
}

func (c *rawWriteConn) writeRaw(fd uintptr) bool {
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&c.buf[0])), uintptr(len(c.buf)))
	c.n, c.errno = int(n), errno
	return true
}

// Write is called by one writer at a time (the WebSocket's write loop).
func (c *rawWriteConn) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.buf = b
	err := c.raw.Write(c.write)
	c.buf = nil
	if err != nil || c.errno != 0 || c.n <= 0 {
		return c.TCPConn.Write(b) // closed, full, or failed: the ordinary way says which
	}
	if c.n < len(b) {
		n, err := c.TCPConn.Write(b[c.n:])
		return c.n + n, err
	}
	return c.n, nil
}
