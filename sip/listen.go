package sip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// Listeners: the transports bound, their ports, and the address each
// peer is told (Contact, SDP), which depends on where it is.

func (u *UA) port() uint16 {
	if u.udp != nil {
		return u.udp.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	}
	if u.tcp != nil {
		return u.tcp.Addr().(*net.TCPAddr).AddrPort().Port()
	}
	return u.cfg.Listen.Port()
}

// TLSAddr is the address SIP over TLS is served on, if it is.
func (u *UA) TLSAddr() netip.AddrPort {
	if u.tls == nil {
		return netip.AddrPort{}
	}
	return u.tls.Addr().(*net.TCPAddr).AddrPort()
}

// portFor is our SIP port for a transport.
func (u *UA) portFor(transport string) uint16 {
	if strings.EqualFold(transport, "tls") && u.tls != nil {
		return u.TLSAddr().Port()
	}
	return u.port()
}

// Addr is the address SIP is served on (its port is known after New even
// when the configured port was 0).
func (u *UA) Addr() netip.AddrPort { return netip.AddrPortFrom(u.cfg.Listen.Addr(), u.port()) }

func (u *UA) advertisedHost() string {
	if u.cfg.ExternalHost != "" {
		return u.cfg.ExternalHost
	}
	return u.cfg.Listen.Addr().String()
}

// hostFor is the host to advertise to a peer at remote: the external
// address when set; for a wildcard bind (0.0.0.0, ::), the local address that
// routes to the peer (0.0.0.0 in SDP would mean "hold"); else bound.
func (u *UA) hostFor(bound netip.Addr, remote string) string {
	if u.cfg.ExternalHost != "" {
		return u.cfg.ExternalHost
	}
	if bound.IsUnspecified() {
		if ip := localIPToward(remote); ip.IsValid() {
			return ip.String()
		}
	}
	return bound.String()
}

// localIPToward asks the routing table which local address reaches remote.
// Connecting a UDP socket sends nothing.
func localIPToward(remote string) netip.Addr {
	c, err := net.Dial("udp", remote)
	if err != nil {
		return netip.Addr{}
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
}

// listenRetrying runs listen until it succeeds. A port of 0 is the first
// transport's pick, which another socket may already hold for the next
// transport (a TCP client's ephemeral port): then the set is tried again,
// on a new pick, a few times. A port asked for is tried once.
func listenRetrying(anyPort bool, listen func() (netip.AddrPort, error)) (netip.AddrPort, error) {
	const attempts = 10
	for attempt := 1; ; attempt++ {
		addr, err := listen()
		if err == nil || !anyPort || !errors.Is(err, syscall.EADDRINUSE) || attempt == attempts {
			return addr, err
		}
	}
}

// listen opens a listener per transport on addr, all on one port: the
// first one's when addr's port is 0. On an error none stays open.
func (u *UA) listen(addr netip.AddrPort, transports []string) (netip.AddrPort, error) {
	u.udp, u.tcp = nil, nil // a failed attempt's, closed
	for _, t := range transports {
		var err error
		switch t {
		case "udp":
			u.udp, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		case "tcp":
			u.tcp, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
		default:
			err = fmt.Errorf("unknown transport %q", t)
		}
		if err != nil {
			u.closeListeners()
			return addr, fmt.Errorf("sip listen %s %s: %w", t, addr, err)
		}
		if addr.Port() == 0 {
			addr = netip.AddrPortFrom(addr.Addr(), u.port()) // the others share it
		}
	}
	return addr, nil
}

func (u *UA) closeListeners() {
	if u.udp != nil {
		u.udp.Close()
	}
	if u.tcp != nil {
		u.tcp.Close()
	}
	if u.tls != nil {
		u.tls.Close()
	}
}
