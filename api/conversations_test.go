package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/converse"
	"github.com/voicebot/voicebot/memory"
	"github.com/voicebot/voicebot/sound"
)

// fakeConversations answers every turn with "ok" and 20 ms of audio, and
// records what it was given.
type fakeConversations struct{ turns []converse.Input }

func (f *fakeConversations) Create(_ context.Context, agent, _ string) (memory.Conversation, error) {
	if agent == "nobody" {
		return memory.Conversation{}, converse.ErrUnknownAgent
	}
	return memory.Conversation{ID: "conv_1", Agent: "default"}, nil
}

func (f *fakeConversations) Get(_ context.Context, id string) (memory.Conversation, []memory.Turn, error) {
	if id != "conv_1" {
		return memory.Conversation{}, nil, converse.ErrNotFound
	}
	return memory.Conversation{ID: id, Agent: "default"}, nil, nil
}

func (f *fakeConversations) Delete(context.Context, string) error { return nil }

func (f *fakeConversations) Turn(_ context.Context, id string, in converse.Input, emit func(converse.Event)) error {
	if id != "conv_1" {
		return converse.ErrNotFound
	}
	if in.Text == "busy" {
		return converse.ErrBusy
	}
	if in.Text == "" && len(in.Audio) < 2400 {
		return converse.ErrShortAudio
	}
	f.turns = append(f.turns, in)
	emit(converse.Event{Type: converse.EventTextDelta, Text: "ok"})
	if !in.TextOnly {
		emit(converse.Event{Type: converse.EventAudioDelta, Audio: make([]byte, 960)})
	}
	emit(converse.Event{Type: converse.EventDone, Text: "ok", AudioMS: 20})
	return nil
}

func turnServer(f *fakeConversations) http.Handler {
	s := &Server{cfg: Config{Token: "turn-token-0123456789", Calls: NewRegistry(), Log: zerolog.Nop(), Conversations: f,
		TurnLimits: TurnLimits{MaxBytes: 1 << 20, MaxAudioSeconds: 5}}}
	mux := http.NewServeMux()
	s.routeConversations(mux)
	return mux
}

func doTurn(h http.Handler, path, ctype, accept, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer turn-token-0123456789")
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestTurnAnswerForms(t *testing.T) {
	f := &fakeConversations{}
	h := turnServer(f)
	wav := string(sound.EncodeWAV(make([]int16, 16000), 16000))
	w := doTurn(h, "/v1/conversations/conv_1/turns", "audio/wav", "text/event-stream", wav)
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/event-stream" || w.Header()["Conversation-ID"][0] != "conv_1" ||
		!strings.Contains(w.Body.String(), "event: audio.delta\ndata: {\"audio\":\"") || !strings.HasSuffix(w.Body.String(), "event: done\ndata: {\"audio_ms\":20,\"text\":\"ok\"}\n\n") {
		t.Fatalf("SSE: %d %v\n%s", w.Code, w.Header(), w.Body)
	}
	if got := len(f.turns[0].Audio); got < 23900 || got > 24200 {
		t.Errorf("1 s at 16 kHz reached the service as %d samples, want 24000 (24 kHz)", got)
	}
	w = doTurn(h, "/v1/conversations/conv_1/turns?output=text", "application/json", "", `{"text":"hi"}`)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"text":"ok"`) || strings.Contains(w.Body.String(), `"audio"`) || !f.turns[1].TextOnly {
		t.Fatalf("JSON, text only: %d %s", w.Code, w.Body)
	}
	w = doTurn(h, "/v1/conversations/conv_1/turns", "application/json", "audio/wav", `{"text":"hi"}`)
	if pcm, err := sound.DecodeWAV(w.Body.Bytes(), 24000, 5); w.Code != 200 || err != nil || len(pcm) != 480 {
		t.Fatalf("WAV: %d %d samples %v", w.Code, len(pcm), err)
	}
	w = doTurn(h, "/v1/turns", "application/json", "", `{"text":"hi","output":"text"}`)
	if w.Code != 200 || w.Header()["Conversation-ID"][0] != "conv_1" {
		t.Fatalf("/v1/turns: %d %v", w.Code, w.Header())
	}
	w = doTurn(h, "/v1/conversations/conv_1/turns", "application/json", "text/event-stream", `{"text":"busy"}`)
	if w.Code != http.StatusConflict {
		t.Errorf("a busy conversation: %d %s", w.Code, w.Body)
	}
}

func TestTurnsOffWithoutTheService(t *testing.T) {
	s := &Server{cfg: Config{Token: "turn-token-0123456789", Calls: NewRegistry(), Log: zerolog.Nop()}}
	mux := http.NewServeMux()
	s.routeConversations(mux)
	if w := doTurn(mux, "/v1/turns", "application/json", "", `{"text":"hi"}`); w.Code != 404 || !strings.Contains(w.Body.String(), "conversations.enabled") {
		t.Errorf("%d %s", w.Code, w.Body)
	}
}

// FuzzTurn posts arbitrary bodies under each content type: the answer is
// 200 or a 4xx with a JSON error, never a panic or a 5xx.
func FuzzTurn(f *testing.F) {
	f.Add("application/json", `{"text":"hello"}`)
	f.Add("application/json", `{"text":"hi","output":"text","agent":"x"}`)
	f.Add("audio/wav", string(sound.EncodeWAV(make([]int16, 8000), 8000)))
	f.Add("audio/wav", "RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x02\x00")
	f.Add("multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nRIFF\r\n--x--\r\n")
	f.Add("text/plain", "hello")
	f.Add("", "")
	h := turnServer(&fakeConversations{})
	f.Fuzz(func(t *testing.T, ctype, body string) {
		w := doTurn(h, "/v1/conversations/conv_1/turns", ctype, "application/json", body)
		if w.Code == 200 {
			return
		}
		if w.Code < 400 || w.Code > 499 || !strings.Contains(w.Body.String(), `"error"`) {
			t.Fatalf("%q %q: %d %s", ctype, body, w.Code, w.Body)
		}
	})
}

func TestConversationErrorsHaveTheirStatus(t *testing.T) {
	s := &Server{cfg: Config{Log: zerolog.Nop()}}
	for err, want := range map[error]int{
		converse.ErrNotFound: 404, converse.ErrBusy: 409, converse.ErrUnknownAgent: 400, converse.ErrModel: 502,
		converse.ErrOverloaded: 503, errors.New("disk on fire"): 503,
	} {
		w := httptest.NewRecorder()
		s.conversationError(w, err)
		if w.Code != want || (want == 503 && strings.Contains(w.Body.String(), "fire")) {
			t.Errorf("%v: %d %s", err, w.Code, w.Body)
		}
	}
}
