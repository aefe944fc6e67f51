// Package api is voicebot's HTTP API: place outbound calls, list the calls
// in progress, hang one up. It is off unless configured, and every request
// must carry the configured bearer token.
//
//	POST   /v1/calls       {"to": "+15550100", "from": "", "trunk": "", "agent": "", "instructions": "", "greeting_prompt": "",
//	                        "variables": {"order": "4711"}, "headers": {"X-Order": "4711"}}
//	GET    /v1/calls       the calls in progress
//	GET    /v1/calls/{id}  one call, also for a while after it ended (its outcome)
//	DELETE /v1/calls/{id}  hang up (or cancel while it rings)
//
// And the conversation service (conversations.go): /v1/conversations,
// /v1/turns.
//
// Without the token, for probes and scrapers:
//
//	GET /healthz  the process is up
//	GET /readyz   calls can be taken (SIP listening, registrations up, not draining)
//	GET /metrics  Prometheus metrics
//	GET /ui       the live view: calls in progress with their transcripts
//	              (the page asks for the token; its data requests carry it)
//
// With the token: GET /v1/calls/{id}/events, the call's events as
// Server-Sent Events (everything so far, then live: transcript deltas,
// transcripts, barge-ins, keys, tool calls, the end).
//
// With a Cluster (several instances, one call registry), a call another
// instance holds is forwarded to it, and the list is the whole cluster's.
package api

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/memory"
	"github.com/voicebot/voicebot/record"
	"github.com/voicebot/voicebot/secret"
)

// CallRequest is the body of POST /v1/calls.
type CallRequest struct {
	To             string `json:"to"`              // a number at the trunk, or a sip: URI
	From           string `json:"from"`            // caller ID; default: the trunk's
	Trunk          string `json:"trunk"`           // default: the first trunk
	Agent          string `json:"agent"`           // profile name; default: agent:
	Instructions   string `json:"instructions"`    // replaces the profile's instructions for this call
	GreetingPrompt string `json:"greeting_prompt"` // replaces the profile's greeting prompt
	// Variables are the call's context for the profile's templates
	// ({{var "name"}}); they show in GET /v1/calls/{id} and the records.
	Variables map[string]string `json:"variables"`
	// Headers are sent on the INVITE: X- headers and User-to-User only.
	Headers map[string]string `json:"headers"`
}

// Limits of a call request's context.
const (
	maxVariables     = 32
	maxVariableValue = 1024
)

// checkContext refuses variables a template could not name, or too many.
func (r CallRequest) checkContext() error {
	if len(r.Variables) > maxVariables {
		return &RequestError{Msg: fmt.Sprintf("at most %d variables", maxVariables)}
	}
	for k, v := range r.Variables {
		if !variableName.MatchString(k) {
			return &RequestError{Msg: fmt.Sprintf("variable %q: names are letters, digits, _ or - (at most 64)", k)}
		}
		if len(v) > maxVariableValue {
			return &RequestError{Msg: fmt.Sprintf("variable %q: over %d bytes", k, maxVariableValue)}
		}
	}
	if len(r.Headers) > 16 {
		return &RequestError{Msg: "at most 16 headers"}
	}
	return nil
}

var variableName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Placer places outbound calls. A *RequestError is the caller's mistake
// (400); other errors are 503.
type Placer func(r CallRequest) (id string, err error)

// RequestError is a call request that cannot be placed as asked.
type RequestError struct{ Msg string }

func (e *RequestError) Error() string { return e.Msg }

// Config configures the API.
type Config struct {
	Listen string
	Token  secret.Value
	Calls  *Registry
	Place  Placer
	// Records serves GET /v1/calls/{id}/events when set.
	Records *record.Store
	// Metrics serves /metrics when set.
	Metrics http.Handler
	// Ready says why voicebot cannot take calls now (nil: it can).
	Ready func() error
	// Forget deletes what memory keeps of a caller (DELETE
	// /v1/callers/{id}/memory); nil: no memory store is configured.
	Forget func(ctx context.Context, caller string) (turns int, err error)
	// Conversations serves /v1/conversations and /v1/turns; nil: off.
	Conversations Conversations
	TurnLimits    TurnLimits
	// Cluster finds the calls of the other instances (GET, DELETE and the
	// events of a call held elsewhere are forwarded to its instance; the
	// list shows every instance's); nil: this instance alone.
	Cluster Cluster
	Log     zerolog.Logger
}

// Server is the API on its listener.
type Server struct {
	cfg Config
	ln  net.Listener
	srv *http.Server
	// proxy carries requests forwarded to another instance (Cluster).
	proxy *http.Transport
}

// maxBody bounds a request body.
const maxBody = 64 << 10

// Listen binds the API's address; Serve answers on it.
func Listen(cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("api listen %s: %w", cfg.Listen, err)
	}
	s := &Server{cfg: cfg, ln: ln, proxy: newProxyTransport()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/calls", s.auth(s.placeCall))
	mux.HandleFunc("GET /v1/calls", s.auth(s.listCalls))
	mux.HandleFunc("GET /v1/calls/{id}", s.auth(s.getCall))
	mux.HandleFunc("DELETE /v1/calls/{id}", s.auth(s.hangUp))
	mux.HandleFunc("GET /v1/calls/{id}/events", s.auth(s.callEvents))
	mux.HandleFunc("DELETE /v1/callers/{id}/memory", s.auth(s.forgetCaller))
	s.routeConversations(mux)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui", http.StatusFound) })
	mux.HandleFunc("GET /ui", s.page)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.ready)
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", cfg.Metrics)
	}
	// Browsers ask for an icon: answered without a token, and without a
	// warning in the log.
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/", s.auth(func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethods(mux, r); allow != "" {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed here: "+allow)
			return
		}
		writeError(w, http.StatusNotFound, "no such endpoint: see /v1/calls")
	}))
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}
	return s, nil
}

// allowedMethods lists the methods another route serves r's path with
// ("" when none does: the path is unknown). The catch-all route would
// otherwise answer a known path's wrong method 404.
func allowedMethods(mux *http.ServeMux, r *http.Request) string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	return strings.Join(allow, ", ")
}

// Addr is where the API listens.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve answers until ctx ends, then closes, giving requests in flight a second.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	s.cfg.Log.Info().Str("listen", s.Addr()).Msg("api: listening")
	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("api: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.srv.Shutdown(sctx)
	_ = s.srv.Close()
	s.proxy.CloseIdleConnections()
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("api: %w", err)
	}
	return nil
}

// ready answers the readiness probe: 503 with the reason while voicebot
// cannot take calls, so a load balancer sends them elsewhere.
func (s *Server) ready(w http.ResponseWriter, _ *http.Request) {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// auth lets through requests with the bearer token.
func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	want := []byte("Bearer " + s.cfg.Token.Reveal())
	return func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if s.cfg.Token == "" || subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="voicebot"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			s.cfg.Log.Warn().Str("remote", r.RemoteAddr).Str("path", r.URL.Path).Msg("api: unauthorized request")
			return
		}
		h(w, r)
	}
}

func (s *Server) placeCall(w http.ResponseWriter, r *http.Request) {
	var req CallRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	req.To = strings.TrimSpace(req.To)
	if req.To == "" {
		writeError(w, http.StatusBadRequest, `"to" is required: a number or a sip: URI`)
		return
	}
	if err := req.checkContext(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	id, err := s.cfg.Place(req)
	if err != nil {
		var re *RequestError
		if errors.As(err, &re) {
			writeError(w, http.StatusBadRequest, re.Msg)
			return
		}
		s.cfg.Log.Warn().Err(err).Msg("api: call not placed")
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	s.cfg.Log.Info().Str("call_id", id).Str("to", req.To).Str("agent", cmp.Or(req.Agent, "default")).Msg("api: placing call")
	info, ok := s.cfg.Calls.Get(id)
	if !ok {
		info = CallInfo{ID: id, Direction: "outbound", To: req.To, State: "dialing"}
	}
	w.Header().Set("Location", "/v1/calls/"+id)
	writeJSON(w, http.StatusCreated, info)
}

func (s *Server) listCalls(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"calls": s.clusterCalls(r, s.cfg.Calls.Active())})
}

func (s *Server) getCall(w http.ResponseWriter, r *http.Request) {
	info, ok := s.cfg.Calls.Get(r.PathValue("id"))
	if !ok {
		if c := s.cluster(r); c != nil {
			if rem, ok := s.find(w, r, c, "no such call"); ok {
				if rem.Info.Ended != nil {
					writeJSON(w, http.StatusOK, rem.Info) // final: its instance need not be asked
					return
				}
				s.forward(w, r, rem.API)
			}
			return
		}
		writeError(w, http.StatusNotFound, "no such call")
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) hangUp(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	info, ok := s.cfg.Calls.Hangup(id)
	if !ok {
		if c := s.cluster(r); c != nil {
			if rem, ok := s.find(w, r, c, "no such call in progress"); ok {
				if rem.Info.Ended != nil {
					writeError(w, http.StatusNotFound, "no such call in progress")
					return
				}
				s.forward(w, r, rem.API)
			}
			return
		}
		writeError(w, http.StatusNotFound, "no such call in progress")
		return
	}
	s.cfg.Log.Info().Str("call_id", id).Msg("api: hanging up")
	writeJSON(w, http.StatusAccepted, info)
}

// forgetCaller erases a caller's memory: the right to be forgotten, or a
// test number's history. The id is the caller's number or identity as
// memory keys it ("+15550100000"; punctuation is ignored).
func (s *Server) forgetCaller(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Forget == nil {
		writeError(w, http.StatusNotFound, "no memory store is configured (no profile has memory.enabled)")
		return
	}
	id := memory.Identity(r.PathValue("id"))
	if id == "" {
		writeError(w, http.StatusBadRequest, "not a caller identity (a number or a SIP user)")
		return
	}
	n, err := s.cfg.Forget(r.Context(), id)
	if err != nil {
		s.cfg.Log.Warn().Err(err).Str("caller", id).Msg("api: memory not deleted")
		writeError(w, http.StatusServiceUnavailable, "the memory store is unavailable; nothing was deleted")
		return
	}
	s.cfg.Log.Info().Str("caller", id).Int("turns", n).Msg("api: caller's memory deleted")
	writeJSON(w, http.StatusOK, map[string]any{"caller": id, "deleted_turns": n})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
