// Package demo is voicebot's built-in demo model: a server that speaks the
// Realtime protocol, GA and beta, over a real WebSocket. It greets, detects
// speech with its own VAD, echoes the caller's utterance back and uses the
// tools it is given on key presses, so a newcomer hears the whole phone path
// before spending a cent. It follows the documented event shapes and
// ordering, cancel and truncate rules and error codes, and holds every client
// event to the API reference (schema.go), as the service would. It keeps
// nothing for inspection: an Observer, when set, is told what happens (the
// test peer, realtime/realtimetest, keeps it for assertions).
package demo

import (
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/realtime"
	"github.com/voicebot/voicebot/resample"
)

//go:embed greeting_8k.s16
var greeting8k []byte

// GreetingText is the transcript of the built-in greeting.
const GreetingText = "Hello! This is the voicebot demo. Say something, and I will say it back to you."

// Options tune the server. The zero value is the demo's behaviour.
type Options struct {
	// Speed is how much faster than real time audio is streamed (default 4):
	// real models generate ahead of playout, and clients must cope.
	Speed float64
	// ChunkMS is the audio per delta event (default 100 ms).
	ChunkMS int
	// FirstAudioDelay is the time a response takes to its first audio, as
	// real models take a few hundred milliseconds (default 0).
	FirstAudioDelay time.Duration
	// Greeting is the audio (PCM16 24 kHz) of a response that has no caller
	// utterance to answer; default: the recorded demo greeting.
	Greeting     []int16
	GreetingText string
	// Reply turns a caller utterance (PCM16 24 kHz) into the reply audio and its
	// transcript; default: the utterance itself (an echo test).
	Reply func(utterance []int16) (audio []int16, transcript string)
	// ToolScript decides, for a user text turn (the bridge sends key
	// presses as "The caller pressed 5."), whether the reply calls a tool;
	// nil keeps the turn a plain beep. Default: DefaultToolScript.
	ToolScript func(text string, tools []Tool) *ToolCall
	// APIKey, when set, must arrive as Bearer token or api-key header.
	APIKey string
	// Voices, when set, are the only voices session.update may choose, as
	// the real service enforces its voice list.
	Voices []string
	// SessionLifetime is how long a session lasts before the server ends it
	// with a session_expired error, as the real service does after 60
	// minutes (30 in beta); its expires_at is announced in session.created.
	// Default: an hour, never enforced.
	SessionLifetime time.Duration
	// Observer, when set, is told of every session's events (tests).
	Observer Observer
	// RefuseBeta makes the server answer a beta-dialect connection as
	// api.openai.com does since May 2026: error beta_api_shape_disabled,
	// then a close with code 4000.
	RefuseBeta bool
	// ForgetClosed drops a session once it ends. The demo model serving
	// real calls sets it (a session holds its conversation's audio);
	// tests keep every session to look at what it received.
	ForgetClosed bool
	Logger       zerolog.Logger
}

// Server is a Realtime protocol server. Serve it on a loopback listener with
// Start, or mount it as an http.Handler.
type Server struct {
	opts     Options
	upgrader websocket.Upgrader

	mu       sync.Mutex
	sessions []*Session
	closed   bool
	refuse   int // handshakes still to refuse
	failing  int // responses still to fail (-1: all)
	failWith string
	ln       net.Listener
	http     *http.Server
	wg       sync.WaitGroup
}

// NewServer returns a server with opts applied over the defaults.
func NewServer(opts Options) *Server {
	if opts.Speed <= 0 {
		opts.Speed = 4
	}
	if opts.ChunkMS <= 0 {
		opts.ChunkMS = 100
	}
	if opts.Greeting == nil {
		opts.Greeting = DefaultGreeting()
		opts.GreetingText = GreetingText
	}
	if opts.ToolScript == nil {
		opts.ToolScript = DefaultToolScript
	}
	if opts.Reply == nil {
		opts.Reply = func(u []int16) ([]int16, string) {
			return u, fmt.Sprintf("(echo of %.1f seconds of your speech)", float64(len(u))/24000)
		}
	}
	return &Server{opts: opts, upgrader: websocket.Upgrader{ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10}}
}

// DefaultGreeting returns the recorded demo greeting as PCM16 at 24 kHz.
func DefaultGreeting() []int16 {
	in := make([]int16, len(greeting8k)/2)
	for i := range in {
		in[i] = int16(binary.LittleEndian.Uint16(greeting8k[2*i:]))
	}
	return resample.MustNew(8000, 24000).Process(nil, in)
}

// Start serves on addr (use 127.0.0.1:0) and returns the ws:// URL to dial.
func (s *Server) Start(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("realtimetest listen: %w", err)
	}
	s.mu.Lock()
	s.ln = ln
	s.http = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.http.Serve(ln)
	}()
	return "ws://" + ln.Addr().String() + "/v1/realtime?model=demo", nil
}

// Close stops the listener, ends every session and waits for them.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	srv := s.http
	sessions := append([]*Session(nil), s.sessions...)
	s.mu.Unlock()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = srv.Shutdown(ctx) // hijacked WebSockets are not tracked by Shutdown
		cancel()
		srv.Close()
	}
	for _, ss := range sessions {
		ss.close()
	}
	s.wg.Wait()
}

// RefuseNext makes the next n handshakes fail with HTTP 503, as an
// overloaded or unreachable service would.
func (s *Server) RefuseNext(n int) {
	s.mu.Lock()
	s.refuse = n
	s.mu.Unlock()
}

// FailNextResponses makes the next n responses, whichever session asks,
// end before they say anything with status failed (a server error) or
// incomplete (a content filter); n < 0 fails every response from now on.
func (s *Server) FailNextResponses(n int, status string) {
	s.mu.Lock()
	s.failing, s.failWith = n, status
	s.mu.Unlock()
}

// takeFailure returns the status the next response must end with, "" for
// none.
func (s *Server) takeFailure() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing == 0 {
		return ""
	}
	if s.failing > 0 {
		s.failing--
	}
	return s.failWith
}

// ServeHTTP upgrades to a WebSocket and runs one session until it ends.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	refused := s.refuse > 0
	if refused {
		s.refuse--
	}
	s.mu.Unlock()
	if refused {
		http.Error(w, `{"error":{"type":"server_error","code":"server_overloaded","message":"The server is overloaded."}}`, http.StatusServiceUnavailable)
		return
	}
	if s.opts.APIKey != "" {
		got := r.Header.Get("api-key")
		if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			got = b
		}
		if got != s.opts.APIKey {
			http.Error(w, `{"error":{"type":"invalid_request_error","code":"invalid_api_key","message":"Incorrect API key provided."}}`, http.StatusUnauthorized)
			return
		}
	}
	dialect := realtime.GA
	if r.Header.Get("OpenAI-Beta") == "realtime=v1" || r.URL.Query().Get("api-version") != "" {
		dialect = realtime.Beta
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	ws.SetReadLimit(realtime.MaxEventBytes)
	sess := newSession(s, ws, dialect, r)
	if o := s.opts.Observer; o != nil {
		o.Opened(sess)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ws.Close()
		return
	}
	s.sessions = append(s.sessions, sess)
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	sess.run()
	if s.opts.ForgetClosed {
		s.mu.Lock()
		for i, other := range s.sessions {
			if other == sess {
				s.sessions = append(s.sessions[:i], s.sessions[i+1:]...)
				break
			}
		}
		s.mu.Unlock()
	}
}

// Observer is told what the sessions do, from their goroutines: it must
// be safe for concurrent use and return at once.
type Observer interface {
	// Opened: a session began.
	Opened(s *Session)
	// Received: a client event arrived (appends included), before it is
	// handled.
	Received(s *Session, typ string, raw []byte)
	// Sent: a server event other than a delta left.
	Sent(s *Session, typ string)
	// SpeechStarted: the VAD heard the caller start speaking.
	SpeechStarted(s *Session)
	// Response: a response started (Status "") or ended.
	Response(s *Session, r ResponseInfo)
	// Violated: the client sent what the service would refuse, or asked
	// for a response without the session's instructions.
	Violated(s *Session, v Violation)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// Tool is a function tool as session.update declares it.
type Tool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
}

// ToolCall is a function call a reply makes, after saying Say.
type ToolCall struct {
	Name      string
	Arguments string // JSON
	Say       []int16
	SayText   string
}

// GoodbyeAudio is what the demo says before it ends a call: 0.8 s of
// falling tones (PCM16 at 24 kHz).
func GoodbyeAudio() []int16 {
	return append(append(beep(0.3, 784), beep(0.25, 659)...), beep(0.25, 523)...)
}

// DefaultToolScript is how the demo model uses the tools it is given, so
// that a caller (or a test) can exercise them with keys: # calls end_call,
// 0 calls transfer_call to the first target, * calls send_dtmf with "1234";
// a text turn saying "use <tool>" calls that tool.
func DefaultToolScript(text string, tools []Tool) *ToolCall {
	has := func(name string) (Tool, bool) {
		for _, t := range tools {
			if t.Name == name {
				return t, true
			}
		}
		return Tool{}, false
	}
	switch {
	case strings.Contains(text, "pressed #"):
		if _, ok := has("end_call"); ok {
			return &ToolCall{Name: "end_call", Arguments: `{"reason":"the caller pressed #"}`, Say: GoodbyeAudio(), SayText: "Goodbye!"}
		}
	case strings.Contains(text, "pressed 0"):
		if t, ok := has("transfer_call"); ok {
			var schema struct {
				Properties struct {
					Target struct {
						Enum []string `json:"enum"`
					} `json:"target"`
				} `json:"properties"`
			}
			target := "operator"
			if json.Unmarshal(t.Parameters, &schema) == nil && len(schema.Properties.Target.Enum) > 0 {
				target = schema.Properties.Target.Enum[0]
			}
			args, _ := json.Marshal(map[string]string{"target": target, "summary": "The caller pressed 0 and asked for a person."})
			return &ToolCall{Name: "transfer_call", Arguments: string(args), Say: beep(0.5, 440), SayText: "Transferring you now."}
		}
	case strings.Contains(text, "pressed *"):
		if _, ok := has("send_dtmf"); ok {
			return &ToolCall{Name: "send_dtmf", Arguments: `{"digits":"1234"}`, Say: beep(0.3, 440), SayText: "Pressing 1 2 3 4."}
		}
	}
	// "use <tool>" calls any declared tool, without arguments: how a
	// newcomer tries an agent's webhook against the demo.
	for _, t := range tools {
		if strings.Contains(text, "use "+t.Name) {
			return &ToolCall{Name: t.Name, Arguments: "{}", Say: beep(0.3, 520), SayText: "Let me look that up."}
		}
	}
	return nil
}
