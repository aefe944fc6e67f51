package media

import (
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// gridAlarm wakes the process at a media worker's next grid instant, on
// Linux, so that the worker's Go timer fires on time.
//
// The runtime's poller sleeps in whole milliseconds when nothing else
// wakes it (runtime/netpoll_epoll.go truncates its timeout, and waits a
// whole one for less), so an idle process woke up to a millisecond late
// for a 2 ms grid: 545 µs on average here (BenchmarkGridLateness). RTP
// arriving used to hide that by waking the process all the time; with the
// call sockets out of the poller (see callSocket) nothing does. The alarm
// is a timerfd the poller watches, armed for the instant the timer is due:
// its expiry is an event that ends the poller's sleep, and the runtime,
// awake, runs the due timer. No goroutine reads it. The worker still waits
// on its Go timer, which the runtime serves at every scheduling point even
// while busy, where the poller's events wait their turn.
type gridAlarm struct {
	file *os.File // keeps the descriptor registered with the poller
	fd   uintptr
	spec unix.ItimerSpec
}

func newGridAlarm() (*gridAlarm, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("timerfd_create", err)
	}
	// os.NewFile registers a non-blocking descriptor with the poller.
	return &gridAlarm{file: os.NewFile(uintptr(fd), "media-grid-alarm"), fd: uintptr(fd)}, nil
}

// set arms the alarm d from now (d ≤ 0: nothing to wake for). Arm it after
// resetting the timer it stands for, so it never goes off before the
// timer is due (the runtime would sleep again, for a whole millisecond).
// Arming discards an expiry nobody read: every expiry is a fresh event.
func (a *gridAlarm) set(d time.Duration) error {
	if d <= 0 {
		return nil
	}
	a.spec.Value = unix.NsecToTimespec(int64(d))
	// Raw: timerfd_settime returns at once, and the runtime's syscall
	// bookkeeping would cost more than the call.
	if _, _, errno := syscall.RawSyscall6(unix.SYS_TIMERFD_SETTIME, a.fd, 0, uintptr(unsafe.Pointer(&a.spec)), 0, 0, 0); errno != 0 {
		return os.NewSyscallError("timerfd_settime", errno)
	}
	return nil
}

func (a *gridAlarm) close() { a.file.Close() }
