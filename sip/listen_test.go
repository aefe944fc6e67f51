package sip

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
)

// With port 0, a port the first transport got but the next finds taken is
// given up for a new pick; a port asked for, or another error, is final.
func TestListenRetrying(t *testing.T) {
	inUse := &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
	want := netip.MustParseAddrPort("127.0.0.1:5062")
	failing := func(failures int, err error) (func() (netip.AddrPort, error), *int) {
		calls := 0
		return func() (netip.AddrPort, error) {
			calls++
			if calls <= failures {
				return netip.AddrPort{}, err
			}
			return want, nil
		}, &calls
	}
	listen, calls := failing(2, inUse)
	if got, err := listenRetrying(true, listen); err != nil || got != want || *calls != 3 {
		t.Errorf("port 0, taken twice: %v %v after %d tries, want %v after 3", got, err, *calls, want)
	}
	listen, calls = failing(1, inUse)
	if _, err := listenRetrying(false, listen); !errors.Is(err, syscall.EADDRINUSE) || *calls != 1 {
		t.Errorf("a port asked for: %v after %d tries, want EADDRINUSE after 1", err, *calls)
	}
	listen, calls = failing(1, errors.New("unknown transport"))
	if _, err := listenRetrying(true, listen); err == nil || *calls != 1 {
		t.Errorf("another error: %v after %d tries, want it after 1", err, *calls)
	}
	listen, calls = failing(100, inUse)
	if _, err := listenRetrying(true, listen); !errors.Is(err, syscall.EADDRINUSE) || *calls != 10 {
		t.Errorf("always taken: %v after %d tries, want EADDRINUSE after 10", err, *calls)
	}
}
