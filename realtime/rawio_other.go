//go:build !linux

package realtime

import (
	"context"
	"net"
)

// dialTCP dials the model's host (the ordinary way outside Linux).
func dialTCP(ctx context.Context, network, addr string) (net.Conn, error) {
	return (&net.Dialer{}).DialContext(ctx, network, addr)
}
