package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/voicebot/voicebot/record"
)

//go:embed ui/index.html
var indexHTML []byte

// sseKeepalive is how often an idle event stream gets a comment, so
// proxies and browsers keep it open.
const sseKeepalive = 15 * time.Second

// callEvents streams a call's events as Server-Sent Events: everything so
// far, then each as it happens (transcript deltas included), until the call
// ends or the client goes.
func (s *Server) callEvents(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Records == nil {
		writeError(w, http.StatusNotFound, "call events are off")
		return
	}
	c, ok := s.cfg.Records.Get(r.PathValue("id"))
	rc := http.NewResponseController(w)
	if !ok {
		if cl := s.cluster(r); cl != nil {
			if rem, ok := s.find(w, r, cl, "no such call"); ok {
				// Streamed from the call's instance, as long as it lasts.
				_ = rc.SetReadDeadline(time.Time{})
				_ = rc.SetWriteDeadline(time.Time{})
				s.forward(w, r, rem.API)
			}
			return
		}
		writeError(w, http.StatusNotFound, "no such call")
		return
	}
	// A stream lives as long as its call: past the server's read and write
	// timeouts (each write gets its own deadline below).
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	past, live, cancel := c.Subscribe()
	defer cancel()
	n := 0
	send := func(ev record.Event) bool {
		b, err := json.Marshal(ev)
		if err != nil {
			return true
		}
		n++
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(w, "id: %d\nevent: %v\ndata: %s\n\n", n, ev["type"], b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	for _, ev := range past {
		if !send(ev) {
			return
		}
	}
	keep := time.NewTicker(sseKeepalive)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-live:
			if !ok {
				return // the call ended; its last event was sent
			}
			if !send(ev) {
				return
			}
		case <-keep.C:
			_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

// page serves the live view: the calls in progress with their transcripts.
// It holds no data; it fetches with the token the user gives it.
func (s *Server) page(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
	w.Header().Set("X-Frame-Options", "DENY")
	_, _ = w.Write(indexHTML)
}
