package realtime

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Kind is a server event in voicebot's own vocabulary; both dialects'
// names for the same thing decode to one Kind.
type Kind int

// The server events voicebot acts on. Anything else is KindUnknown (logged at
// debug and ignored: new event types keep appearing).
const (
	KindUnknown Kind = iota
	KindError
	KindSessionCreated
	KindSessionUpdated
	KindSpeechStarted
	KindSpeechStopped
	KindInputCommitted
	KindInputCleared
	KindInputTimeout
	KindInputTranscriptDelta
	KindInputTranscript
	KindInputTranscriptFailed
	KindItemAdded
	KindItemDone
	KindItemTruncated
	KindItemDeleted
	KindResponseCreated
	KindResponseDone
	KindOutputItemAdded
	KindOutputItemDone
	KindContentPart
	KindAudioDelta
	KindAudioDone
	KindTranscriptDelta
	KindTranscriptDone
	KindTextDelta
	KindTextDone
	KindFunctionArgumentsDelta
	KindFunctionArgumentsDone
	KindRateLimits
	KindConversationCreated
)

var kindNames = map[string]Kind{
	"error":                                                 KindError,
	"session.created":                                       KindSessionCreated,
	"session.updated":                                       KindSessionUpdated,
	"conversation.created":                                  KindConversationCreated,
	"input_audio_buffer.speech_started":                     KindSpeechStarted,
	"input_audio_buffer.speech_stopped":                     KindSpeechStopped,
	"input_audio_buffer.committed":                          KindInputCommitted,
	"input_audio_buffer.cleared":                            KindInputCleared,
	"input_audio_buffer.timeout_triggered":                  KindInputTimeout,
	"conversation.item.input_audio_transcription.delta":     KindInputTranscriptDelta,
	"conversation.item.input_audio_transcription.completed": KindInputTranscript,
	"conversation.item.input_audio_transcription.failed":    KindInputTranscriptFailed,
	"conversation.item.created":                             KindItemAdded, // beta
	"conversation.item.added":                               KindItemAdded, // GA
	"conversation.item.done":                                KindItemDone,
	"conversation.item.truncated":                           KindItemTruncated,
	"conversation.item.deleted":                             KindItemDeleted,
	"response.created":                                      KindResponseCreated,
	"response.done":                                         KindResponseDone,
	"response.output_item.added":                            KindOutputItemAdded,
	"response.output_item.done":                             KindOutputItemDone,
	"response.content_part.added":                           KindContentPart,
	"response.content_part.done":                            KindContentPart,
	"response.audio.delta":                                  KindAudioDelta, // beta
	"response.output_audio.delta":                           KindAudioDelta, // GA
	"response.audio.done":                                   KindAudioDone,
	"response.output_audio.done":                            KindAudioDone,
	"response.audio_transcript.delta":                       KindTranscriptDelta,
	"response.output_audio_transcript.delta":                KindTranscriptDelta,
	"response.audio_transcript.done":                        KindTranscriptDone,
	"response.output_audio_transcript.done":                 KindTranscriptDone,
	"response.text.delta":                                   KindTextDelta,
	"response.output_text.delta":                            KindTextDelta,
	"response.text.done":                                    KindTextDone,
	"response.output_text.done":                             KindTextDone,
	"response.function_call_arguments.delta":                KindFunctionArgumentsDelta,
	"response.function_call_arguments.done":                 KindFunctionArgumentsDone,
	"rate_limits.updated":                                   KindRateLimits,
}

// ServerEvent is one decoded server event. Only the fields its Kind uses are set.
type ServerEvent struct {
	Kind         Kind
	Type         string // the wire type, for logs
	EventID      string
	ResponseID   string
	ItemID       string
	ContentIndex int
	// AudioStartMS / AudioEndMS: speech_started / speech_stopped positions on
	// the input timeline, or the truncation point of item.truncated.
	AudioStartMS int
	AudioEndMS   int
	// Audio holds a decoded audio delta in the session output format. It is
	// valid until Release is called.
	Audio []byte
	// Text carries transcript and text deltas, finished transcripts and texts.
	Text string
	// Response is set on response.created / response.done.
	Response *Response
	// Item is set on item and output_item events.
	Item *Item
	// Session is set on session.created / session.updated.
	Session *SessionInfo
	// Err is set on error events (and on transcription failures).
	Err *APIError
	// Function call fields (function_call_arguments.done).
	CallID    string
	Name      string
	Arguments string

	pool *bufPool
	buf  *[]byte
}

// Release hands the event's audio buffer back for reuse. Audio must not be
// used afterwards. Calling it on any event, or twice, is harmless.
func (e *ServerEvent) Release() {
	if e.pool != nil && e.buf != nil {
		e.pool.put(e.buf)
	}
	e.buf, e.pool, e.Audio = nil, nil, nil
}

// Response is the response object of response.created / response.done.
type Response struct {
	ID            string        `json:"id"`
	Status        string        `json:"status"` // in_progress, completed, cancelled, failed, incomplete
	StatusDetails StatusDetails `json:"status_details"`
	Output        []Item        `json:"output"`
	// Metadata is what the response.create asked to be echoed (null for a
	// response the server started itself, on a turn its VAD detected).
	// Kept raw: a value of another shape must not lose the whole event.
	Metadata json.RawMessage `json:"metadata"`
}

// MetadataValue returns the string the response's metadata holds at key,
// or "" when there is none (or it is not a string).
func (r *Response) MetadataValue(key string) string {
	if r == nil || len(r.Metadata) == 0 {
		return ""
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(r.Metadata, &m) != nil {
		return ""
	}
	var v string
	if json.Unmarshal(m[key], &v) != nil {
		return ""
	}
	return v
}

// StatusDetails says why a response ended as it did.
type StatusDetails struct {
	Type   string    `json:"type"`
	Reason string    `json:"reason"` // turn_detected, client_cancelled, max_output_tokens, content_filter
	Error  *APIError `json:"error"`
}

// Item is a conversation item as the server describes it.
type Item struct {
	ID        string        `json:"id"`
	Type      string        `json:"type"` // message, function_call, function_call_output
	Status    string        `json:"status"`
	Role      string        `json:"role"`
	Content   []ContentPart `json:"content"`
	CallID    string        `json:"call_id"`
	Name      string        `json:"name"`
	Arguments string        `json:"arguments"`
	Output    string        `json:"output"`
}

// ContentPart is one part of a message item.
type ContentPart struct {
	Type       string `json:"type"` // input_text, input_audio, text/output_text, audio/output_audio
	Text       string `json:"text,omitempty"`
	Transcript string `json:"transcript,omitempty"`
	Audio      string `json:"audio,omitempty"`
}

// SessionInfo is the part of a session object voicebot reads.
type SessionInfo struct {
	ID        string `json:"id"`
	Model     string `json:"model"`
	ExpiresAt int64  `json:"expires_at"` // unix seconds
}

// APIError is the error object of an error event.
type APIError struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param"`
	EventID string `json:"event_id"` // the client event that caused it
}

// Error codes voicebot acts on (besides logging and counting).
const (
	// CodeSessionExpired: the session reached its maximum duration; the
	// server closes the connection right after.
	CodeSessionExpired = "session_expired"
	// CodeBetaShapeDisabled: api.openai.com no longer speaks the beta
	// dialect (OpenAI-Beta: realtime=v1); it closes the connection right after.
	CodeBetaShapeDisabled = "beta_api_shape_disabled"
	// CodeActiveResponse: a response.create while one is active.
	CodeActiveResponse = "conversation_already_has_active_response"
)

func (e *APIError) Error() string {
	return fmt.Sprintf("realtime %s (%s): %s", e.Type, e.Code, e.Message)
}

// wireEvent has every top-level field of every server event voicebot reads.
type wireEvent struct {
	Type         string       `json:"type"`
	EventID      string       `json:"event_id"`
	ResponseID   string       `json:"response_id"`
	ItemID       string       `json:"item_id"`
	ContentIndex int          `json:"content_index"`
	AudioStartMS int          `json:"audio_start_ms"`
	AudioEndMS   int          `json:"audio_end_ms"`
	Delta        string       `json:"delta"`
	Transcript   string       `json:"transcript"`
	Text         string       `json:"text"`
	Error        *APIError    `json:"error"`
	Response     *Response    `json:"response"`
	Item         *Item        `json:"item"`
	Session      *SessionInfo `json:"session"`
	CallID       string       `json:"call_id"`
	Name         string       `json:"name"`
	Arguments    string       `json:"arguments"`
}

// ErrMalformedEvent wraps every decoding failure.
var ErrMalformedEvent = errors.New("realtime: malformed server event")

// Decoder turns server event frames into ServerEvents. It keeps the audio
// buffer pool and the last ids seen, so a stream of audio deltas decodes
// without allocating. Not safe for concurrent use.
type Decoder struct {
	pool       bufPool
	lastItem   string
	lastResp   string
	lastType   string
	lastTypeID Kind
}

// NewDecoder returns a decoder whose pool keeps up to poolSize audio buffers.
func NewDecoder(poolSize int) *Decoder {
	return &Decoder{pool: bufPool{free: make(chan *[]byte, poolSize)}}
}

// Decode parses one event frame. Unknown types decode to KindUnknown with
// Type set and no error; a frame that is not a JSON object with a string
// "type", or an audio delta that is not valid base64, is an error.
func (d *Decoder) Decode(data []byte) (ServerEvent, error) {
	if ev, ok := d.decodeAudioDelta(data); ok {
		return ev, nil
	}
	var w wireEvent
	if err := json.Unmarshal(data, &w); err != nil {
		return ServerEvent{}, fmt.Errorf("%w: %v", ErrMalformedEvent, err)
	}
	if w.Type == "" {
		return ServerEvent{}, fmt.Errorf("%w: no type", ErrMalformedEvent)
	}
	ev := ServerEvent{
		Kind:         kindNames[w.Type],
		Type:         w.Type,
		EventID:      w.EventID,
		ResponseID:   w.ResponseID,
		ItemID:       w.ItemID,
		ContentIndex: w.ContentIndex,
		AudioStartMS: w.AudioStartMS,
		AudioEndMS:   w.AudioEndMS,
		Response:     w.Response,
		Item:         w.Item,
		Session:      w.Session,
		Err:          w.Error,
		CallID:       w.CallID,
		Name:         w.Name,
		Arguments:    w.Arguments,
	}
	switch ev.Kind {
	case KindAudioDelta:
		// The fast path declined (escapes, nesting): decode the slow way.
		if err := d.decodeAudio(&ev, []byte(w.Delta)); err != nil {
			return ServerEvent{}, err
		}
	case KindTranscriptDelta, KindTextDelta, KindInputTranscriptDelta:
		ev.Text = w.Delta
	case KindTranscriptDone, KindInputTranscript:
		ev.Text = w.Transcript
	case KindTextDone:
		ev.Text = w.Text
	case KindError:
		if ev.Err == nil {
			ev.Err = &APIError{Type: "unknown", Message: "error event without an error object"}
		}
	}
	if ev.Response != nil && ev.ResponseID == "" {
		ev.ResponseID = ev.Response.ID
	}
	if ev.Item != nil && ev.ItemID == "" {
		ev.ItemID = ev.Item.ID
	}
	return ev, nil
}

func (d *Decoder) decodeAudio(ev *ServerEvent, b64 []byte) error {
	buf := d.pool.get(base64.StdEncoding.DecodedLen(len(b64)))
	n, err := base64.StdEncoding.Decode(*buf, b64)
	if err != nil {
		d.pool.put(buf)
		return fmt.Errorf("%w: audio delta: %v", ErrMalformedEvent, err)
	}
	ev.Audio = (*buf)[:n]
	ev.buf, ev.pool = buf, &d.pool
	return nil
}

// decodeAudioDelta is the allocation-free path for the event that arrives
// many times a second. It handles flat objects with escape-free strings, which
// is what servers send; anything else falls back to encoding/json.
func (d *Decoder) decodeAudioDelta(data []byte) (ServerEvent, bool) {
	var typ, itemID, respID, eventID, delta []byte
	contentIndex := 0
	ok := scanFlatObject(data, func(key, val []byte, str bool) bool {
		switch string(key) {
		case "type":
			typ = val
		case "item_id":
			itemID = val
		case "response_id":
			respID = val
		case "event_id":
			eventID = val
		case "delta":
			delta = val
		case "content_index":
			n, err := strconv.Atoi(string(val))
			if err != nil {
				return false
			}
			contentIndex = n
		}
		return true
	})
	if !ok || typ == nil || delta == nil {
		return ServerEvent{}, false
	}
	if string(typ) != "response.output_audio.delta" && string(typ) != "response.audio.delta" {
		return ServerEvent{}, false
	}
	ev := ServerEvent{Kind: KindAudioDelta, ContentIndex: contentIndex}
	ev.Type = d.intern(&d.lastType, typ)
	ev.ItemID = d.intern(&d.lastItem, itemID)
	ev.ResponseID = d.intern(&d.lastResp, respID)
	_ = eventID // server event ids are not needed per delta; skipping them saves an allocation
	if err := d.decodeAudio(&ev, delta); err != nil {
		return ServerEvent{}, false
	}
	return ev, true
}

// intern returns a string equal to b, reusing *last when it matches.
func (d *Decoder) intern(last *string, b []byte) string {
	if string(b) == *last { // no allocation: the compiler compares without converting
		return *last
	}
	*last = string(b)
	return *last
}

// scanFlatObject walks a JSON object whose values are escape-free strings,
// numbers, booleans or null, calling fn for each member (val without quotes
// for strings). It returns false, without promising anything about calls
// already made, on any other shape.
func scanFlatObject(data []byte, fn func(key, val []byte, str bool) bool) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return skipSpace(data, i+1) == len(data)
	}
	for {
		key, next, ok := scanString(data, i)
		if !ok {
			return false
		}
		i = skipSpace(data, next)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		if i >= len(data) {
			return false
		}
		var val []byte
		str := data[i] == '"'
		if str {
			val, next, ok = scanString(data, i)
			if !ok {
				return false
			}
			i = next
		} else {
			start := i
			for i < len(data) && data[i] != ',' && data[i] != '}' && !isSpace(data[i]) {
				c := data[i]
				if c == '{' || c == '[' || c == '"' {
					return false
				}
				i++
			}
			val = data[start:i]
			if len(val) == 0 {
				return false
			}
		}
		if !fn(key, val, str) {
			return false
		}
		i = skipSpace(data, i)
		if i >= len(data) {
			return false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return skipSpace(data, i+1) == len(data)
		default:
			return false
		}
	}
}

func scanString(data []byte, i int) (val []byte, next int, ok bool) {
	if i >= len(data) || data[i] != '"' {
		return nil, 0, false
	}
	end := bytes.IndexByte(data[i+1:], '"')
	if end < 0 {
		return nil, 0, false
	}
	val = data[i+1 : i+1+end]
	if bytes.IndexByte(val, '\\') >= 0 {
		return nil, 0, false
	}
	for _, c := range val {
		if c < 0x20 {
			return nil, 0, false
		}
	}
	return val, i + 2 + end, true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(data []byte, i int) int {
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}

// bufPool recycles audio buffers between the reader and the consumer of
// events, which may run in different goroutines (hence a channel, not a slice).
type bufPool struct{ free chan *[]byte }

func (p *bufPool) get(n int) *[]byte {
	select {
	case b := <-p.free:
		if cap(*b) >= n {
			*b = (*b)[:n]
			return b
		}
	default:
	}
	// Whole 4 KiB so that deltas of slightly different sizes reuse the
	// same buffers.
	b := make([]byte, n, (n+4<<10-1)&^(4<<10-1))
	return &b
}

func (p *bufPool) put(b *[]byte) {
	select {
	case p.free <- b:
	default:
	}
}
