package realtime

import (
	"context"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// dialTCP dials the model's host and returns a connection whose reads and
// writes try one raw read(2) or write(2) first. The socket is non-blocking,
// so that returns at once. An event (an audio append every 20 ms per call,
// a delta back every 100 ms) then skips the runtime's syscall bookkeeping,
// and with it the hand-off of the thread's P to another thread that the
// runtime makes when a system call runs long, as one on a loopback or
// busy socket does. A read with nothing to read waits in the netpoller, as
// an ordinary one does; a short, refused or failed one finishes the
// ordinary way, which also says what went wrong.
func dialTCP(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	return newRawConn(tcp), nil
}

// newRawConn wraps tcp, or returns it as it is if its descriptor is out
// of reach.
func newRawConn(tcp *net.TCPConn) net.Conn {
	raw, err := tcp.SyscallConn()
	if err != nil {
		return tcp
	}
	c := &rawConn{TCPConn: tcp, raw: raw}
	c.write = c.writeRaw
	c.read = c.readRaw
	return c
}

// rawConn has one reader and one writer at a time (the WebSocket's read
// and write loops), each with its own fields.
type rawConn struct {
	*net.TCPConn
	raw syscall.RawConn

	write  func(fd uintptr) bool
	wbuf   []byte
	wn     int
	werrno syscall.Errno

	read   func(fd uintptr) bool
	rbuf   []byte
	rn     int
	rerrno syscall.Errno

	deadlineMu    sync.Mutex
	writeDeadline time.Time // the socket's write deadline, once known
	deadlineKnown bool
}

// SetWriteDeadline sets the deadline unless the socket has it already. The
// WebSocket sets one before every frame it writes (the zero time, unless a
// writer asked for one), and each costs the runtime a timer update.
func (c *rawConn) SetWriteDeadline(t time.Time) error {
	c.deadlineMu.Lock()
	defer c.deadlineMu.Unlock()
	if c.deadlineKnown && t.Equal(c.writeDeadline) {
		return nil
	}
	c.deadlineKnown = false
	if err := c.TCPConn.SetWriteDeadline(t); err != nil {
		return err
	}
	c.writeDeadline, c.deadlineKnown = t, true
	return nil
}

func (c *rawConn) SetDeadline(t time.Time) error {
	c.deadlineMu.Lock()
	defer c.deadlineMu.Unlock()
	c.deadlineKnown = false
	if err := c.TCPConn.SetDeadline(t); err != nil {
		return err
	}
	c.writeDeadline, c.deadlineKnown = t, true
	return nil
}

func (c *rawConn) writeRaw(fd uintptr) bool {
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&c.wbuf[0])), uintptr(len(c.wbuf)))
	c.wn, c.werrno = int(n), errno
	return true
}

func (c *rawConn) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.wbuf = b
	err := c.raw.Write(c.write)
	c.wbuf = nil
	if err != nil || c.werrno != 0 || c.wn <= 0 {
		return c.TCPConn.Write(b) // closed, full, or failed: the ordinary way says which
	}
	if c.wn < len(b) {
		n, err := c.TCPConn.Write(b[c.wn:])
		return c.wn + n, err
	}
	return c.wn, nil
}

// readRaw reads once; with nothing to read it asks RawConn.Read to wait
// for the socket in the netpoller and call it again.
func (c *rawConn) readRaw(fd uintptr) bool {
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)))
	switch errno {
	case syscall.EAGAIN:
		return false
	case syscall.EINTR:
		return c.readRaw(fd)
	}
	c.rn, c.rerrno = int(n), errno
	return true
}

func (c *rawConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.rbuf = b
	err := c.raw.Read(c.read)
	c.rbuf = nil
	if err != nil {
		return c.TCPConn.Read(b) // closed or past its deadline: the ordinary way says which
	}
	if c.rerrno != 0 {
		// reported once by the kernel, so said here as net would say it
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", c.rerrno)}
	}
	if c.rn == 0 {
		return 0, io.EOF
	}
	return c.rn, nil
}
