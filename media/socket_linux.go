package media

import (
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// callSocket is a call's UDP socket as its session uses it.
//
// Until the session starts it is conn's own descriptor, used through the
// runtime. detach (at Start) swaps in a duplicate of the descriptor and
// closes conn's, so that no descriptor of the socket stays registered with
// the runtime's poller. The poller watches every socket edge-triggered:
// each datagram that arrives while the process sleeps wakes a thread,
// although no goroutine waits on the socket, since the media worker drains
// it on its own grid. At 200 calls that was about 3,300 wake-ups a second.
// The duplicate is not registered, so datagrams wait for the worker.
//
// Every system call on the duplicate is non-blocking (the file description
// is), so it needs no poller. Its reads come from the media worker's pass
// only; its writes and its close are serialised by the session's pacer
// lock, and close comes after the session left its worker. So a number
// the kernel has reused for another file is never written to.
type callSocket struct {
	conn     *net.UDPConn
	raw      syscall.RawConn // conn's, until detach
	fd       int             // the duplicate, from detach until close; -1 before and after
	detached bool
	family   int // AF_INET or AF_INET6; 0 if unknown
}

// closed reports whether the duplicate has been closed.
func (c *callSocket) closed() bool { return c.detached && c.fd < 0 }

func newCallSocket(conn *net.UDPConn) *callSocket {
	c := &callSocket{conn: conn, fd: -1}
	raw, err := conn.SyscallConn()
	if err != nil {
		return c // detach reports it
	}
	c.raw = raw
	var sa syscall.Sockaddr
	_ = raw.Control(func(fd uintptr) { sa, _ = syscall.Getsockname(int(fd)) })
	switch sa.(type) {
	case *syscall.SockaddrInet4:
		c.family = syscall.AF_INET
	case *syscall.SockaddrInet6:
		c.family = syscall.AF_INET6
	}
	return c
}

// detach takes the socket out of the runtime's poller (see callSocket).
// conn's LocalAddr stays valid; closing conn afterwards does nothing.
func (c *callSocket) detach() error {
	if c.detached {
		return nil
	}
	if c.raw == nil {
		return net.ErrClosed
	}
	dup, errno := -1, syscall.Errno(0)
	if err := c.raw.Control(func(fd uintptr) {
		var e error
		dup, e = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		if e != nil {
			errno = e.(syscall.Errno)
		}
	}); err != nil {
		return err
	}
	if errno != 0 {
		return os.NewSyscallError("dup", errno)
	}
	c.conn.Close()
	c.fd, c.detached = dup, true
	return nil
}

// close closes the duplicate. The session calls it once no worker uses the
// socket, under its pacer lock.
func (c *callSocket) close() {
	if c.detached && c.fd >= 0 {
		_ = syscall.Close(c.fd)
		c.fd = -1
	}
}

// socketReader takes the datagrams already waiting on a call's socket
// without blocking, each with the kernel's arrival time. A media worker
// drains it once per frame of the call: no goroutine is woken per packet.
// The arrival time keeps the jitter estimate true to the network, not to
// when the socket was drained.
//
// It reads with recvmmsg(2), up to readBatch datagrams a call. A call that
// returns fewer than it asked for has emptied the socket, so the drain
// ends there: the usual frame (one datagram) costs one system call, not a
// read and then a read that finds nothing.
type socketReader struct {
	sock *callSocket

	msgs  [readBatch]mmsghdr
	iovs  [readBatch]syscall.Iovec
	names [readBatch]syscall.RawSockaddrInet6 // large enough for either family
	oobs  [readBatch][64]byte
	bufs  [readBatch][]byte

	got, taken int  // datagrams the last call returned, and handed out of them
	emptied    bool // the last call returned fewer than it asked: the socket was empty
	errno      syscall.Errno
}

// readBatch is the most datagrams one recvmmsg takes: a frame's packet and
// one that bunched up behind it (more take another call). Each slot holds
// a 1500-byte buffer for as long as the call lasts.
const readBatch = 2

// mmsghdr is struct mmsghdr of recvmmsg(2); Go pads it as C does.
type mmsghdr struct {
	hdr syscall.Msghdr
	n   uint32 // the datagram's length
}

// newSocketReader detaches sock (see callSocket) and reads from it.
func newSocketReader(sock *callSocket) (*socketReader, error) {
	if err := sock.detach(); err != nil {
		return nil, err
	}
	r := &socketReader{sock: sock}
	// Without kernel timestamps (refused) each datagram is stamped when
	// read (stamp): the jitter estimate coarsens, nothing else changes.
	_ = syscall.SetsockoptInt(sock.fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	for i := range r.msgs {
		r.bufs[i] = make([]byte, 1500)
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(len(r.bufs[i]))
		h := &r.msgs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Iov = &r.iovs[i]
		h.Iovlen = 1
		h.Control = &r.oobs[i][0]
	}
	return r, nil
}

func (r *socketReader) recv(fd int) {
	for i := range r.msgs {
		r.msgs[i].hdr.Namelen = uint32(unsafe.Sizeof(r.names[i]))
		r.msgs[i].hdr.SetControllen(len(r.oobs[i]))
	}
	// RawSyscall: a non-blocking call returns at once, and the runtime's
	// syscall bookkeeping (and the sysmon hand-offs it invites when a
	// loopback peer makes a call slow) would cost more than the call.
	n, _, errno := syscall.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&r.msgs[0])), readBatch, syscall.MSG_DONTWAIT, 0, 0)
	r.got, r.errno = int(n), errno
	if errno != 0 {
		r.got = 0
	}
}

// newDrain begins a drain. A drain the caller stopped early (at maxDrain)
// right after the last datagram of a short batch left that batch's end
// mark behind; the new drain must ask the kernel, not end at once.
func (r *socketReader) newDrain() { r.emptied = false }

// next returns the next waiting datagram, or ok false when none is left
// (or the socket failed; err says which). The data is valid until the
// next call.
func (r *socketReader) next() (data []byte, from netip.AddrPort, arrival time.Time, ok bool, err error) {
	if r.taken == r.got {
		if r.emptied {
			r.emptied = false // the next drain asks the kernel again
			return nil, netip.AddrPort{}, time.Time{}, false, nil
		}
		r.taken, r.got = 0, 0
		if r.sock.closed() {
			return nil, netip.AddrPort{}, time.Time{}, false, net.ErrClosed
		}
		r.recv(r.sock.fd)
		if r.errno != 0 {
			if r.errno == syscall.EAGAIN || r.errno == syscall.EINTR {
				return nil, netip.AddrPort{}, time.Time{}, false, nil
			}
			return nil, netip.AddrPort{}, time.Time{}, false, os.NewSyscallError("recvmmsg", r.errno)
		}
		r.emptied = r.got < readBatch
	}
	i := r.taken
	r.taken++
	return r.bufs[i][:r.msgs[i].n], r.source(i), r.stamp(i), true, nil
}

func (r *socketReader) source(i int) netip.AddrPort {
	name := &r.names[i]
	switch name.Family {
	case syscall.AF_INET:
		sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(name))
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(p[0])<<8|uint16(p[1]))
	case syscall.AF_INET6:
		p := (*[2]byte)(unsafe.Pointer(&name.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(name.Addr), uint16(p[0])<<8|uint16(p[1]))
	}
	return netip.AddrPort{}
}

// stamp is the SO_TIMESTAMPNS arrival time, or now when the kernel gave none.
func (r *socketReader) stamp(i int) time.Time {
	const hdr = int(unsafe.Sizeof(syscall.Cmsghdr{}))
	if int(r.msgs[i].hdr.Controllen) >= hdr+16 {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&r.oobs[i][0]))
		if h.Level == syscall.SOL_SOCKET && h.Type == syscall.SO_TIMESTAMPNS {
			ts := (*syscall.Timespec)(unsafe.Pointer(&r.oobs[i][hdr]))
			return time.Unix(int64(ts.Sec), int64(ts.Nsec)) // int32 fields on 32-bit Linux
		}
	}
	return time.Now()
}

// socketWriter sends the call's packets with one raw sendto each: the
// socket is non-blocking, so the call returns at once, and it skips the
// runtime's syscall bookkeeping (see socketReader.recv). Before the socket
// is detached, anything unusual (an address family the socket cannot
// reach, an error) goes the ordinary way instead, for its error.
type socketWriter struct {
	sock *callSocket
	send func(fd uintptr) bool

	to    netip.AddrPort
	name4 syscall.RawSockaddrInet4
	name6 syscall.RawSockaddrInet6
	pkt   []byte
	errno syscall.Errno
}

func newSocketWriter(sock *callSocket) *socketWriter {
	w := &socketWriter{sock: sock}
	w.name4.Family = syscall.AF_INET
	w.name6.Family = syscall.AF_INET6
	w.send = w.sendto
	return w
}

// usable: the socket's family is known, so the raw path can name a peer.
func (w *socketWriter) usable() bool { return w.sock.family != 0 }

// inet6: the socket is AF_INET6 (IPv4 peers as mapped addresses).
func (w *socketWriter) inet6() bool { return w.sock.family == syscall.AF_INET6 }

func (w *socketWriter) sendto(fd uintptr) bool {
	port := w.to.Port()
	var name unsafe.Pointer
	var size uintptr
	if w.inet6() {
		w.name6.Addr = w.to.Addr().As16() // IPv4 as ::ffff:a.b.c.d
		p := (*[2]byte)(unsafe.Pointer(&w.name6.Port))
		p[0], p[1] = byte(port>>8), byte(port)
		name, size = unsafe.Pointer(&w.name6), unsafe.Sizeof(w.name6)
	} else {
		w.name4.Addr = w.to.Addr().As4()
		p := (*[2]byte)(unsafe.Pointer(&w.name4.Port))
		p[0], p[1] = byte(port>>8), byte(port)
		name, size = unsafe.Pointer(&w.name4), unsafe.Sizeof(w.name4)
	}
	_, _, w.errno = syscall.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&w.pkt[0])), uintptr(len(w.pkt)), 0, uintptr(name), size)
	return true
}

// write sends pkt to the address to.
func (w *socketWriter) write(pkt []byte, to netip.AddrPort) error {
	addr := to.Addr()
	reachable := w.usable() && len(pkt) > 0 && (w.inet6() || addr.Unmap().Is4())
	if !reachable || w.sock.closed() {
		return w.ordinary(pkt, to)
	}
	if !w.inet6() {
		to = netip.AddrPortFrom(addr.Unmap(), to.Port())
	}
	w.to, w.pkt = to, pkt
	if w.sock.detached {
		w.sendto(uintptr(w.sock.fd))
	} else if err := w.sock.raw.Write(w.send); err != nil {
		w.pkt = nil
		return err
	}
	w.pkt = nil
	switch w.errno {
	case 0:
		return nil
	case syscall.EAGAIN:
		return w.errno // the socket's buffer is full: this frame is dropped, not waited for
	}
	if w.sock.detached {
		return w.opError(to, os.NewSyscallError("sendto", w.errno))
	}
	return w.ordinary(pkt, to) // the ordinary way, and its error
}

// ordinary sends through conn, which after detach only reports an error.
func (w *socketWriter) ordinary(pkt []byte, to netip.AddrPort) error {
	if w.sock.detached {
		if w.sock.closed() {
			return w.opError(to, net.ErrClosed)
		}
		return w.opError(to, syscall.EAFNOSUPPORT)
	}
	_, err := w.sock.conn.WriteToUDPAddrPort(pkt, to)
	return err
}

func (w *socketWriter) opError(to netip.AddrPort, err error) error {
	return &net.OpError{Op: "write", Net: "udp", Source: w.sock.conn.LocalAddr(), Addr: net.UDPAddrFromAddrPort(to), Err: err}
}
