package demo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/voicebot/voicebot/realtime"
)

// The client events' shapes, field by field, as the openai-python SDK's
// generated types define them (GA: src/openai/types/realtime/*_param.py;
// beta: src/openai/types/beta/realtime/*_param.py, the record for the beta
// wire shape since the spec's beta section drifted to GA items). A key the
// types do not have is refused, as the service refuses it
// (unknown_parameter): a client that passes here sends nothing the API
// would reject for its shape. Only what a telephony client can send is
// modelled in depth; values the types leave open (GA model names, voices,
// JSON Schemas, tracing, prompts) are checked for their JSON kind only,
// and what voicebot never sends (MCP tools and items, images) is refused
// rather than modelled.

// SchemaError is a client event the API reference does not allow.
type SchemaError struct {
	Code    string // unknown_parameter, missing_required_parameter, invalid_type, invalid_value
	Param   string // the path of the offending key, e.g. session.audio.input.format.rate
	Message string
}

func (e *SchemaError) Error() string { return e.Code + " at " + e.Param + ": " + e.Message }

// ValidateClientEvent checks one client event against the dialect's
// reference shapes.
func ValidateClientEvent(d realtime.Dialect, raw []byte) error {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return &SchemaError{Code: "invalid_event", Param: "", Message: "not a JSON object: " + err.Error()}
	}
	events := gaEvents
	if d == realtime.Beta {
		events = betaEvents
	}
	shape, ok := events[head.Type]
	if !ok {
		return &SchemaError{Code: "invalid_value", Param: "type", Message: fmt.Sprintf("%q is not a %s client event", head.Type, d)}
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return &SchemaError{Code: "invalid_event", Message: err.Error()}
	}
	return shape.check("", v)
}

// shape is a JSON value's allowed form.
type shape interface {
	check(path string, v any) error
}

func typeErr(path, want string, v any) error {
	return &SchemaError{Code: "invalid_type", Param: path, Message: fmt.Sprintf("want %s, got %s", want, kindOf(v))}
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// str is a string, one of enum when given, at most max bytes when max > 0.
type str struct {
	enum []string
	max  int
}

func (s str) check(path string, v any) error {
	x, ok := v.(string)
	if !ok {
		return typeErr(path, "a string", v)
	}
	if s.max > 0 && len(x) > s.max {
		return &SchemaError{Code: "invalid_value", Param: path, Message: fmt.Sprintf("longer than %d characters", s.max)}
	}
	if len(s.enum) > 0 {
		for _, e := range s.enum {
			if x == e {
				return nil
			}
		}
		return &SchemaError{Code: "invalid_value", Param: path, Message: fmt.Sprintf("Invalid value: '%s'. Supported values are: %s.", x, strings.Join(s.enum, ", "))}
	}
	return nil
}

// num is a number within [lo, hi]; integer when whole.
type num struct {
	lo, hi float64
	whole  bool
}

func (n num) check(path string, v any) error {
	x, ok := v.(json.Number)
	if !ok {
		return typeErr(path, "a number", v)
	}
	if n.whole {
		if _, err := strconv.ParseInt(string(x), 10, 64); err != nil {
			return typeErr(path, "an integer", v)
		}
	}
	f, _ := x.Float64()
	if (n.lo != 0 || n.hi != 0) && (f < n.lo || f > n.hi) {
		return &SchemaError{Code: "invalid_value", Param: path, Message: fmt.Sprintf("%s is outside %g to %g", x, n.lo, n.hi)}
	}
	return nil
}

type boolean struct{}

func (boolean) check(path string, v any) error {
	if _, ok := v.(bool); !ok {
		return typeErr(path, "a boolean", v)
	}
	return nil
}

// anyObject is a JSON object whose contents the types leave open.
type anyObject struct{}

func (anyObject) check(path string, v any) error {
	if _, ok := v.(map[string]any); !ok {
		return typeErr(path, "an object", v)
	}
	return nil
}

// anyValue is whatever JSON (tracing, prompt: not used by voicebot, open here).
type anyValue struct{}

func (anyValue) check(string, any) error { return nil }

// orNull allows null besides the shape.
type orNull struct{ shape }

func (n orNull) check(path string, v any) error {
	if v == nil {
		return nil
	}
	return n.shape.check(path, v)
}

// oneOf is any of the shapes. When v passes none, the error is that of
// the first shape of v's kind (a number out of range, not "want a
// string"), else the first one's.
type oneOf []shape

func (o oneOf) check(path string, v any) error {
	var first, sameKind error
	for _, s := range o {
		err := s.check(path, v)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
		var se *SchemaError
		if sameKind == nil && errors.As(err, &se) && se.Code != "invalid_type" {
			sameKind = err
		}
	}
	if sameKind != nil {
		return sameKind
	}
	return first
}

// array of elem.
type array struct{ elem shape }

func (a array) check(path string, v any) error {
	xs, ok := v.([]any)
	if !ok {
		return typeErr(path, "an array", v)
	}
	for i, x := range xs {
		if err := a.elem.check(fmt.Sprintf("%s[%d]", path, i), x); err != nil {
			return err
		}
	}
	return nil
}

// stringMap is metadata: at most 16 pairs, keys of 64 and values of 512
// characters at most.
type stringMap struct{}

func (stringMap) check(path string, v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return typeErr(path, "an object", v)
	}
	if len(m) > 16 {
		return &SchemaError{Code: "invalid_value", Param: path, Message: "at most 16 pairs"}
	}
	for k, x := range m {
		if len(k) > 64 {
			return &SchemaError{Code: "invalid_value", Param: path, Message: "a key is longer than 64 characters"}
		}
		if err := (str{max: 512}).check(path+"."+k, x); err != nil {
			return err
		}
	}
	return nil
}

// object has exactly the listed keys at most; a key ending in "!" is
// required.
type object map[string]shape

func (o object) check(path string, v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return typeErr(path, "an object", v)
	}
	// A missing required key is reported first, as the service does
	// (a beta-shaped session sent to GA: "Missing required parameter:
	// 'session.type'").
	for _, k := range o.required() {
		name := strings.TrimSuffix(k, "!")
		if _, ok := m[name]; !ok {
			return &SchemaError{Code: "missing_required_parameter", Param: join(path, name), Message: fmt.Sprintf("Missing required parameter: '%s'.", join(path, name))}
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the first error is the same every time
	for _, k := range keys {
		s, ok := o[k]
		if !ok {
			s, ok = o[k+"!"]
		}
		if !ok {
			return &SchemaError{Code: "unknown_parameter", Param: join(path, k), Message: fmt.Sprintf("Unknown parameter: '%s'.", join(path, k))}
		}
		if err := s.check(join(path, k), m[k]); err != nil {
			return err
		}
	}
	return nil
}

// required lists the required keys, sorted: the first error is the same
// every time.
func (o object) required() []string {
	var out []string
	for k := range o {
		if strings.HasSuffix(k, "!") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// byKey picks an object's shape by the string at key (a discriminated
// union: audio formats, turn detection, items).
type byKey struct {
	key      string
	variants map[string]shape
}

func (b byKey) check(path string, v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return typeErr(path, "an object", v)
	}
	tag, _ := m[b.key].(string)
	s, ok := b.variants[tag]
	if !ok {
		names := make([]string, 0, len(b.variants))
		for n := range b.variants {
			names = append(names, n)
		}
		sort.Strings(names)
		return &SchemaError{Code: "invalid_value", Param: join(path, b.key), Message: fmt.Sprintf("Invalid value: '%s'. Supported values are: %s.", tag, strings.Join(names, ", "))}
	}
	return s.check(path, v)
}

// The shared pieces.
var (
	text       = str{}
	integer    = num{whole: true}
	eventID    = str{max: 512}
	modalities = array{str{enum: []string{"text", "audio"}}}
	tokens     = oneOf{num{lo: 1, hi: 4096, whole: true}, str{enum: []string{"inf"}}}
	noise      = orNull{object{"type": str{enum: []string{"near_field", "far_field"}}}}
	function   = object{"type": str{enum: []string{"function"}}, "name": text, "description": text, "parameters": anyObject{}}
	betaFormat = str{enum: []string{"pcm16", "g711_ulaw", "g711_alaw"}}
	itemStatus = str{enum: []string{"completed", "incomplete", "in_progress"}}
)

// GA shapes (src/openai/types/realtime).
var (
	gaFormat = byKey{"type", map[string]shape{
		"audio/pcm":  object{"type": text, "rate": num{lo: 24000, hi: 24000, whole: true}},
		"audio/pcmu": object{"type": text},
		"audio/pcma": object{"type": text},
	}}
	gaTranscription = orNull{object{"model": text, "language": text, "prompt": text,
		"delay": str{enum: []string{"minimal", "low", "medium", "high", "xhigh"}}, "keywords": array{text}, "languages": array{text}}}
	gaTurnDetection = orNull{byKey{"type", map[string]shape{
		"server_vad": object{"type!": text, "threshold": num{lo: 0, hi: 1}, "prefix_padding_ms": integer, "silence_duration_ms": integer,
			"create_response": boolean{}, "interrupt_response": boolean{}, "idle_timeout_ms": orNull{num{lo: 5000, hi: 30000, whole: true}}},
		"semantic_vad": object{"type!": text, "eagerness": str{enum: []string{"low", "medium", "high", "auto"}},
			"create_response": boolean{}, "interrupt_response": boolean{}},
	}}}
	gaVoice      = oneOf{text, object{"id!": text}}
	gaToolChoice = oneOf{str{enum: []string{"none", "auto", "required"}}, object{"type!": str{enum: []string{"function"}}, "name!": text}}
	gaReasoning  = object{"effort": str{enum: []string{"minimal", "low", "medium", "high", "xhigh"}}}
	gaSession    = object{
		"type!":             str{enum: []string{"realtime"}},
		"model":             text,
		"output_modalities": oneOf{array{str{enum: []string{"audio"}}}, array{str{enum: []string{"text"}}}}, // not both
		"instructions":      text,
		"audio": object{
			"input":  object{"format": gaFormat, "transcription": gaTranscription, "noise_reduction": noise, "turn_detection": gaTurnDetection},
			"output": object{"format": gaFormat, "voice": gaVoice, "speed": num{lo: 0.25, hi: 1.5}},
		},
		"tools":               array{function},
		"tool_choice":         gaToolChoice,
		"parallel_tool_calls": boolean{},
		"reasoning":           gaReasoning,
		"max_output_tokens":   tokens,
		"tracing":             anyValue{},
		"truncation":          anyValue{},
		"include":             array{str{enum: []string{"item.input_audio_transcription.logprobs"}}},
		"prompt":              anyValue{},
	}
	// Content parts: the types leave every key optional; which go with
	// which type is the docstrings' (text: *_text; audio, transcript:
	// *_audio; image_url, detail: input_image).
	gaUserPart = array{object{"type": str{enum: []string{"input_text", "input_audio", "input_image"}}, "text": text, "audio": text,
		"transcript": text, "image_url": text, "detail": str{enum: []string{"auto", "low", "high"}}}}
	gaAssistantPart = array{object{"type": str{enum: []string{"output_text", "output_audio"}}, "text": text, "audio": text, "transcript": text}}
	gaItemCommon    = func(o object) object {
		o["id"], o["object"], o["status"] = str{max: 32}, str{enum: []string{"realtime.item"}}, itemStatus
		return o
	}
	gaItem = byKey{"type", map[string]shape{
		"message": byKey{"role", map[string]shape{
			"system":    gaItemCommon(object{"type!": text, "role!": text, "content!": array{object{"type": str{enum: []string{"input_text"}}, "text": text}}}),
			"user":      gaItemCommon(object{"type!": text, "role!": text, "content!": gaUserPart}),
			"assistant": gaItemCommon(object{"type!": text, "role!": text, "content!": gaAssistantPart}),
		}},
		"function_call":        gaItemCommon(object{"type!": text, "call_id": text, "name!": text, "arguments!": text}),
		"function_call_output": gaItemCommon(object{"type!": text, "call_id!": text, "output!": text}),
	}}
	gaResponse = object{
		"conversation":        text,
		"input":               array{oneOf{gaItem, object{"type!": str{enum: []string{"item_reference"}}, "id!": text}}},
		"instructions":        text,
		"output_modalities":   oneOf{array{str{enum: []string{"audio"}}}, array{str{enum: []string{"text"}}}},
		"audio":               object{"output": object{"format": gaFormat, "voice": gaVoice}},
		"tools":               array{function},
		"tool_choice":         gaToolChoice,
		"parallel_tool_calls": boolean{},
		"reasoning":           gaReasoning,
		"max_output_tokens":   tokens,
		"metadata":            orNull{stringMap{}},
		"prompt":              anyValue{},
	}
)

// Beta shapes (src/openai/types/beta/realtime).
var (
	betaSession = object{
		"model": str{enum: []string{"gpt-realtime", "gpt-realtime-2025-08-28", "gpt-4o-realtime-preview", "gpt-4o-realtime-preview-2024-10-01",
			"gpt-4o-realtime-preview-2024-12-17", "gpt-4o-realtime-preview-2025-06-03", "gpt-4o-mini-realtime-preview",
			"gpt-4o-mini-realtime-preview-2024-12-17"}},
		"modalities":                  modalities,
		"instructions":                text,
		"voice":                       text,
		"input_audio_format":          betaFormat,
		"output_audio_format":         betaFormat,
		"input_audio_transcription":   orNull{object{"model": text, "language": text, "prompt": text}},
		"input_audio_noise_reduction": noise,
		"turn_detection": orNull{object{"type": str{enum: []string{"server_vad", "semantic_vad"}}, "threshold": num{lo: 0, hi: 1},
			"prefix_padding_ms": integer, "silence_duration_ms": integer, "create_response": boolean{}, "interrupt_response": boolean{},
			"eagerness": str{enum: []string{"low", "medium", "high", "auto"}}}},
		"tools":                      array{function},
		"tool_choice":                text,
		"temperature":                num{lo: 0.6, hi: 1.2},
		"max_response_output_tokens": tokens,
		"speed":                      num{lo: 0.25, hi: 1.5},
		"tracing":                    anyValue{},
		"client_secret":              anyObject{},
	}
	betaItem = object{
		"id": str{max: 32}, "type": str{enum: []string{"message", "function_call", "function_call_output"}},
		"object": str{enum: []string{"realtime.item"}}, "status": itemStatus,
		"role": str{enum: []string{"user", "assistant", "system"}},
		"content": array{object{"id": text, "type": str{enum: []string{"input_text", "input_audio", "item_reference", "text", "audio"}},
			"text": text, "audio": text, "transcript": text}},
		"call_id": text, "name": text, "arguments": text, "output": text,
	}
	betaInputItem = object{
		"id": text, "type": str{enum: []string{"message", "function_call", "function_call_output", "item_reference"}},
		"object": str{enum: []string{"realtime.item"}}, "status": itemStatus,
		"role": str{enum: []string{"user", "assistant", "system"}},
		"content": array{object{"id": text, "type": str{enum: []string{"input_text", "input_audio", "item_reference", "text"}},
			"text": text, "audio": text, "transcript": text}},
		"call_id": text, "name": text, "arguments": text, "output": text,
	}
	betaResponse = object{
		"conversation":               text,
		"input":                      array{betaInputItem},
		"instructions":               text,
		"modalities":                 modalities,
		"voice":                      text,
		"output_audio_format":        betaFormat,
		"tools":                      array{function},
		"tool_choice":                text,
		"temperature":                num{lo: 0.6, hi: 1.2},
		"max_response_output_tokens": tokens,
		"metadata":                   orNull{stringMap{}},
	}
)

func events(session, response, item shape) map[string]shape {
	ev := func(typ string, fields object) shape {
		fields["type!"], fields["event_id"] = str{enum: []string{typ}}, eventID
		return fields
	}
	return map[string]shape{
		"session.update":             ev("session.update", object{"session!": session}),
		"response.create":            ev("response.create", object{"response": response}),
		"response.cancel":            ev("response.cancel", object{"response_id": text}),
		"conversation.item.create":   ev("conversation.item.create", object{"previous_item_id": text, "item!": item}),
		"conversation.item.truncate": ev("conversation.item.truncate", object{"item_id!": text, "content_index!": num{lo: 0, hi: 1 << 20, whole: true}, "audio_end_ms!": num{lo: 0, hi: 1 << 31, whole: true}}),
		"conversation.item.delete":   ev("conversation.item.delete", object{"item_id!": text}),
		"conversation.item.retrieve": ev("conversation.item.retrieve", object{"item_id!": text}),
		"input_audio_buffer.append":  ev("input_audio_buffer.append", object{"audio!": text}),
		"input_audio_buffer.commit":  ev("input_audio_buffer.commit", object{}),
		"input_audio_buffer.clear":   ev("input_audio_buffer.clear", object{}),
		"output_audio_buffer.clear":  ev("output_audio_buffer.clear", object{}),
	}
}

var (
	gaEvents   = events(gaSession, gaResponse, gaItem)
	betaEvents = events(betaSession, betaResponse, betaItem)
)
