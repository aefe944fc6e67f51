package realtimetest

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/zaf/g711"

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
	received   []Received
	sent       []SentEvent
	appended   int // input_audio_buffer.append events
	speeches   int // speech_started events sent
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
	urlModel   string
	responses  []ResponseInfo
	violations []Violation
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

// Violations returns what the session received that the real service
// would refuse, or that ran without the session's instructions.
func (s *Session) Violations() []Violation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Violation(nil), s.violations...)
}

func (s *Session) violate(kind, event, eventID, detail string) {
	s.srv.opts.Logger.Warn().Str("kind", kind).Str("event", event).Str("event_id", eventID).Msg("demo model: " + detail)
	s.mu.Lock()
	s.violations = append(s.violations, Violation{Kind: kind, Event: event, EventID: eventID, Detail: detail})
	s.mu.Unlock()
}

// Instructions are the session's instructions, as session.update set them.
func (s *Session) Instructions() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.instructions
}

// Dialect is the dialect the client connected with.
func (s *Session) Dialect() realtime.Dialect { return s.dialect }

// Received returns the client events so far (input_audio_buffer.append
// events are counted by Appends, not kept).
func (s *Session) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.received...)
}

// ReceivedOfType returns the received events of one type.
func (s *Session) ReceivedOfType(typ string) []Received {
	var out []Received
	for _, r := range s.Received() {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// Appends is how many input_audio_buffer.append events arrived.
func (s *Session) Appends() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appended
}

// SpeechStarts is how many times the VAD heard the caller start speaking.
func (s *Session) SpeechStarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.speeches
}

// InputMS is how much caller audio has been appended, in ms.
func (s *Session) InputMS() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inputSamples / 24
}

// WaitFor polls until a client event of typ has arrived, up to timeout.
func (s *Session) WaitFor(typ string, timeout time.Duration) (Received, error) {
	deadline := time.Now().Add(timeout)
	for {
		if evs := s.ReceivedOfType(typ); len(evs) > 0 {
			return evs[0], nil
		}
		if time.Now().After(deadline) {
			return Received{}, fmt.Errorf("%w: %s", ErrNotFound, typ)
		}
		time.Sleep(5 * time.Millisecond)
	}
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
		log.Debug().Int("appends", s.Appends()).Int("utterances", s.SpeechStarts()).Msg("demo model: session closed")
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
	if typ, _ := ev["type"].(string); err == nil && !strings.HasSuffix(typ, ".delta") {
		s.mu.Lock()
		s.sent = append(s.sent, SentEvent{Type: typ, At: time.Now()})
		s.mu.Unlock()
	}
}

// SentEvent is a server event as it left, with when (deltas are not kept).
type SentEvent struct {
	Type string
	At   time.Time
}

// Sent returns the non-delta events sent so far, in order.
func (s *Session) Sent() []SentEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SentEvent(nil), s.sent...)
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
	s.mu.Lock()
	check := true
	if head.Type == "input_audio_buffer.append" {
		// Appends are the one event sent every few milliseconds, all
		// built by one function: the first of a session is checked.
		s.appended++
		check = s.appended == 1
	} else {
		s.received = append(s.received, Received{Type: head.Type, Raw: append(json.RawMessage(nil), data...), At: time.Now()})
	}
	s.mu.Unlock()
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

// sessionUpdateGA and sessionUpdateBeta are the parts of session.update the
// server reads in each dialect.
type sessionUpdateGA struct {
	Session struct {
		Type         *string `json:"type"`
		Model        *string `json:"model"`
		Instructions *string `json:"instructions"`
		Audio        struct {
			Input struct {
				Format        *struct{ Type string } `json:"format"`
				Transcription json.RawMessage        `json:"transcription"`
				TurnDetection json.RawMessage        `json:"turn_detection"`
			} `json:"input"`
			Output struct {
				Format *struct{ Type string } `json:"format"`
				Voice  *string                `json:"voice"`
			} `json:"output"`
		} `json:"audio"`
		Temperature *float64 `json:"temperature"`
		Modalities  []string `json:"modalities"`
		Tools       *[]Tool  `json:"tools"`
	} `json:"session"`
}

type sessionUpdateBeta struct {
	Session struct {
		Type              *string         `json:"type"`
		Model             *string         `json:"model"`
		Instructions      *string         `json:"instructions"`
		Voice             *string         `json:"voice"`
		InputAudioFormat  *string         `json:"input_audio_format"`
		OutputAudioFormat *string         `json:"output_audio_format"`
		Transcription     json.RawMessage `json:"input_audio_transcription"`
		TurnDetection     json.RawMessage `json:"turn_detection"`
		Tools             *[]Tool         `json:"tools"`
	} `json:"session"`
}

type turnDetectionWire struct {
	Type              string   `json:"type"`
	Threshold         *float64 `json:"threshold"`
	PrefixPaddingMS   *int     `json:"prefix_padding_ms"`
	SilenceDurationMS *int     `json:"silence_duration_ms"`
	CreateResponse    *bool    `json:"create_response"`
	InterruptResponse *bool    `json:"interrupt_response"`
}

func (s *Session) onSessionUpdate(data []byte, eventID string) {
	var (
		in, out             *realtime.AudioFormat
		turn, transcribeRM  json.RawMessage
		tools               *[]Tool
		model, instructions *string
	)
	parseFormat := func(name, param string) (*realtime.AudioFormat, bool) {
		f, ok := realtime.ParseAudioFormat(name)
		if !ok {
			s.sendError("invalid_value", fmt.Sprintf("Invalid value: '%s'.", name), param, eventID)
			return nil, false
		}
		return &f, true
	}
	if s.dialect == realtime.GA {
		var u sessionUpdateGA
		if err := json.Unmarshal(data, &u); err != nil {
			s.sendError("invalid_value", "Invalid session: "+err.Error(), "session", eventID)
			return
		}
		if u.Session.Type == nil || *u.Session.Type != "realtime" {
			s.sendError("missing_required_parameter", "Missing required parameter: 'session.type'.", "session.type", eventID)
			return
		}
		if u.Session.Temperature != nil {
			s.sendError("unknown_parameter", "Unknown parameter: 'session.temperature'.", "session.temperature", eventID)
			return
		}
		if u.Session.Modalities != nil {
			s.sendError("unknown_parameter", "Unknown parameter: 'session.modalities'.", "session.modalities", eventID)
			return
		}
		var ok bool
		if f := u.Session.Audio.Input.Format; f != nil {
			if in, ok = parseFormat(f.Type, "session.audio.input.format.type"); !ok {
				return
			}
		}
		if f := u.Session.Audio.Output.Format; f != nil {
			if out, ok = parseFormat(f.Type, "session.audio.output.format.type"); !ok {
				return
			}
		}
		turn, transcribeRM, tools = u.Session.Audio.Input.TurnDetection, u.Session.Audio.Input.Transcription, u.Session.Tools
		model, instructions = u.Session.Model, u.Session.Instructions
		if !s.voiceAllowed(u.Session.Audio.Output.Voice, "session.audio.output.voice", eventID) {
			return
		}
	} else {
		var u sessionUpdateBeta
		if err := json.Unmarshal(data, &u); err != nil {
			s.sendError("invalid_value", "Invalid session: "+err.Error(), "session", eventID)
			return
		}
		if u.Session.Type != nil {
			s.sendError("unknown_parameter", "Unknown parameter: 'session.type'.", "session.type", eventID)
			return
		}
		var ok bool
		if f := u.Session.InputAudioFormat; f != nil {
			if in, ok = parseFormat(*f, "session.input_audio_format"); !ok {
				return
			}
		}
		if f := u.Session.OutputAudioFormat; f != nil {
			if out, ok = parseFormat(*f, "session.output_audio_format"); !ok {
				return
			}
		}
		turn, transcribeRM, tools = u.Session.TurnDetection, u.Session.Transcription, u.Session.Tools
		model, instructions = u.Session.Model, u.Session.Instructions
		if !s.voiceAllowed(u.Session.Voice, "session.voice", eventID) {
			return
		}
	}
	if model != nil && s.urlModel != "" && *model != s.urlModel {
		// A session's model is the one it was opened for (an Azure
		// deployment's, the URL's): session.update cannot change it.
		s.sendError("invalid_value", fmt.Sprintf("Invalid value: '%s'. The session's model is '%s' and cannot be changed.", *model, s.urlModel), "session.model", eventID)
		return
	}
	if tools != nil {
		for i, t := range *tools {
			if t.Type != "function" || t.Name == "" {
				s.sendError("invalid_value", fmt.Sprintf("Invalid tool at index %d: want type 'function' and a name.", i), fmt.Sprintf("session.tools[%d]", i), eventID)
				return
			}
			if len(t.Parameters) > 0 && !json.Valid(t.Parameters) {
				s.sendError("invalid_value", "Invalid tool parameters.", fmt.Sprintf("session.tools[%d].parameters", i), eventID)
				return
			}
		}
	}
	s.mu.Lock()
	if tools != nil {
		s.tools = *tools
	}
	if instructions != nil {
		s.instructions = *instructions
	}
	if in != nil {
		s.input = *in
	}
	if out != nil {
		s.output = *out
	}
	if len(transcribeRM) > 0 {
		s.transcribe = string(transcribeRM) != "null"
	}
	if len(turn) > 0 {
		if string(turn) == "null" {
			s.vad.enabled = false
		} else {
			var t turnDetectionWire
			if err := json.Unmarshal(turn, &t); err == nil {
				v := vadConfig{enabled: true, kind: t.Type, thresholdRMS: rmsForThreshold(0.5),
					prefixPaddingMS: 300, silenceDurationMS: 500, createResponse: true, interruptResponse: true}
				if t.Threshold != nil {
					v.thresholdRMS = rmsForThreshold(*t.Threshold)
				}
				if t.PrefixPaddingMS != nil {
					v.prefixPaddingMS = *t.PrefixPaddingMS
				}
				if t.SilenceDurationMS != nil {
					v.silenceDurationMS = *t.SilenceDurationMS
				}
				if t.Type == "semantic_vad" {
					v.silenceDurationMS = 700 // "auto" eagerness, roughly
				}
				if t.CreateResponse != nil {
					v.createResponse = *t.CreateResponse
				}
				if t.InterruptResponse != nil {
					v.interruptResponse = *t.InterruptResponse
				}
				s.vad = v
			}
		}
	}
	s.updated = true
	s.mu.Unlock()
	s.send(map[string]any{"type": "session.updated", "session": s.sessionObject()})
}

func (s *Session) voiceAllowed(voice *string, param, eventID string) bool {
	if voice == nil || len(s.srv.opts.Voices) == 0 {
		return true
	}
	for _, v := range s.srv.opts.Voices {
		if v == *voice {
			return true
		}
	}
	s.sendError("invalid_value", fmt.Sprintf("Invalid value: '%s'. Supported values are: %s.", *voice, strings.Join(s.srv.opts.Voices, ", ")), param, eventID)
	return false
}

// rmsForThreshold maps the 0…1 VAD threshold onto an energy level: 0.5 is
// about -40 dBFS, well above line noise and well below speech.
func rmsForThreshold(t float64) float64 {
	return 32768 * math.Pow(10, (-60+40*t)/20)
}

func (s *Session) sessionObject() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	expires := s.expires.Unix()
	if s.dialect == realtime.Beta {
		return map[string]any{
			"id": "sess_demo", "object": "realtime.session", "model": "demo", "expires_at": expires,
			"modalities": []string{"text", "audio"}, "voice": "demo",
			"input_audio_format": formatBeta(s.input), "output_audio_format": formatBeta(s.output),
		}
	}
	return map[string]any{
		"type": "realtime", "id": "sess_demo", "object": "realtime.session", "model": "demo", "expires_at": expires,
		"output_modalities": []string{"audio"},
		"audio": map[string]any{
			"input":  map[string]any{"format": formatGA(s.input)},
			"output": map[string]any{"format": formatGA(s.output), "voice": "demo"},
		},
	}
}

func formatBeta(f realtime.AudioFormat) string {
	return map[realtime.AudioFormat]string{realtime.PCM16: "pcm16", realtime.PCMU: "g711_ulaw", realtime.PCMA: "g711_alaw"}[f]
}

func formatGA(f realtime.AudioFormat) map[string]any {
	switch f {
	case realtime.PCMU:
		return map[string]any{"type": "audio/pcmu"}
	case realtime.PCMA:
		return map[string]any{"type": "audio/pcma"}
	}
	return map[string]any{"type": "audio/pcm", "rate": 24000}
}

func (s *Session) onAppend(data []byte, eventID string) {
	var ev struct {
		Audio string `json:"audio"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		s.sendError("invalid_value", "Invalid audio.", "audio", eventID)
		return
	}
	raw, err := base64.StdEncoding.DecodeString(ev.Audio)
	if err != nil {
		s.sendError("invalid_value", "Invalid 'audio'. Expected base64-encoded audio bytes.", "audio", eventID)
		return
	}
	s.mu.Lock()
	pcm := s.toPCM24(raw)
	events := s.feedVAD(pcm)
	s.mu.Unlock()
	for _, e := range events {
		e()
	}
}

// toPCM24 converts input-format bytes to PCM16 at 24 kHz. Caller holds mu.
func (s *Session) toPCM24(raw []byte) []int16 {
	switch s.input {
	case realtime.PCMU, realtime.PCMA:
		pcm8 := make([]int16, len(raw))
		for i, b := range raw {
			if s.input == realtime.PCMU {
				pcm8[i] = g711.DecodeUlawFrame(b)
			} else {
				pcm8[i] = g711.DecodeAlawFrame(b)
			}
		}
		return s.upsampler.Process(nil, pcm8)
	}
	pcm := make([]int16, len(raw)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	return pcm
}

// feedVAD runs the energy VAD over pcm in 20 ms windows on the input
// timeline. It returns the events to send, in order, once mu is released.
func (s *Session) feedVAD(pcm []int16) []func() {
	var out []func()
	for len(pcm) > 0 {
		n := min(windowSamples-len(s.window), len(pcm))
		s.window = append(s.window, pcm[:n]...)
		pcm = pcm[n:]
		if len(s.window) < windowSamples {
			break
		}
		out = append(out, s.vadWindow(s.window)...)
		s.window = s.window[:0]
	}
	return out
}

func (s *Session) vadWindow(w []int16) []func() {
	s.inputSamples += len(w)
	s.buffered += 20
	nowMS := s.inputSamples / 24 // end of this window on the input timeline
	var sum float64
	for _, v := range w {
		sum += float64(v) * float64(v)
	}
	voiced := math.Sqrt(sum/float64(len(w))) > s.vad.thresholdRMS
	sp := &s.speech
	var out []func()

	if !sp.inSpeech {
		s.prefix = append(s.prefix, w...)
		keep := (s.vad.prefixPaddingMS + minSpeechMS + 20) * 24
		if len(s.prefix) > keep {
			s.prefix = append(s.prefix[:0], s.prefix[len(s.prefix)-keep:]...)
		}
		if !s.vad.enabled {
			return nil
		}
		if voiced {
			sp.voicedMS += 20
		} else {
			sp.voicedMS = 0
		}
		if sp.voicedMS >= minSpeechMS {
			sp.inSpeech = true
			sp.silentMS = 0
			sp.lastVoicedMS = nowMS
			start := nowMS - sp.voicedMS - s.vad.prefixPaddingMS
			sp.startMS = max(0, start)
			sp.itemID = s.newIDLocked("item")
			s.speeches++
			keep := min(len(s.prefix), (nowMS-sp.startMS)*24)
			s.utterance = append(s.utterance[:0], s.prefix[len(s.prefix)-keep:]...)
			startMS, itemID := sp.startMS, sp.itemID
			out = append(out, func() {
				s.send(map[string]any{"type": "input_audio_buffer.speech_started", "audio_start_ms": startMS, "item_id": itemID})
			})
			if s.active != nil && s.vad.interruptResponse {
				active := s.active
				out = append(out, func() { s.cancelResponse(active, "turn_detected") })
			}
		}
		return out
	}

	if len(s.utterance) < maxUtterance {
		s.utterance = append(s.utterance, w...)
	}
	if voiced {
		sp.silentMS = 0
		sp.lastVoicedMS = nowMS
		return nil
	}
	sp.silentMS += 20
	if sp.silentMS < s.vad.silenceDurationMS {
		return nil
	}
	// End of the turn: stop, commit, item, transcript, maybe a response.
	sp.inSpeech = false
	sp.voicedMS = 0
	endMS, itemID := nowMS, sp.itemID
	voicedLen := (sp.lastVoicedMS - sp.startMS) * 24
	utter := append([]int16(nil), s.utterance[:min(len(s.utterance), max(0, voicedLen))]...)
	s.utterance = s.utterance[:0]
	s.prefix = s.prefix[:0]
	s.buffered = 0
	prev := s.lastItemLocked()
	s.addItemLocked(&item{id: itemID, role: "user", kind: "message"})
	s.pending = utter
	transcribe, create := s.transcribe, s.vad.createResponse
	out = append(out, func() {
		s.send(map[string]any{"type": "input_audio_buffer.speech_stopped", "audio_end_ms": endMS, "item_id": itemID})
		s.send(map[string]any{"type": "input_audio_buffer.committed", "previous_item_id": nullable(prev), "item_id": itemID})
		s.sendUserItem(prev, itemID)
		if transcribe {
			s.send(map[string]any{"type": "conversation.item.input_audio_transcription.completed", "item_id": itemID, "content_index": 0,
				"transcript": fmt.Sprintf("(%.1f seconds of speech)", float64(len(utter))/24000),
				"usage":      map[string]any{"type": "duration", "seconds": float64(len(utter)) / 24000}})
		}
		if create {
			s.startResponse(responseRequest{})
		}
	})
	return out
}

func (s *Session) sendUserItem(prev, itemID string) {
	it := map[string]any{"id": itemID, "object": "realtime.item", "type": "message", "status": "completed", "role": "user",
		"content": []map[string]any{{"type": "input_audio", "transcript": nil}}}
	s.send(map[string]any{"type": s.name("conversation.item.added"), "previous_item_id": nullable(prev), "item": it})
	if s.dialect == realtime.GA {
		s.send(map[string]any{"type": "conversation.item.done", "previous_item_id": nullable(prev), "item": it})
	}
}

func (s *Session) lastItemLocked() string {
	if len(s.order) == 0 {
		return ""
	}
	return s.order[len(s.order)-1]
}

func (s *Session) addItemLocked(it *item) {
	s.items[it.id] = it
	s.order = append(s.order, it.id)
}

func (s *Session) onCommit(eventID string) {
	s.mu.Lock()
	if s.buffered < 100 {
		ms := s.buffered
		s.mu.Unlock()
		s.sendError("input_audio_buffer_commit_empty",
			fmt.Sprintf("Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, but buffer only has %d.00ms of audio.", ms), "", eventID)
		return
	}
	itemID := s.newIDLocked("item")
	prev := s.lastItemLocked()
	s.addItemLocked(&item{id: itemID, role: "user", kind: "message"})
	s.pending = append([]int16(nil), s.utterance...)
	s.buffered = 0
	s.mu.Unlock()
	s.send(map[string]any{"type": "input_audio_buffer.committed", "previous_item_id": nullable(prev), "item_id": itemID})
	s.sendUserItem(prev, itemID)
}

func (s *Session) onTruncate(data []byte, eventID string) {
	var ev struct {
		ItemID       string `json:"item_id"`
		ContentIndex int    `json:"content_index"`
		AudioEndMS   *int   `json:"audio_end_ms"`
	}
	if err := json.Unmarshal(data, &ev); err != nil || ev.AudioEndMS == nil || *ev.AudioEndMS < 0 {
		s.sendError("invalid_value", "Invalid truncate event.", "audio_end_ms", eventID)
		return
	}
	s.mu.Lock()
	it := s.items[ev.ItemID]
	var errCode, errMsg string
	switch {
	case it == nil:
		errCode, errMsg = "item_truncate_invalid_item_id", "Item with item_id not found: "+ev.ItemID
	case it.role != "assistant" || !it.hasAudio || it.audioMS == 0:
		errCode, errMsg = "unsupported_content_type", "Only model output audio messages can be truncated"
	case *ev.AudioEndMS > it.audioMS:
		errCode, errMsg = "invalid_value", fmt.Sprintf("Audio content of %dms is already shorter than %dms", it.audioMS, *ev.AudioEndMS)
	default:
		it.audioMS = *ev.AudioEndMS
		it.truncated = true
		it.transcript = ""
	}
	s.mu.Unlock()
	if errCode != "" {
		s.sendError(errCode, errMsg, "", eventID)
		return
	}
	s.send(map[string]any{"type": "conversation.item.truncated", "item_id": ev.ItemID, "content_index": ev.ContentIndex, "audio_end_ms": *ev.AudioEndMS})
}

func (s *Session) onItemCreate(data []byte, eventID string) {
	var ev struct {
		PreviousItemID *string         `json:"previous_item_id"`
		Item           json.RawMessage `json:"item"`
	}
	var it struct {
		ID      string  `json:"id"`
		Type    string  `json:"type"`
		Role    string  `json:"role"`
		CallID  string  `json:"call_id"`
		Output  *string `json:"output"`
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(data, &ev); err != nil || json.Unmarshal(ev.Item, &it) != nil {
		s.sendError("invalid_value", "Invalid item.", "item", eventID)
		return
	}
	if it.Type == "message" {
		for _, c := range it.Content {
			ok := false
			switch it.Role {
			case "user", "system":
				ok = c.Type == "input_text" || c.Type == "input_audio" && it.Role == "user"
			case "assistant":
				ok = (s.dialect == realtime.GA && c.Type == "output_text") || (s.dialect == realtime.Beta && c.Type == "text")
			}
			if !ok {
				s.sendError("invalid_value", fmt.Sprintf("Invalid value: '%s' for a %s message.", c.Type, it.Role), "item.content[0].type", eventID)
				return
			}
		}
	}
	if it.Type == "function_call_output" && (it.CallID == "" || it.Output == nil) {
		s.sendError("missing_required_parameter", "A function_call_output item needs call_id and output.", "item", eventID)
		return
	}
	s.mu.Lock()
	if it.Type == "function_call_output" && !s.hasCallLocked(it.CallID) {
		s.mu.Unlock()
		s.sendError("invalid_value", "No function call with call_id "+it.CallID+" in the conversation.", "item.call_id", eventID)
		return
	}
	if it.Type == "function_call_output" {
		if s.pendingTool != "" {
			s.pendingTool += "; "
		}
		s.pendingTool += *it.Output
	}
	if it.ID == "" {
		it.ID = s.newIDLocked("item")
	}
	prev := s.lastItemLocked()
	if ev.PreviousItemID != nil && *ev.PreviousItemID != "root" {
		if _, ok := s.items[*ev.PreviousItemID]; !ok {
			s.mu.Unlock()
			s.sendError("invalid_value", "Previous item not found: "+*ev.PreviousItemID, "previous_item_id", eventID)
			return
		}
		prev = *ev.PreviousItemID
	}
	s.addItemLocked(&item{id: it.ID, role: it.Role, kind: it.Type, callID: it.CallID})
	if it.Type == "message" && it.Role == "assistant" {
		// History: the turns before an assistant message were answered.
		s.pendingText, s.pendingTool = "", ""
	}
	if it.Type == "message" && it.Role == "user" && len(it.Content) > 0 && it.Content[0].Type == "input_text" {
		if s.pendingText != "" {
			s.pendingText += " "
		}
		s.pendingText += it.Content[0].Text
	}
	s.mu.Unlock()
	var obj map[string]any
	_ = json.Unmarshal(ev.Item, &obj)
	obj["id"], obj["object"], obj["status"] = it.ID, "realtime.item", "completed"
	s.send(map[string]any{"type": s.name("conversation.item.added"), "previous_item_id": nullable(prev), "item": obj})
	if s.dialect == realtime.GA {
		s.send(map[string]any{"type": "conversation.item.done", "previous_item_id": nullable(prev), "item": obj})
	}
}

func (s *Session) hasCallLocked(callID string) bool {
	for _, it := range s.items {
		if it.kind == "function_call" && it.callID == callID {
			return true
		}
	}
	return false
}

func (s *Session) onItemDelete(data []byte, eventID string) {
	var ev struct {
		ItemID string `json:"item_id"`
	}
	_ = json.Unmarshal(data, &ev)
	s.mu.Lock()
	_, ok := s.items[ev.ItemID]
	if ok {
		delete(s.items, ev.ItemID)
		for i, id := range s.order {
			if id == ev.ItemID {
				s.order = append(s.order[:i], s.order[i+1:]...)
				break
			}
		}
	}
	s.mu.Unlock()
	if !ok {
		s.sendError("item_delete_invalid_item_id", "Item with item_id not found: "+ev.ItemID, "item_id", eventID)
		return
	}
	s.send(map[string]any{"type": "conversation.item.deleted", "item_id": ev.ItemID})
}
