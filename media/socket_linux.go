package media

import (
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"
)

// socketReader takes the datagrams already waiting on a call's socket
// without blocking, each with the kernel's arrival time. A media worker
// drains it once per frame of the call: no goroutine is woken per packet.
// The arrival time keeps the jitter estimate true to the network, not to
// when the socket was drained.
type socketReader struct {
	raw  syscall.RawConn
	read func(fd uintptr) bool // prebuilt: no closure allocated per read

	msg  syscall.Msghdr
	iov  syscall.Iovec
	name syscall.RawSockaddrInet6 // large enough for either family
	oob  [64]byte
	buf  []byte

	n       int
	from    netip.AddrPort
	arrival time.Time
	errno   syscall.Errno
}

func newSocketReader(conn *net.UDPConn) (*socketReader, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &socketReader{raw: raw, buf: make([]byte, 1500)}
	// Without kernel timestamps (refused, or a closed socket) each datagram
	// is stamped when read (stamp): the jitter estimate coarsens, nothing
	// else changes.
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	})
	r.iov.Base = &r.buf[0]
	r.iov.SetLen(len(r.buf))
	r.msg.Name = (*byte)(unsafe.Pointer(&r.name))
	r.msg.Iov = &r.iov
	r.msg.Iovlen = 1
	r.msg.Control = &r.oob[0]
	r.read = r.recv
	return r, nil
}

func (r *socketReader) recv(fd uintptr) bool {
	r.msg.Namelen = uint32(unsafe.Sizeof(r.name))
	r.msg.SetControllen(len(r.oob))
	// RawSyscall: a non-blocking call returns at once, and the runtime's
	// syscall bookkeeping (and the sysmon hand-offs it invites when a
	// loopback peer makes a call slow) would cost more than the call.
	n, _, errno := syscall.RawSyscall(syscall.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&r.msg)), syscall.MSG_DONTWAIT)
	r.n, r.errno = int(n), errno
	return true // never wait: an empty socket is an answer
}

// next returns the next waiting datagram, or ok false when none is left
// (or the socket failed; err says which).
func (r *socketReader) next() (data []byte, from netip.AddrPort, arrival time.Time, ok bool, err error) {
	if err := r.raw.Read(r.read); err != nil {
		return nil, netip.AddrPort{}, time.Time{}, false, err
	}
	if r.errno != 0 {
		if r.errno == syscall.EAGAIN || r.errno == syscall.EINTR {
			return nil, netip.AddrPort{}, time.Time{}, false, nil
		}
		return nil, netip.AddrPort{}, time.Time{}, false, r.errno
	}
	return r.buf[:r.n], r.source(), r.stamp(), true, nil
}

func (r *socketReader) source() netip.AddrPort {
	switch r.name.Family {
	case syscall.AF_INET:
		sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&r.name))
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(p[0])<<8|uint16(p[1]))
	case syscall.AF_INET6:
		p := (*[2]byte)(unsafe.Pointer(&r.name.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(r.name.Addr), uint16(p[0])<<8|uint16(p[1]))
	}
	return netip.AddrPort{}
}

// stamp is the SO_TIMESTAMPNS arrival time, or now when the kernel gave none.
func (r *socketReader) stamp() time.Time {
	const hdr = int(unsafe.Sizeof(syscall.Cmsghdr{}))
	if int(r.msg.Controllen) >= hdr+16 {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&r.oob[0]))
		if h.Level == syscall.SOL_SOCKET && h.Type == syscall.SO_TIMESTAMPNS {
			ts := (*syscall.Timespec)(unsafe.Pointer(&r.oob[hdr]))
			return time.Unix(ts.Sec, ts.Nsec)
		}
	}
	return time.Now()
}

// socketWriter sends the call's packets with one raw sendto each: the
// socket is non-blocking, so the call returns at once, and it skips the
// runtime's syscall bookkeeping (see socketReader.recv). Anything unusual
// (another address family, an error) goes the ordinary way instead.
type socketWriter struct {
	conn  *net.UDPConn
	raw   syscall.RawConn
	inet6 bool // the socket is AF_INET6 (IPv4 peers as mapped addresses)
	send  func(fd uintptr) bool

	to     netip.AddrPort
	name4  syscall.RawSockaddrInet4
	name6  syscall.RawSockaddrInet6
	pkt    []byte
	errno  syscall.Errno
	usable bool
}

func newSocketWriter(conn *net.UDPConn) *socketWriter {
	w := &socketWriter{conn: conn}
	raw, err := conn.SyscallConn()
	if err != nil {
		return w
	}
	var sa syscall.Sockaddr
	_ = raw.Control(func(fd uintptr) { sa, _ = syscall.Getsockname(int(fd)) })
	switch sa.(type) {
	case *syscall.SockaddrInet4:
	case *syscall.SockaddrInet6:
		w.inet6 = true
	default:
		return w
	}
	w.raw, w.usable = raw, true
	w.name4.Family = syscall.AF_INET
	w.name6.Family = syscall.AF_INET6
	w.send = w.sendto
	return w
}

func (w *socketWriter) sendto(fd uintptr) bool {
	port := w.to.Port()
	var name unsafe.Pointer
	var size uintptr
	if w.inet6 {
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
	_, _, w.errno = syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&w.pkt[0])), uintptr(len(w.pkt)), 0, uintptr(name), size)
	return true
}

// write sends pkt to the address to.
func (w *socketWriter) write(pkt []byte, to netip.AddrPort) error {
	addr := to.Addr()
	if !w.usable || len(pkt) == 0 || (!w.inet6 && !addr.Unmap().Is4()) {
		_, err := w.conn.WriteToUDPAddrPort(pkt, to)
		return err
	}
	if !w.inet6 {
		to = netip.AddrPortFrom(addr.Unmap(), to.Port())
	}
	w.to, w.pkt = to, pkt
	err := w.raw.Write(w.send)
	w.pkt = nil
	if err != nil {
		return err
	}
	if w.errno != 0 {
		if w.errno == syscall.EAGAIN {
			return w.errno // the socket's buffer is full: this frame is dropped, not waited for
		}
		_, err := w.conn.WriteToUDPAddrPort(pkt, to) // the ordinary way, and its error
		return err
	}
	return nil
}
