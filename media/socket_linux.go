package media

import (
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

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
	raw  syscall.RawConn
	read func(fd uintptr) bool // prebuilt: no closure allocated per read

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

func newSocketReader(conn *net.UDPConn) (*socketReader, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &socketReader{raw: raw}
	// Without kernel timestamps (refused, or a closed socket) each datagram
	// is stamped when read (stamp): the jitter estimate coarsens, nothing
	// else changes.
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	})
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
	r.read = r.recv
	return r, nil
}

func (r *socketReader) recv(fd uintptr) bool {
	for i := range r.msgs {
		r.msgs[i].hdr.Namelen = uint32(unsafe.Sizeof(r.names[i]))
		r.msgs[i].hdr.SetControllen(len(r.oobs[i]))
	}
	// RawSyscall: a non-blocking call returns at once, and the runtime's
	// syscall bookkeeping (and the sysmon hand-offs it invites when a
	// loopback peer makes a call slow) would cost more than the call.
	n, _, errno := syscall.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.msgs[0])), readBatch, syscall.MSG_DONTWAIT, 0, 0)
	r.got, r.errno = int(n), errno
	if errno != 0 {
		r.got = 0
	}
	return true // never wait: an empty socket is an answer
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
		if err := r.raw.Read(r.read); err != nil {
			return nil, netip.AddrPort{}, time.Time{}, false, err
		}
		if r.errno != 0 {
			if r.errno == syscall.EAGAIN || r.errno == syscall.EINTR {
				return nil, netip.AddrPort{}, time.Time{}, false, nil
			}
			return nil, netip.AddrPort{}, time.Time{}, false, r.errno
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
	_, _, w.errno = syscall.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&w.pkt[0])), uintptr(len(w.pkt)), 0, uintptr(name), size)
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
