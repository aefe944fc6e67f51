package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// ErrNoPorts means every port of the range is in use.
var ErrNoPorts = errors.New("media: no free RTP port in range")

// Ports hands out UDP sockets bound to even ports of a range (RTP convention;
// the odd port above is left for RTCP) and takes them back when calls end.
type Ports struct {
	ip       netip.Addr
	min, max int

	mu    sync.Mutex
	inUse map[int]bool
	next  int
}

// NewPorts manages the even ports of [min, max] on ip.
func NewPorts(ip netip.Addr, min, max int) (*Ports, error) {
	if min%2 == 1 {
		min++
	}
	if min > max || min < 1 || max > 65535 {
		return nil, fmt.Errorf("media: bad RTP port range %d-%d", min, max)
	}
	return &Ports{ip: ip, min: min, max: max, inUse: map[int]bool{}, next: min}, nil
}

// Allocate binds the next free port. Ports that another process holds are
// skipped. Rotating through the range keeps a just-released port from being
// reused at once, so stray packets of an old call do not land in a new one.
func (p *Ports) Allocate() (*net.UDPConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	span := (p.max-p.min)/2 + 1
	for i := 0; i < span; i++ {
		port := p.next
		p.next += 2
		if p.next > p.max {
			p.next = p.min
		}
		if p.inUse[port] {
			continue
		}
		conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.ip, uint16(port))))
		if err != nil {
			continue
		}
		p.inUse[port] = true
		return conn, nil
	}
	return nil, ErrNoPorts
}

// Release closes conn and frees its port.
func (p *Ports) Release(conn *net.UDPConn) {
	port := conn.LocalAddr().(*net.UDPAddr).Port
	conn.Close()
	p.mu.Lock()
	delete(p.inUse, port)
	p.mu.Unlock()
}

// InUse is the number of ports currently allocated.
func (p *Ports) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.inUse)
}
