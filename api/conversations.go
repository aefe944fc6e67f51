package api

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"time"

	"github.com/voicebot/voicebot/converse"
	"github.com/voicebot/voicebot/memory"
	"github.com/voicebot/voicebot/realtime"
	"github.com/voicebot/voicebot/sound"
)

// The conversation service over HTTP (see package converse):
//
//	POST   /v1/conversations             {"agent": "", "instructions": ""} → 201 {"id": "..."}
//	POST   /v1/conversations/{id}/turns  a user turn: audio/wav, multipart (field file) or {"text": "..."}
//	POST   /v1/turns                     the same, starting a conversation (Conversation-ID header)
//	GET    /v1/conversations/{id}        {"id", "agent", "turns": [{"role", "text", "at"}]}
//	DELETE /v1/conversations/{id}        forget it
//
// A turn's answer comes as Server-Sent Events (Accept: text/event-stream),
// one JSON object when complete (application/json, the default) or the
// spoken answer as a WAV file (audio/wav). output=text (query or JSON)
// asks for a text-only answer.

// Conversations is the conversation service as the API uses it.
type Conversations interface {
	Create(ctx context.Context, agent, instructions string) (memory.Conversation, error)
	Get(ctx context.Context, id string) (memory.Conversation, []memory.Turn, error)
	Delete(ctx context.Context, id string) error
	Turn(ctx context.Context, id string, in converse.Input, emit func(converse.Event)) error
}

// TurnLimits bound what one turn may upload.
type TurnLimits struct {
	MaxBytes        int64 // the request body (default 10 MB)
	MaxAudioSeconds int   // the audio in it (default 60 s)
}

func (l TurnLimits) withDefaults() TurnLimits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = 10 << 20
	}
	if l.MaxAudioSeconds <= 0 {
		l.MaxAudioSeconds = 60
	}
	return l
}

// turnUploadTime bounds reading one turn's upload; the answer's stream
// has no write deadline (the turn has its own bound).
const turnUploadTime = 2 * time.Minute

func (s *Server) routeConversations(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/conversations", s.auth(s.conversationsOn(s.createConversation)))
	mux.HandleFunc("GET /v1/conversations/{id}", s.auth(s.conversationsOn(s.getConversation)))
	mux.HandleFunc("DELETE /v1/conversations/{id}", s.auth(s.conversationsOn(s.deleteConversation)))
	mux.HandleFunc("POST /v1/conversations/{id}/turns", s.auth(s.conversationsOn(s.conversationTurn)))
	mux.HandleFunc("POST /v1/turns", s.auth(s.conversationsOn(s.conversationTurn)))
}

func (s *Server) conversationsOn(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Conversations == nil {
			writeError(w, http.StatusNotFound, "the conversation service is off (conversations.enabled: false)")
			return
		}
		h(w, r)
	}
}

// conversationRequest is the body of POST /v1/conversations.
type conversationRequest struct {
	Agent        string `json:"agent"`
	Instructions string `json:"instructions"`
}

func (s *Server) createConversation(w http.ResponseWriter, r *http.Request) {
	var req conversationRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "body: over 64 KiB")
		return
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "body: "+err.Error())
			return
		}
	}
	c, err := s.cfg.Conversations.Create(r.Context(), req.Agent, req.Instructions)
	if err != nil {
		s.conversationError(w, err)
		return
	}
	w.Header().Set("Location", "/v1/conversations/"+c.ID)
	setConversationID(w, c.ID)
	writeJSON(w, http.StatusCreated, map[string]string{"id": c.ID, "agent": c.Agent})
}

// setConversationID names the conversation in the answer's header, spelt
// exactly so (Header.Set would write Conversation-Id): clients match it.
func setConversationID(w http.ResponseWriter, id string) {
	w.Header()["Conversation-ID"] = []string{id}
}

// turnView is a kept turn as GET shows it.
type turnView struct {
	Role string    `json:"role"`
	Text string    `json:"text"`
	At   time.Time `json:"at"`
}

func (s *Server) getConversation(w http.ResponseWriter, r *http.Request) {
	c, turns, err := s.cfg.Conversations.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.conversationError(w, err)
		return
	}
	views := make([]turnView, 0, len(turns))
	for _, t := range turns {
		views = append(views, turnView{Role: t.Role, Text: t.Text, At: t.At.UTC()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": c.ID, "agent": c.Agent, "turns": views})
}

func (s *Server) deleteConversation(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Conversations.Delete(r.Context(), r.PathValue("id")); err != nil {
		s.conversationError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// conversationError answers a refusal of the service with its status.
func (s *Server) conversationError(w http.ResponseWriter, err error) {
	code := http.StatusServiceUnavailable
	switch {
	case errors.Is(err, converse.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, converse.ErrBusy):
		code = http.StatusConflict
	case errors.Is(err, converse.ErrUnknownAgent), errors.Is(err, converse.ErrEmptyTurn), errors.Is(err, converse.ErrShortAudio):
		code = http.StatusBadRequest
	case errors.Is(err, converse.ErrModel):
		code = http.StatusBadGateway
	case errors.Is(err, converse.ErrOverloaded):
		w.Header().Set("Retry-After", "1")
	default:
		s.cfg.Log.Warn().Err(err).Msg("api: conversation store unavailable")
		err = errors.New("the conversation store is unavailable")
	}
	writeError(w, code, err.Error())
}

// errTurn is a turn's upload refused, with its status.
type errTurn struct {
	code int
	msg  string
}

func (e *errTurn) Error() string { return e.msg }

// readTurn reads a turn's body as its Content-Type says.
func (s *Server) readTurn(w http.ResponseWriter, r *http.Request) (in converse.Input, agent string, err error) {
	limits := s.cfg.TurnLimits.withDefaults()
	if r.URL.Query().Get("output") == "text" {
		in.TextOnly = true
	}
	agent = r.URL.Query().Get("agent")
	if r.ContentLength > limits.MaxBytes {
		return in, "", &errTurn{http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes", limits.MaxBytes)}
	}
	body := http.MaxBytesReader(w, r.Body, limits.MaxBytes)
	mediaType, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mediaType {
	case "application/json":
		var req struct {
			Text   string `json:"text"`
			Output string `json:"output"`
			Agent  string `json:"agent"`
		}
		dec := json.NewDecoder(body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return in, "", bodyError(err)
		}
		if strings.TrimSpace(req.Text) == "" {
			return in, "", &errTurn{http.StatusBadRequest, `"text" is empty`}
		}
		in.Text = req.Text
		in.TextOnly = in.TextOnly || req.Output == "text"
		if req.Agent != "" {
			agent = req.Agent
		}
		return in, agent, nil
	case "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave":
		b, err := io.ReadAll(body)
		if err != nil {
			return in, "", bodyError(err)
		}
		in.Audio, err = decodeAudio(b, limits)
		return in, agent, err
	case "multipart/form-data":
		mr := multipart.NewReader(body, params["boundary"])
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				return in, "", &errTurn{http.StatusBadRequest, `no "file" field with the audio`}
			}
			if err != nil {
				return in, "", bodyError(err)
			}
			switch part.FormName() {
			case "output":
				v, _ := io.ReadAll(io.LimitReader(part, 16))
				in.TextOnly = in.TextOnly || strings.TrimSpace(string(v)) == "text"
			case "file":
				b, err := io.ReadAll(part)
				if err != nil {
					return in, "", bodyError(err)
				}
				in.Audio, err = decodeAudio(b, limits)
				return in, agent, err
			}
		}
	case "":
		return in, "", &errTurn{http.StatusUnsupportedMediaType, "no Content-Type: send audio/wav, multipart/form-data (field file) or application/json {\"text\": ...}"}
	}
	return in, "", &errTurn{http.StatusUnsupportedMediaType, "Content-Type " + mediaType + " is not taken: send audio/wav, multipart/form-data (field file) or application/json {\"text\": ...}"}
}

func bodyError(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return &errTurn{http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes", tooLarge.Limit)}
	}
	return &errTurn{http.StatusBadRequest, "body: " + err.Error()}
}

// decodeAudio turns an uploaded WAV into the model's PCM16 at 24 kHz.
func decodeAudio(b []byte, limits TurnLimits) ([]int16, error) {
	if len(b) == 0 {
		return nil, &errTurn{http.StatusBadRequest, "the body is empty"}
	}
	pcm, err := sound.DecodeWAV(b, realtime.PCM16.SampleRate(), limits.MaxAudioSeconds)
	switch {
	case errors.Is(err, sound.ErrTooLong):
		return nil, &errTurn{http.StatusRequestEntityTooLarge, err.Error()}
	case err != nil:
		return nil, &errTurn{http.StatusUnsupportedMediaType, "not audio voicebot can read: " + err.Error()}
	}
	return pcm, nil
}

func (s *Server) conversationTurn(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(turnUploadTime))
	in, agent, err := s.readTurn(w, r)
	if err != nil {
		var et *errTurn
		if errors.As(err, &et) {
			writeError(w, et.code, et.msg)
			return
		}
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	id := r.PathValue("id")
	if id == "" {
		c, err := s.cfg.Conversations.Create(r.Context(), agent, "")
		if err != nil {
			s.conversationError(w, err)
			return
		}
		id = c.ID
	}
	setConversationID(w, id)
	_ = rc.SetWriteDeadline(time.Time{}) // the turn bounds itself
	switch accepted(r.Header.Get("Accept")) {
	case "text/event-stream":
		s.streamTurn(w, rc, r, id, in)
	case "audio/wav":
		s.wholeTurn(w, r, id, in, true)
	default:
		s.wholeTurn(w, r, id, in, false)
	}
}

// accepted picks the answer's form from an Accept header.
func accepted(accept string) string {
	for _, part := range strings.Split(accept, ",") {
		t, _, _ := mime.ParseMediaType(strings.TrimSpace(part))
		switch t {
		case "text/event-stream", "application/json":
			return t
		case "audio/wav", "audio/x-wav", "audio/wave":
			return "audio/wav"
		}
	}
	return "application/json"
}

// streamTurn answers with Server-Sent Events as the model speaks.
func (s *Server) streamTurn(w http.ResponseWriter, rc *http.ResponseController, r *http.Request, id string, in converse.Input) {
	started := false
	send := func(event string, v any) {
		if !started {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-cache")
			w.Header().Set("X-Accel-Buffering", "no")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
		_ = rc.Flush()
	}
	err := s.cfg.Conversations.Turn(r.Context(), id, in, func(ev converse.Event) {
		switch ev.Type {
		case converse.EventTranscript:
			send(ev.Type, map[string]string{"text": ev.Text})
		case converse.EventTextDelta:
			send(ev.Type, map[string]string{"text": ev.Text})
		case converse.EventAudioDelta:
			send(ev.Type, map[string]string{"audio": base64.StdEncoding.EncodeToString(ev.Audio)})
		case converse.EventToolCall:
			send(ev.Type, map[string]string{"name": ev.Name, "arguments": ev.Arguments})
		case converse.EventDone:
			send(ev.Type, map[string]any{"text": ev.Text, "audio_ms": ev.AudioMS})
		}
	})
	if err == nil || r.Context().Err() != nil {
		return
	}
	if !started {
		s.conversationError(w, err)
		return
	}
	send(converse.EventError, map[string]string{"code": errorCode(err), "message": err.Error()})
}

func errorCode(err error) string {
	switch {
	case errors.Is(err, converse.ErrModel):
		return "model_error"
	case errors.Is(err, converse.ErrNotFound):
		return "not_found"
	case errors.Is(err, converse.ErrBusy):
		return "busy"
	}
	return "unavailable"
}

// wholeTurn answers once the answer is complete: JSON with the text and
// the audio as a base64 WAV, or the WAV itself.
func (s *Server) wholeTurn(w http.ResponseWriter, r *http.Request, id string, in converse.Input, wav bool) {
	var audio []byte
	var text string
	err := s.cfg.Conversations.Turn(r.Context(), id, in, func(ev converse.Event) {
		switch ev.Type {
		case converse.EventAudioDelta:
			audio = append(audio, ev.Audio...)
		case converse.EventDone:
			text = ev.Text
		}
	})
	if err != nil {
		if r.Context().Err() == nil {
			s.conversationError(w, err)
		}
		return
	}
	pcm := make([]int16, len(audio)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(audio[2*i:]))
	}
	file := sound.EncodeWAV(pcm, realtime.PCM16.SampleRate())
	if wav {
		w.Header().Set("Content-Type", "audio/wav")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(file)
		return
	}
	out := map[string]any{"id": id, "text": text}
	if !in.TextOnly {
		out["audio"] = base64.StdEncoding.EncodeToString(file)
	}
	writeJSON(w, http.StatusOK, out)
}
