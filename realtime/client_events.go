package realtime

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
)

// SessionConfig is what voicebot asks of a model session, dialect-neutral.
type SessionConfig struct {
	// Model is sent in a GA session.update when set. It cannot differ from
	// the model the connection was opened for, so it is left empty unless
	// that URL was built from it (not for an Azure deployment or a URL
	// given whole).
	Model          string
	Instructions   string
	Voice          string
	InputFormat    AudioFormat
	OutputFormat   AudioFormat
	Transcription  *Transcription // nil: no caller transcription
	NoiseReduction string         // "", near_field, far_field
	TurnDetection  *TurnDetection // nil: no VAD, the client commits
	Tools          []Tool
}

// Transcription turns on transcription of the caller's audio.
type Transcription struct {
	Model    string
	Language string
}

// TurnDetection configures the server's VAD. Every field is always sent:
// omitted ones would silently fall back to server defaults.
type TurnDetection struct {
	Type              string // server_vad or semantic_vad
	Threshold         float64
	PrefixPaddingMS   int
	SilenceDurationMS int
	Eagerness         string // semantic_vad only
	CreateResponse    bool
	InterruptResponse bool
}

// Tool is a function the model may call.
type Tool struct {
	Name        string
	Description string
	Parameters  json.RawMessage // JSON Schema
}

// PaddingMS is how much the server's speech events include beyond the
// speech itself: audio_start_ms is early by the prefix padding and
// audio_end_ms late by the silence that ended the turn. Only server_vad
// has those; semantic_vad decides the end of a turn by meaning, with no
// fixed padding.
func (t *TurnDetection) PaddingMS() (prefix, silence int) {
	if t == nil || t.Type != "server_vad" {
		return 0, 0
	}
	return t.PrefixPaddingMS, t.SilenceDurationMS
}

func (t *TurnDetection) wire() map[string]any {
	if t == nil {
		return nil
	}
	m := map[string]any{
		"type":               t.Type,
		"create_response":    t.CreateResponse,
		"interrupt_response": t.InterruptResponse,
	}
	if t.Type == "semantic_vad" {
		m["eagerness"] = t.Eagerness
	} else {
		m["threshold"] = t.Threshold
		m["prefix_padding_ms"] = t.PrefixPaddingMS
		m["silence_duration_ms"] = t.SilenceDurationMS
	}
	return m
}

func toolsWire(tools []Tool) []map[string]any {
	out := make([]map[string]any, 0, len(tools))
	for _, t := range tools {
		params := t.Parameters
		if len(params) == 0 {
			params = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out = append(out, map[string]any{"type": "function", "name": t.Name, "description": t.Description, "parameters": params})
	}
	return out
}

// SessionUpdate encodes session.update in the dialect's shape.
func (d Dialect) SessionUpdate(eventID string, s SessionConfig) ([]byte, error) {
	var session map[string]any
	var transcription any // JSON null turns it off explicitly
	if s.Transcription != nil {
		t := map[string]any{"model": s.Transcription.Model}
		if s.Transcription.Language != "" {
			t["language"] = s.Transcription.Language
		}
		transcription = t
	}
	var noise any
	if s.NoiseReduction != "" {
		noise = map[string]any{"type": s.NoiseReduction}
	}
	var turn any
	if w := s.TurnDetection.wire(); w != nil {
		turn = w
	}
	if d == Beta {
		session = map[string]any{
			"modalities":                  []string{"text", "audio"},
			"instructions":                s.Instructions,
			"voice":                       s.Voice,
			"input_audio_format":          s.InputFormat.beta(),
			"output_audio_format":         s.OutputFormat.beta(),
			"input_audio_transcription":   transcription,
			"turn_detection":              turn,
			"input_audio_noise_reduction": noise,
		}
	} else {
		session = map[string]any{
			"type":              "realtime",
			"output_modalities": []string{"audio"},
			"instructions":      s.Instructions,
			"audio": map[string]any{
				"input": map[string]any{
					"format":          s.InputFormat.ga(),
					"transcription":   transcription,
					"noise_reduction": noise,
					"turn_detection":  turn,
				},
				"output": map[string]any{
					"format": s.OutputFormat.ga(),
					"voice":  s.Voice,
				},
			},
		}
	}
	if s.Model != "" && d == GA {
		// Only where it is the model the URL named: a model that differs
		// from the connected one (an Azure deployment's) is refused.
		session["model"] = s.Model
	}
	if len(s.Tools) > 0 {
		session["tools"] = toolsWire(s.Tools)
		session["tool_choice"] = "auto"
	}
	return json.Marshal(map[string]any{"type": "session.update", "event_id": eventID, "session": session})
}

// ResponseRequest is what a response.create asks for beyond the session's
// configuration.
type ResponseRequest struct {
	// Instructions, when set, replace the session's instructions for this
	// response only (both dialects): a caller that wants the agent's
	// persona kept must include it (see bridge's prompted responses).
	Instructions string
	// Metadata is echoed by the server in the response object of
	// response.created and response.done: it tells which request a
	// response answers (at most 16 pairs; keys 64, values 512 characters).
	Metadata map[string]string
	// TextOnly asks for a text answer and no audio (GA
	// output_modalities ["text"], beta modalities ["text"]): cheaper, and
	// all a text client needs.
	TextOnly bool
}

// ResponseCreate encodes response.create; without instructions or metadata
// it is the bare event, which answers with the session's configuration.
func (d Dialect) ResponseCreate(eventID string, r ResponseRequest) ([]byte, error) {
	ev := map[string]any{"type": "response.create", "event_id": eventID}
	resp := map[string]any{}
	if r.Instructions != "" {
		resp["instructions"] = r.Instructions
	}
	if len(r.Metadata) > 0 {
		resp["metadata"] = r.Metadata
	}
	if r.TextOnly {
		if d == Beta {
			resp["modalities"] = []string{"text"}
		} else {
			resp["output_modalities"] = []string{"text"}
		}
	}
	if len(resp) > 0 {
		ev["response"] = resp
	}
	return json.Marshal(ev)
}

// ResponseCancel encodes response.cancel; responseID may be empty (the
// in-progress response).
func (Dialect) ResponseCancel(eventID, responseID string) ([]byte, error) {
	ev := map[string]any{"type": "response.cancel", "event_id": eventID}
	if responseID != "" {
		ev["response_id"] = responseID
	}
	return json.Marshal(ev)
}

// ItemTruncate encodes conversation.item.truncate: keep the first audioEndMS
// milliseconds of the item's audio content part.
func (Dialect) ItemTruncate(eventID, itemID string, contentIndex, audioEndMS int) ([]byte, error) {
	return json.Marshal(map[string]any{
		"type": "conversation.item.truncate", "event_id": eventID,
		"item_id": itemID, "content_index": contentIndex, "audio_end_ms": audioEndMS,
	})
}

// ItemDelete encodes conversation.item.delete.
func (Dialect) ItemDelete(eventID, itemID string) ([]byte, error) {
	return json.Marshal(map[string]any{"type": "conversation.item.delete", "event_id": eventID, "item_id": itemID})
}

// UserText encodes conversation.item.create with a user text message.
func (Dialect) UserText(eventID, text string) ([]byte, error) {
	return json.Marshal(map[string]any{
		"type": "conversation.item.create", "event_id": eventID,
		"item": map[string]any{"type": "message", "role": "user",
			"content": []map[string]any{{"type": "input_text", "text": text}}},
	})
}

// AssistantText encodes conversation.item.create with an assistant text
// message (history replay: audio cannot be replayed). The content type
// differs by dialect.
func (d Dialect) AssistantText(eventID, text string) ([]byte, error) {
	partType := "output_text"
	if d == Beta {
		partType = "text"
	}
	return json.Marshal(map[string]any{
		"type": "conversation.item.create", "event_id": eventID,
		"item": map[string]any{"type": "message", "role": "assistant",
			"content": []map[string]any{{"type": partType, "text": text}}},
	})
}

// FunctionCallOutput encodes conversation.item.create with the result of a
// function call: output is free text, voicebot sends JSON.
func (Dialect) FunctionCallOutput(eventID, callID, output string) ([]byte, error) {
	return json.Marshal(map[string]any{
		"type": "conversation.item.create", "event_id": eventID,
		"item": map[string]any{"type": "function_call_output", "call_id": callID, "output": output},
	})
}

// InputAudioCommit encodes input_audio_buffer.commit.
func (Dialect) InputAudioCommit(eventID string) []byte {
	return []byte(`{"type":"input_audio_buffer.commit","event_id":` + strconv.Quote(eventID) + `}`)
}

// InputAudioClear encodes input_audio_buffer.clear.
func (Dialect) InputAudioClear(eventID string) []byte {
	return []byte(`{"type":"input_audio_buffer.clear","event_id":` + strconv.Quote(eventID) + `}`)
}

const appendPrefix = `{"type":"input_audio_buffer.append","event_id":"a`

// AppendInputAudio appends an input_audio_buffer.append event carrying audio
// (bytes in the session input format) to dst and returns it. It is the
// per-frame path: with enough capacity in dst it allocates nothing. Both
// dialects use the same shape. The event id is "a" plus seq.
func AppendInputAudio(dst []byte, seq uint64, audio []byte) []byte {
	dst = append(dst, appendPrefix...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `","audio":"`...)
	n := base64.StdEncoding.EncodedLen(len(audio))
	start := len(dst)
	if cap(dst)-start < n+2 {
		grown := make([]byte, start, start+n+64)
		copy(grown, dst)
		dst = grown
	}
	dst = dst[:start+n]
	base64.StdEncoding.Encode(dst[start:], audio)
	return append(dst, `"}`...)
}

// AppendInputAudioLen is the size AppendInputAudio needs for n audio bytes.
func AppendInputAudioLen(n int) int {
	return len(appendPrefix) + 20 + len(`","audio":"`) + base64.StdEncoding.EncodedLen(n) + 2
}

// HistoryItem is a turn of an earlier session, replayed into a new one so
// the conversation goes on where it was: audio cannot be replayed, so
// every turn is text (the caller's from its transcript, the bot's as heard).
type HistoryItem struct {
	// ID, when set, names the item in the new session (the client may
	// choose item ids), so its echo is known as the replay's.
	ID string
	// Type is "message" (the default), "function_call" or
	// "function_call_output".
	Type string
	Role string // user, assistant or system, for messages
	Text string
	// Function calls and their outputs.
	CallID, Name, Arguments, Output string
}

// ItemCreate encodes conversation.item.create for a history item.
func (d Dialect) ItemCreate(eventID string, h HistoryItem) ([]byte, error) {
	item := map[string]any{}
	if h.ID != "" {
		item["id"] = h.ID
	}
	switch h.Type {
	case "function_call":
		item["type"], item["call_id"], item["name"], item["arguments"] = "function_call", h.CallID, h.Name, h.Arguments
	case "function_call_output":
		item["type"], item["call_id"], item["output"] = "function_call_output", h.CallID, h.Output
	case "", "message":
		part := "input_text"
		switch {
		case h.Role == "assistant" && d == Beta:
			part = "text"
		case h.Role == "assistant":
			part = "output_text"
		case h.Role != "user" && h.Role != "system":
			return nil, fmt.Errorf("history item: role %q", h.Role)
		}
		item["type"], item["role"] = "message", h.Role
		item["content"] = []map[string]any{{"type": part, "text": h.Text}}
	default:
		return nil, fmt.Errorf("history item: type %q", h.Type)
	}
	return json.Marshal(map[string]any{"type": "conversation.item.create", "event_id": eventID, "item": item})
}
