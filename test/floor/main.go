// Command floor measures the least CPU any user-space design can spend per
// call-second on the traffic one voicebot call makes, on this machine, over
// loopback: per call, one 172-byte RTP datagram sent and one received every
// 20 ms, one WebSocket-sized TCP write to the model per append interval, and
// the model's audio read back (as much audio as went up, in 100 ms deltas
// as the demo model sends it). It does nothing else: no decoding,
// resampling, JSON or base64. One thread serves every call on a 2 ms grid,
// the best batching there is, with raw non-blocking system calls.
//
// The peer side (the callers and the model) runs in a child process, so its
// CPU is not counted, except what the kernel bills to the sender on
// loopback (the receiver's protocol processing runs in the sender's
// softirq): exactly what test/load.sh also bills to voicebot.
//
//	go run ./test/floor -calls 200 -append 20ms -seconds 20
//
// -traffic rtp or -traffic model runs one half of that traffic alone, to
// say which half costs what. -rtp batched serves every call's RTP through
// one socket with sendmmsg and recvmmsg, one call of each per grid step,
// instead of a socket per call (what voicebot does): the floor a
// shared-port media design would have.
//
// With PIN=1 the measured side runs on core 1 and the peer on core 0, as
// test/load.sh does. It uses 127.0.0.1 only, and stops by itself.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	rtpSize = 172 // 12-byte header + 160 bytes of G.711: 20 ms
	frame   = 20 * time.Millisecond
	grid    = 2 * time.Millisecond
)

// udpSocket is a non-blocking UDP socket on 127.0.0.1 at a port the kernel
// picks, and that port.
func udpSocket() (int, int, error) {
	u, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		return 0, 0, err
	}
	if err := syscall.Bind(u, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(u)
		return 0, 0, fmt.Errorf("bind: %w", err)
	}
	sa, err := syscall.Getsockname(u)
	if err != nil {
		syscall.Close(u)
		return 0, 0, err
	}
	return u, sa.(*syscall.SockaddrInet4).Port, nil
}

// swapPorts tells the other side of a call's TCP connection our RTP port
// and learns its.
func swapPorts(c net.Conn, ours int) (int, error) {
	if _, err := c.Write([]byte{byte(ours >> 8), byte(ours)}); err != nil {
		return 0, err
	}
	var b [2]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return 0, err
	}
	return int(b[0])<<8 | int(b[1]), nil
}

func main() {
	calls := flag.Int("calls", 200, "concurrent calls")
	appendEvery := flag.Duration("append", 20*time.Millisecond, "interval between writes to the model")
	seconds := flag.Int("seconds", 20, "measured seconds")
	peer := flag.Bool("peer", false, "run as the peer (callers and model); internal")
	transcode := flag.String("transcode", "pcm16", "the model's audio: pcm16 (24 kHz) or passthrough (G.711)")
	traffic := flag.String("traffic", "both", "which of a call's traffic to run: both, rtp or model")
	rtpMode := flag.String("rtp", "per-call", "RTP sockets: per-call, or batched (one socket, sendmmsg/recvmmsg)")
	flag.Parse()
	opt := options{rtp: *traffic != "model", model: *traffic != "rtp", batched: *rtpMode == "batched"}
	if (*traffic != "both" && *traffic != "rtp" && *traffic != "model") || (*rtpMode != "per-call" && *rtpMode != "batched") {
		fmt.Fprintln(os.Stderr, "floor: -traffic is both, rtp or model; -rtp is per-call or batched")
		os.Exit(2)
	}
	// An append's bytes on the wire: base64 audio in JSON, plus the frame
	// header. 20 ms is 1280 bytes of base64 as 24 kHz PCM16, 216 as G.711.
	per20ms := 1280
	switch *transcode {
	case "pcm16":
	case "passthrough":
		per20ms = 216
	default:
		fmt.Fprintln(os.Stderr, "floor: -transcode is pcm16 or passthrough")
		os.Exit(2)
	}
	wsBytes := int(*appendEvery/frame)*per20ms + 60 + 8
	if *peer {
		runPeer(*calls, per20ms, *appendEvery, *seconds+4, opt)
		return
	}
	fmt.Println("| calls | append | CPU ms per call-second | of which user | of which sys | RTP sent / received, model writes |")
	if err := run(*calls, wsBytes, *appendEvery, *seconds, *transcode, opt); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

// options say which traffic the measured side runs, and how.
type options struct {
	rtp, model bool
	batched    bool // one RTP socket for every call, sendmmsg/recvmmsg
}

// mmsghdr is struct mmsghdr of sendmmsg(2) and recvmmsg(2); Go pads it
// as C does.
type mmsghdr struct {
	hdr syscall.Msghdr
	n   uint32
}

// batch is the measured side's shared RTP socket and its message vectors,
// made once.
type batch struct {
	fd, port int
	out      []mmsghdr
	outNames []syscall.RawSockaddrInet4
	outIov   []syscall.Iovec
	in       []mmsghdr
	inIov    []syscall.Iovec
	inBufs   [][2048]byte
}

func newBatch(size int, pkt []byte) (*batch, error) {
	fd, port, err := udpSocket()
	if err != nil {
		return nil, err
	}
	// every call's packets queue on this one socket between grid steps
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<20)
	b := &batch{fd: fd, port: port,
		out: make([]mmsghdr, size), outNames: make([]syscall.RawSockaddrInet4, size), outIov: make([]syscall.Iovec, size),
		in: make([]mmsghdr, size), inIov: make([]syscall.Iovec, size), inBufs: make([][2048]byte, size)}
	for i := range b.out {
		b.outIov[i].Base = &pkt[0]
		b.outIov[i].SetLen(len(pkt))
		b.out[i].hdr = syscall.Msghdr{Name: (*byte)(unsafe.Pointer(&b.outNames[i])), Namelen: syscall.SizeofSockaddrInet4, Iov: &b.outIov[i], Iovlen: 1}
		b.inIov[i].Base = &b.inBufs[i][0]
		b.inIov[i].SetLen(len(b.inBufs[i]))
		b.in[i].hdr = syscall.Msghdr{Iov: &b.inIov[i], Iovlen: 1}
	}
	return b, nil
}

// send sends one RTP packet to each of peers in one sendmmsg; it returns
// how many went.
func (b *batch) send(peers []*syscall.SockaddrInet4) int {
	for i, p := range peers {
		b.outNames[i] = syscall.RawSockaddrInet4{Family: syscall.AF_INET, Addr: p.Addr}
		port := (*[2]byte)(unsafe.Pointer(&b.outNames[i].Port))
		port[0], port[1] = byte(p.Port>>8), byte(p.Port)
	}
	n, _, errno := syscall.RawSyscall6(unix.SYS_SENDMMSG, uintptr(b.fd), uintptr(unsafe.Pointer(&b.out[0])), uintptr(len(peers)), 0, 0, 0)
	if errno != 0 {
		return 0
	}
	return int(n)
}

// drain reads every queued packet, a vector at a time; it returns how many.
func (b *batch) drain() int {
	total := 0
	for {
		n, _, errno := syscall.RawSyscall6(unix.SYS_RECVMMSG, uintptr(b.fd), uintptr(unsafe.Pointer(&b.in[0])), uintptr(len(b.in)), syscall.MSG_DONTWAIT, 0, 0)
		if errno != 0 || int(n) <= 0 {
			return total
		}
		total += int(n)
		if int(n) < len(b.in) {
			return total
		}
	}
}

// call is one side of a call: its RTP socket, the far side's RTP address,
// and its TCP connection to the model (or, for the peer, from voicebot).
type call struct {
	udp, tcp int // raw fds
	peer     syscall.SockaddrInet4
	file     *os.File // owns tcp: a file dropped is closed by its finalizer
}

// openCall makes c, a call's TCP connection, and an RTP socket into a
// call, the two sides telling each other their RTP ports over c. With
// shared set, the call uses that socket instead of one of its own.
func openCall(c net.Conn, shared *batch) (call, error) {
	defer c.Close() // the file below holds a duplicate of its descriptor
	var u, port int
	var err error
	if shared != nil {
		u, port = -1, shared.port
	} else if u, port, err = udpSocket(); err != nil {
		return call{}, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // a peer that died does not hang us
	closeUDP := func() {
		if u >= 0 {
			syscall.Close(u)
		}
	}
	theirs, err := swapPorts(c, port)
	if err != nil {
		closeUDP()
		return call{}, err
	}
	f, err := c.(*net.TCPConn).File()
	if err != nil {
		closeUDP()
		return call{}, err
	}
	fd := int(f.Fd()) // once: each Fd call makes the descriptor blocking again
	_ = syscall.SetNonblock(fd, true)
	return call{udp: u, tcp: fd, file: f, peer: syscall.SockaddrInet4{Port: theirs, Addr: [4]byte{127, 0, 0, 1}}}, nil
}

func (c call) close() {
	if c.udp >= 0 {
		syscall.Close(c.udp)
	}
	c.file.Close()
}

func run(calls, wsBytes int, appendEvery time.Duration, seconds int, transcode string, opt options) error {
	runtime.GOMAXPROCS(1)
	runtime.LockOSThread()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	args := []string{"-peer", "-calls", fmt.Sprint(calls), "-append", appendEvery.String(), "-seconds", fmt.Sprint(seconds), "-transcode", transcode}
	if !opt.rtp {
		args = append(args, "-traffic", "model")
	} else if !opt.model {
		args = append(args, "-traffic", "rtp")
	}
	self, _ := os.Executable()
	cmd := exec.Command(self, args...)
	if os.Getenv("PIN") != "" {
		cmd = exec.Command("taskset", append([]string{"-c", "0", self}, args...)...)
	}
	cmd.Env = append(os.Environ(), "FLOOR_MODEL="+ln.Addr().String())
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Wait()
	if os.Getenv("PIN") != "" {
		var set [16]uint64 // a cpu_set_t with core 1 only
		set[0] = 1 << 1
		_, _, _ = syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, 0, unsafe.Sizeof(set), uintptr(unsafe.Pointer(&set)))
	}
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second))
	pkt := make([]byte, rtpSize)
	slots := int(frame / grid)
	var shared *batch
	if opt.batched {
		if shared, err = newBatch((calls+slots-1)/slots, pkt); err != nil {
			return err
		}
		defer syscall.Close(shared.fd)
	}
	cs := make([]call, calls)
	for i := range cs {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		if cs[i], err = openCall(c, shared); err != nil {
			return fmt.Errorf("call %d: %w", i, err)
		}
	}
	due := make([]*syscall.SockaddrInet4, 0, calls)
	ws := make([]byte, wsBytes)
	buf := make([]byte, 65536)
	perAppend := int(appendEvery / frame)
	var before syscall.Rusage
	start := time.Now()
	warm := 2 * time.Second
	measured := false
	var rx, tx, wsw int
	for tick := 0; ; tick++ {
		now := time.Now()
		if !measured && now.Sub(start) >= warm {
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
			rx, tx, wsw = 0, 0, 0
			measured = true
		}
		if now.Sub(start) >= warm+time.Duration(seconds)*time.Second {
			break
		}
		slot := tick % slots
		frameNo := tick / slots
		if opt.rtp && shared != nil {
			due = due[:0]
			for i := slot; i < len(cs); i += slots {
				due = append(due, &cs[i].peer)
			}
			if len(due) > 0 {
				tx += shared.send(due)
			}
			rx += shared.drain()
		}
		for i := slot; i < len(cs); i += slots {
			c := &cs[i]
			if opt.rtp && shared == nil {
				if syscall.Sendto(c.udp, pkt, 0, &c.peer) == nil {
					tx++
				}
				for {
					n, _, err := syscall.Recvfrom(c.udp, buf, syscall.MSG_DONTWAIT)
					if err != nil || n <= 0 {
						break
					}
					rx++
				}
			}
			if !opt.model {
				continue
			}
			if frameNo%perAppend == 0 {
				if n, err := syscall.Write(c.tcp, ws); n > 0 {
					wsw++
				} else if measured {
					fmt.Fprintln(os.Stderr, "write", n, err)
					os.Exit(1)
				}
			}
			for { // the model's audio coming back
				n, err := syscall.Read(c.tcp, buf)
				if err != nil || n <= 0 {
					break
				}
			}
		}
		next := start.Add(time.Duration(tick+1) * grid)
		time.Sleep(time.Until(next))
	}
	var after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano()-before.Utime.Nano()) + time.Duration(after.Stime.Nano()-before.Stime.Nano())
	user := time.Duration(after.Utime.Nano() - before.Utime.Nano())
	callSeconds := float64(calls * seconds)
	fmt.Printf("| %d | %v | %.3f | %.3f | %.3f | %d / %d / %d |\n", calls, appendEvery,
		float64(cpu.Microseconds())/1000/callSeconds,
		float64(user.Microseconds())/1000/callSeconds,
		float64((cpu-user).Microseconds())/1000/callSeconds, tx, rx, wsw)
	for _, c := range cs {
		c.close()
	}
	return nil
}

// deltaMS is the audio per model delta, as the demo model sends it
// (realtimetest's ChunkMS).
const deltaMS = 100

// runPeer plays every caller and the model: RTP to each call every 20 ms,
// RTP and WebSocket bytes drained, and the model's audio sent back as much
// as arrives (an echo, as the demo model gives), in deltas of deltaMS.
func runPeer(calls, per20ms int, appendEvery time.Duration, seconds int, opt options) {
	runtime.LockOSThread()
	model := os.Getenv("FLOOR_MODEL")
	es := make([]call, calls)
	for i := range es {
		c, err := net.Dial("tcp4", model)
		if err == nil {
			es[i], err = openCall(c, nil)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "floor peer:", err)
			os.Exit(1)
		}
	}
	pkt := make([]byte, rtpSize)
	perAppend := int(appendEvery / frame)
	appendBytes := perAppend*per20ms + 60 + 8
	// an output_audio.delta event with its ids, in one frame
	back := make([]byte, deltaMS/20*per20ms+120+8)
	owed := make([]int, calls) // bytes of appends received, not yet echoed
	echoAfter := deltaMS / 20 * appendBytes / perAppend
	buf := make([]byte, 65536)
	start := time.Now()
	for tick := 0; time.Since(start) < time.Duration(seconds)*time.Second; tick++ {
		for i := range es {
			e := &es[i]
			if opt.rtp {
				_ = syscall.Sendto(e.udp, pkt, 0, &e.peer)
				for {
					if n, _, err := syscall.Recvfrom(e.udp, buf, syscall.MSG_DONTWAIT); err != nil || n <= 0 {
						break
					}
				}
			}
			if !opt.model {
				continue
			}
			got := 0
			for {
				n, err := syscall.Read(e.tcp, buf)
				if err != nil || n <= 0 {
					break
				}
				got += n
			}
			for owed[i] += got; owed[i] >= echoAfter; owed[i] -= echoAfter {
				_, _ = syscall.Write(e.tcp, back)
			}
		}
		time.Sleep(time.Until(start.Add(time.Duration(tick+1) * frame)))
	}
	for _, e := range es {
		e.close()
	}
}
