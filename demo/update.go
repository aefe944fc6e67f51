package demo

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/voicebot/voicebot/realtime"
)

// session.update: what a session is configured with, and the session
// object the server describes it by.

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
