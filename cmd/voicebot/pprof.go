//go:build pprof

package main

import (
	"net/http"
	_ "net/http/pprof" // profiling for load work only: go build -tags pprof
	"os"
)

// A build with -tags pprof serves the Go profiles on VOICEBOT_PPROF
// (default 127.0.0.1:6060), for measuring where a load run's CPU and
// memory go. Release builds have no such listener.
func init() {
	addr := os.Getenv("VOICEBOT_PPROF")
	if addr == "" {
		addr = "127.0.0.1:6060"
	}
	go func() { _ = http.ListenAndServe(addr, nil) }()
}
