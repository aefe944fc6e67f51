package main

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/server"
)

// The container's probe: a running voicebot answers it through its API
// when that is on, else over SIP; nothing listening fails it.
func TestHealthcheck(t *testing.T) {
	for _, api := range []bool{true, false} {
		cfg := config.Default()
		cfg.SIP.Listen = "0.0.0.0:0" // as the image binds: the probe goes to loopback
		cfg.Memory.Path = filepath.Join(t.TempDir(), "memory.db")
		if api {
			cfg.API.Listen, cfg.API.Token = "127.0.0.1:0", "health-token-0123456789"
		}
		srv, err := server.New(cfg, zerolog.Nop(), server.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		<-srv.Ready()
		probe := cfg
		probe.SIP.Listen = srv.SIPAddr().String()
		if api {
			probe.API.Listen = srv.APIAddr()
		}
		if err := healthcheck(probe); err != nil {
			t.Errorf("api %v: a running voicebot failed the probe: %v", api, err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if err := healthcheck(probe); err == nil {
			t.Errorf("api %v: a stopped voicebot passed the probe", api)
		}
	}
	if got := local("0.0.0.0:5060"); got != "127.0.0.1:5060" {
		t.Errorf("local(0.0.0.0:5060) = %s", got)
	}
	if got := local(net.JoinHostPort("::", "8080")); got != "[::1]:8080" {
		t.Errorf("local([::]:8080) = %s", got)
	}
}
