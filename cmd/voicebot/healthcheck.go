package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/voicebot/voicebot/config"
)

// healthTimeout bounds a health probe.
const healthTimeout = 3 * time.Second

// healthcheck probes the voicebot this configuration describes, on this
// host: its API's /healthz when the API is on, else an OPTIONS to its SIP
// listener (any answer, even 503 while draining, means it is alive). It is
// the container's HEALTHCHECK: the image has no shell and no curl.
func healthcheck(cfg config.Config) error {
	if cfg.API.Listen != "" {
		return probeHTTP("http://" + local(cfg.API.Listen) + "/healthz")
	}
	network := "udp"
	if !slices.Contains(cfg.SIP.Transports, "udp") {
		network = "tcp"
	}
	return probeSIP(network, local(cfg.SIP.Listen))
}

// local is addr as this host reaches it: a wildcard host is loopback.
func local(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port)
}

func probeHTTP(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck %s: %w", url, err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck %s: HTTP %d", url, res.StatusCode)
	}
	return nil
}

func probeSIP(network, addr string) error {
	conn, err := net.DialTimeout(network, addr, healthTimeout)
	if err != nil {
		return fmt.Errorf("healthcheck sip %s: %w", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(healthTimeout))
	var b [8]byte
	_, _ = rand.Read(b[:])
	tag := hex.EncodeToString(b[:])
	transport := strings.ToUpper(network)
	msg := "OPTIONS sip:healthcheck@" + addr + " SIP/2.0\r\n" +
		"Via: SIP/2.0/" + transport + " " + conn.LocalAddr().String() + ";branch=z9hG4bK-" + tag + ";rport\r\n" +
		"From: <sip:healthcheck@" + conn.LocalAddr().String() + ">;tag=" + tag + "\r\n" +
		"To: <sip:healthcheck@" + addr + ">\r\nCall-ID: healthcheck-" + tag + "\r\nCSeq: 1 OPTIONS\r\n" +
		"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	if _, err := conn.Write([]byte(msg)); err != nil {
		return fmt.Errorf("healthcheck sip %s: %w", addr, err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		return fmt.Errorf("healthcheck sip %s: no answer: %w", addr, err)
	}
	if !strings.HasPrefix(string(buf[:n]), "SIP/2.0 ") {
		return fmt.Errorf("healthcheck sip %s: not a SIP answer", addr)
	}
	return nil
}
