package media

import (
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// gridTimer is the media worker's wait for its next grid instant on Linux:
// a timerfd that the runtime's poller watches.
//
// A Go timer would do only while something else keeps waking the process.
// With the call sockets out of the poller (see callSocket) nothing does,
// and the runtime's poller sleeps in whole milliseconds
// (runtime/netpoll_epoll.go truncates its timeout, and waits a whole one
// for less), so the worker woke up to a millisecond late. A timerfd's
// expiry is an event of its own, on the kernel's high-resolution timer.
type gridTimer struct {
	file *os.File
	raw  syscall.RawConn
	fd   uintptr
	spec unix.ItimerSpec
	buf  [8]byte
	read func(fd uintptr) bool
}

func newGridTimer() (*gridTimer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("timerfd_create", err)
	}
	file := os.NewFile(uintptr(fd), "media-grid-timer") // non-blocking: the poller watches it
	raw, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, err
	}
	t := &gridTimer{file: file, raw: raw, fd: uintptr(fd)}
	t.read = t.expired
	return t, nil
}

// sleep returns after d (at once for d ≤ 0).
func (t *gridTimer) sleep(d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t.spec.Value = unix.NsecToTimespec(int64(d))
	// Raw: timerfd_settime and a ready read return at once, and the
	// runtime's syscall bookkeeping would cost more than they do.
	if _, _, errno := syscall.RawSyscall6(unix.SYS_TIMERFD_SETTIME, t.fd, 0, uintptr(unsafe.Pointer(&t.spec)), 0, 0, 0); errno != 0 {
		return os.NewSyscallError("timerfd_settime", errno)
	}
	return t.raw.Read(t.read)
}

// expired reads the expiry count; false (not yet) parks the worker in the
// poller until the timerfd is readable.
func (t *gridTimer) expired(fd uintptr) bool {
	_, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&t.buf[0])), uintptr(len(t.buf)))
	return errno != syscall.EAGAIN
}

func (t *gridTimer) close() { t.file.Close() }
