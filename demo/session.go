package demo

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/voicebot/voicebot/realtime"
	"github.com/voicebot/voicebot/resample"
)

// Session is one client connection and its conversation.
type Session struct {
	srv     *Server
	ws      *websocket.Conn
	dialect realtime.Dialect
	Header  http.Header
	Query   string

	wmu sync.Mutex // gorilla allows one writer at a time

	mu         sync.Mutex
	appended   int // input_audio_buffer.append events: the first is checked
	nextID     int
	input      realtime.AudioFormat
	output     realtime.AudioFormat
	vad        vadConfig
	transcribe bool
	updated    bool
	items      map[string]*item
	order      []string // item ids in conversation order
	active     *response
	closed     bool
	closedCh   chan struct{}
	streamWG   sync.WaitGroup
	expires    time.Time

	// Input timeline and VAD state (guarded by mu; only the reader changes them).
	upsampler    *resample.Resampler
	inputSamples int     // 24 kHz samples appended since the session began
	window       []int16 // partial 20 ms window
	speech       speechState
	prefix       []int16 // recent audio kept for prefix padding
	utterance    []int16
	pending      []int16 // committed utterance not yet answered
	pendingText  string  // user text item not yet answered
	pendingTool  string  // function_call_output not yet answered
	buffered     int     // ms in the input buffer since the last commit
	tools        []Tool  // declared in session.update
	instructions string  // the session's, from session.update
	// urlModel is the model the connection was opened for (the URL's
	// model, or its deployment): session.update cannot change it.
	urlModel string
}

type vadConfig struct {
	enabled           bool
	kind              string
	thresholdRMS      float64
	prefixPaddingMS   int
	silenceDurationMS int
	createResponse    bool
	interruptResponse bool
}

type speechState struct {
	inSpeech     bool
	voicedMS     int // consecutive voiced ms while not in speech
	silentMS     int // consecutive silent ms while in speech
	startMS      int
	lastVoicedMS int
	itemID       string
}

type item struct {
	id         string
	role       string
	kind       string // message, function_call, function_call_output
	audioMS    int    // assistant audio generated so far
	hasAudio   bool
	transcript string
	truncated  bool
	callID     string
}

type response struct {
	id       string
	itemID   string
	call     *ToolCall // a function call the response makes after speaking
	callID   string
	callItem string
	cancel   chan string // reason
	done     chan struct{}
	metadata map[string]string // echoed in response.created and response.done
	textOnly bool              // a text answer, no audio
	info     ResponseInfo      // for the observer
}

const (
	windowSamples = 480 // 20 ms at 24 kHz
	minSpeechMS   = 60  // voiced time before speech_started
	maxUtterance  = 30 * 24000
)

func newSession(srv *Server, ws *websocket.Conn, d realtime.Dialect, r *http.Request) *Session {
	lifetime := srv.opts.SessionLifetime
	if lifetime <= 0 {
		lifetime = time.Hour
	}
	return &Session{
		expires: time.Now().Add(lifetime),
		srv:     srv, ws: ws, dialect: d, Header: r.Header.Clone(), Query: r.URL.RawQuery,
		urlModel:  cmp.Or(r.URL.Query().Get("model"), r.URL.Query().Get("deployment")),
		items:     map[string]*item{},
		closedCh:  make(chan struct{}),
		upsampler: resample.MustNew(8000, 24000),
		vad: vadConfig{enabled: true, kind: "server_vad", thresholdRMS: rmsForThreshold(0.5),
			prefixPaddingMS: 300, silenceDurationMS: 500, createResponse: true, interruptResponse: true},
	}
}

// Violation is something a client sent that the real service would refuse
// (kind "schema": a field the API reference does not have, a missing or
// wrong one) or that it would accept with a result nobody wants (kind
// "persona": a response whose instructions drop the session's).
type Violation struct {
	Kind    string
	Event   string // the client event's type
	EventID string
	Detail  string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s: %s %s: %s", v.Kind, v.Event, v.EventID, v.Detail)
}

// violate logs what the real service would refuse (or get wrong), and
// tells the observer.
func (s *Session) violate(kind, event, eventID, detail string) {
	s.srv.opts.Logger.Warn().Str("kind", kind).Str("event", event).Str("event_id", eventID).Msg("demo model: " + detail)
	if o := s.srv.opts.Observer; o != nil {
		o.Violated(s, Violation{Kind: kind, Event: event, EventID: eventID, Detail: detail})
	}
}

// Instructions are the session's instructions, as session.update set them.
func (s *Session) Instructions() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.instructions
}

// Dialect is the dialect the client connected with.
func (s *Session) Dialect() realtime.Dialect { return s.dialect }

// InputMS is how much caller audio has been appended, in ms.
func (s *Session) InputMS() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inputSamples / 24
}

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.closedCh }

// Drop closes the connection abruptly, as a network failure would.
func (s *Session) Drop() { s.ws.Close() }

// Expire ends the session as the service does at its maximum duration,
// whatever its expires_at said: a session_expired error, then the close.
func (s *Session) Expire() {
	s.sendError(realtime.CodeSessionExpired, "Your session hit the maximum duration of 60 minutes.", "", "")
	s.closeWith(websocket.CloseNormalClosure, "session expired")
}

// closeWith sends a close frame with code and reason, then ends the session.
func (s *Session) closeWith(code int, reason string) {
	s.wmu.Lock()
	_ = s.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	s.wmu.Unlock()
	s.close()
}

func (s *Session) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.closedCh)
	active := s.active
	s.mu.Unlock()
	if active != nil {
		select {
		case active.cancel <- "":
		default:
		}
	}
	s.ws.Close()
}

func (s *Session) run() {
	log := s.srv.opts.Logger
	log.Debug().Str("dialect", s.dialect.String()).Msg("demo model: session opened")
	defer func() {
		s.close()
		s.streamWG.Wait()
		log.Debug().Int("input_ms", s.InputMS()).Msg("demo model: session closed")
	}()
	if s.dialect == realtime.Beta && s.srv.opts.RefuseBeta {
		// api.openai.com since May 2026: the handshake succeeds, then the
		// beta shape is refused and the socket closed with 4000.
		s.sendError(realtime.CodeBetaShapeDisabled, "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.", "", "")
		s.closeWith(4000, "beta api shape disabled")
		return
	}
	session := s.sessionObject()
	s.send(map[string]any{"type": "session.created", "session": session})
	if s.srv.opts.SessionLifetime > 0 {
		expiry := time.AfterFunc(time.Until(s.expires), func() {
			s.sendError(realtime.CodeSessionExpired, "Your session hit the maximum duration of "+s.srv.opts.SessionLifetime.String()+".", "", "")
			s.closeWith(websocket.CloseNormalClosure, "session expired")
		})
		defer expiry.Stop()
	}
	if s.dialect == realtime.GA {
		s.send(map[string]any{"type": "conversation.created", "conversation": map[string]any{"id": s.newID("conv"), "object": "realtime.conversation"}})
	}
	for {
		typ, data, err := s.ws.ReadMessage()
		if err != nil {
			return
		}
		if typ != websocket.TextMessage {
			continue
		}
		s.handle(data)
	}
}

func (s *Session) newID(prefix string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newIDLocked(prefix)
}

func (s *Session) newIDLocked(prefix string) string {
	s.nextID++
	return fmt.Sprintf("%s_%06d", prefix, s.nextID)
}

// send writes one server event, adding an event_id.
func (s *Session) send(ev map[string]any) {
	ev["event_id"] = s.newID("event")
	data, err := json.Marshal(ev)
	if err != nil {
		return
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	err = s.ws.WriteMessage(websocket.TextMessage, data)
	if o := s.srv.opts.Observer; o != nil {
		if typ, _ := ev["type"].(string); err == nil && !strings.HasSuffix(typ, ".delta") {
			o.Sent(s, typ)
		}
	}
}

func (s *Session) sendError(code, message, param, clientEventID string) {
	typ := "invalid_request_error"
	s.send(map[string]any{"type": "error", "error": map[string]any{
		"type": typ, "code": nullable(code), "message": message, "param": nullable(param), "event_id": nullable(clientEventID),
	}})
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// name returns the dialect's name for an event known by its GA name.
func (s *Session) name(ga string) string {
	if s.dialect == realtime.GA {
		return ga
	}
	switch ga {
	case "response.output_audio.delta":
		return "response.audio.delta"
	case "response.output_audio.done":
		return "response.audio.done"
	case "response.output_audio_transcript.delta":
		return "response.audio_transcript.delta"
	case "response.output_audio_transcript.done":
		return "response.audio_transcript.done"
	case "conversation.item.added":
		return "conversation.item.created"
	}
	return ga
}

func (s *Session) handle(data []byte) {
	var head struct {
		Type    string `json:"type"`
		EventID string `json:"event_id"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		s.sendError("invalid_event", "Invalid JSON: "+err.Error(), "", "")
		return
	}
	if head.Type == "" {
		s.sendError("invalid_event", "The 'type' field is missing.", "", head.EventID)
		return
	}
	if o := s.srv.opts.Observer; o != nil {
		o.Received(s, head.Type, data)
	}
	check := true
	if head.Type == "input_audio_buffer.append" {
		// Appends are the one event sent every few milliseconds, all
		// built by one function: the first of a session is checked.
		s.mu.Lock()
		s.appended++
		check = s.appended == 1
		s.mu.Unlock()
	}
	if check {
		if err := ValidateClientEvent(s.dialect, data); err != nil {
			// The service refuses an event it does not know the shape of,
			// whole: so does the demo, and the tests hear of it.
			var se *SchemaError
			code, param := "invalid_value", ""
			if errors.As(err, &se) {
				code, param = se.Code, se.Param
			}
			s.violate("schema", head.Type, head.EventID, err.Error())
			s.sendError(code, err.Error(), param, head.EventID)
			return
		}
	}

	switch head.Type {
	case "session.update":
		s.onSessionUpdate(data, head.EventID)
	case "input_audio_buffer.append":
		s.onAppend(data, head.EventID)
	case "input_audio_buffer.commit":
		s.onCommit(head.EventID)
	case "input_audio_buffer.clear":
		s.mu.Lock()
		s.buffered = 0
		s.utterance = s.utterance[:0]
		s.mu.Unlock()
		s.send(map[string]any{"type": "input_audio_buffer.cleared"})
	case "response.create":
		s.onResponseCreate(data, head.EventID)
	case "response.cancel":
		s.onResponseCancel(data, head.EventID)
	case "conversation.item.truncate":
		s.onTruncate(data, head.EventID)
	case "conversation.item.create":
		s.onItemCreate(data, head.EventID)
	case "conversation.item.delete":
		s.onItemDelete(data, head.EventID)
	default:
		s.sendError("invalid_value", fmt.Sprintf("Invalid value: '%s'. Supported values are client event types.", head.Type), "type", head.EventID)
	}
}
