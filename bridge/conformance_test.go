package bridge

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/memory"
	"github.com/voicebot/voicebot/realtime"
	"github.com/voicebot/voicebot/realtime/realtimetest"
)

// Every client event a call can emit, in both dialects, on every path that
// emits one (configuring, greeting, barge-in, tools, keys, limits, a failed
// response's retry, a replayed conversation), is checked field by field
// against the API reference: the harness's model refuses any event the real
// service would, and any response that would run without the agent's
// instructions. This test makes sure each path runs and each kind of event
// was seen.
func TestEveryClientEventConforms(t *testing.T) {
	for _, d := range []realtime.Dialect{realtime.GA, realtime.Beta} {
		for _, vad := range []string{"server_vad", "semantic_vad"} {
			t.Run(d.String()+"/"+vad, func(t *testing.T) { conformancePaths(t, d, vad) })
		}
	}
}

func conformancePaths(t *testing.T, d realtime.Dialect, vad string) {
	h := newProfileHarness(t, func(c *Config) {
		c.BargeIn.LocalVAD = true // a local barge-in cancels the response itself
	}, func(p *Profile) {
		withTools(ToolEndCall, ToolTransfer, ToolSendDTMF)(p)
		p.Session.Instructions = "Eres el agente de ACME. Habla siempre en español."
		p.Session.Voice = "alloy"
		p.Session.Transcription = &realtime.Transcription{Model: "gpt-4o-mini-transcribe", Language: "es"}
		p.Session.NoiseReduction = "near_field"
		p.Session.TurnDetection.Type = vad
		p.Session.TurnDetection.Eagerness = "auto"
		p.Greeting, p.GreetingPrompt = true, "Greet the caller."
		p.HangupOnTransferFailure = true
	})
	h.model.dialect = d
	h.c.session.Tools = h.c.profile.toolDeclarations()
	item := func(resp, id string) {
		h.event(`{"type":"conversation.item.added","item":{"id":"` + id + `","type":"message","role":"assistant","status":"in_progress","content":[]}}`)
		h.respond(resp, id, 400)
		h.event(`{"type":"response.output_audio_transcript.done","response_id":"` + resp + `","item_id":"` + id + `","output_index":0,"content_index":0,"transcript":"Hola."}`)
		h.event(`{"type":"response.output_audio.done","response_id":"` + resp + `","item_id":"` + id + `","output_index":0,"content_index":0}`)
	}

	// Configure, give the caller's earlier turns, greet them back.
	if err := h.c.configure(); err != nil {
		t.Fatal(err)
	}
	h.c.profile.Memory = memory.Policy{Enabled: true, MaxTurns: 20, MaxChars: 4000, GreetingPrompt: "Welcome them back."}
	h.c.recall = make(chan recalled, 1)
	earlier := h.clk.Now().Add(-time.Hour)
	h.c.recall <- recalled{turns: []memory.Turn{{Role: "user", Text: "Quiero cambiar mi cita.", At: earlier, CallID: "call-0"},
		{Role: "assistant", Text: "Claro, ¿para qué día?", At: earlier, CallID: "call-0"}}}
	h.c.recallMemory()
	h.c.greet()
	item("resp_greet", "item_greet")
	h.done("resp_greet", "completed")
	h.play(600 * time.Millisecond)

	// The caller speaks and is answered; the answer is interrupted.
	h.event(`{"type":"conversation.item.added","item":{"id":"item_u1","type":"message","role":"user","status":"completed","content":[{"type":"input_audio"}]}}`)
	h.event(`{"type":"conversation.item.input_audio_transcription.completed","item_id":"item_u1","content_index":0,"transcript":"¿Qué hora es?"}`)
	item("resp_a1", "item_a1")
	h.play(200 * time.Millisecond)
	h.c.onLocalSpeech()
	h.done("resp_a1", "cancelled")

	// A failed response is asked for again.
	h.respond("resp_f1", "item_f1", 0)
	h.done("resp_f1", "failed")

	// Keys, a tool and its answer, a refused transfer and its apology.
	h.c.onKey('5', "rfc4733")
	h.c.onKeysDone()
	h.created("resp_t")
	h.functionCall("resp_t", "call_1", ToolSendDTMF, `{"digits":"12"}`)
	h.done("resp_t", "completed")
	h.play(100 * time.Millisecond)
	h.created("resp_x")
	h.functionCall("resp_x", "call_2", ToolTransfer, `{"target":"operator"}`)
	h.done("resp_x", "completed")
	h.call.transferErr = errors.New("603 Decline")
	h.play(100 * time.Millisecond)
	h.toolResult()
	h.done("resp_bye", "completed")

	// Limits: the note and the goodbye.
	h.c.ending = nil
	h.c.onMaxDurationWarning()
	h.c.limits.wrapping = false
	h.c.wrapUp(endMaxDuration, "Say goodbye.")

	// A new session: configured, and the conversation replayed.
	if ev, err := h.c.sessionUpdate(); err != nil {
		t.Fatal(err)
	} else if err := h.model.Send(ev); err != nil {
		t.Fatal(err)
	}
	h.c.replayHistory()

	// The caller's audio, in the session's format.
	for _, audio := range [][]byte{make([]byte, 960), make([]byte, 160)} {
		if err := realtimetest.ValidateClientEvent(d, realtime.AppendInputAudio(nil, 1, audio)); err != nil {
			t.Errorf("input_audio_buffer.append: %v", err)
		}
	}

	seen := map[string]bool{}
	for _, m := range h.model.sent {
		kind := m["type"].(string)
		if strings.HasPrefix(m["event_id"].(string), "memory_") {
			seen["memory"] = true
		}
		if it, ok := m["item"].(map[string]any); ok {
			kind += "/" + fmt.Sprint(it["type"])
			if r, ok := it["role"]; ok {
				kind += "/" + fmt.Sprint(r)
			}
		}
		if r, ok := m["response"].(map[string]any); ok && r["instructions"] != nil {
			kind += "/prompted"
		}
		seen[kind] = true
	}
	want := []string{"memory", "session.update", "response.create", "response.create/prompted", "response.cancel", "conversation.item.truncate",
		"conversation.item.create/message/user", "conversation.item.create/message/system", "conversation.item.create/message/assistant",
		"conversation.item.create/function_call", "conversation.item.create/function_call_output"}
	var missing []string
	for _, k := range want {
		if !seen[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		var got []string
		for k := range seen {
			got = append(got, k)
		}
		sort.Strings(got)
		t.Errorf("paths not covered: %s\nseen: %s", strings.Join(missing, ", "), strings.Join(got, ", "))
	}
}

// The validator itself: what the reference does not have is refused.
func TestValidatorRefusesWhatTheReferenceLacks(t *testing.T) {
	bad := []struct {
		d     realtime.Dialect
		event string
		param string
	}{
		{realtime.GA, `{"type":"session.update","session":{"type":"realtime","temperature":0.8}}`, "session.temperature"},
		{realtime.GA, `{"type":"session.update","session":{"modalities":["audio"]}}`, "session.type"},
		{realtime.GA, `{"type":"session.update","session":{"type":"realtime","audio":{"input":{"format":{"type":"audio/pcm","rate":16000}}}}}`, "session.audio.input.format.rate"},
		{realtime.GA, `{"type":"session.update","session":{"type":"realtime","audio":{"input":{"turn_detection":{"type":"semantic_vad","silence_duration_ms":500}}}}}`, "session.audio.input.turn_detection.silence_duration_ms"},
		{realtime.Beta, `{"type":"session.update","session":{"type":"realtime"}}`, "session.type"},
		{realtime.Beta, `{"type":"session.update","session":{"turn_detection":{"type":"server_vad","idle_timeout_ms":6000}}}`, "session.turn_detection.idle_timeout_ms"},
		{realtime.GA, `{"type":"response.create","response":{"modalities":["audio"]}}`, "response.modalities"},
		{realtime.GA, `{"type":"response.create","response":{"metadata":{"a":1}}}`, "response.metadata.a"},
		{realtime.Beta, `{"type":"response.create","response":{"output_modalities":["audio"]}}`, "response.output_modalities"},
		{realtime.GA, `{"type":"conversation.item.create","item":{"type":"message","role":"assistant","content":[{"type":"text","text":"x"}]}}`, "item.content[0].type"},
		{realtime.GA, `{"type":"conversation.item.create","item":{"type":"message","role":"system","content":[{"type":"input_audio"}]}}`, "item.content[0].type"},
		{realtime.GA, `{"type":"conversation.item.create","item":{"type":"function_call_output","output":"{}"}}`, "item.call_id"},
		{realtime.GA, `{"type":"conversation.item.truncate","item_id":"i","content_index":0}`, "audio_end_ms"},
		{realtime.GA, `{"type":"conversation.item.truncate","item_id":"i","content_index":0,"audio_end_ms":1.5}`, "audio_end_ms"},
		{realtime.GA, `{"type":"response.cancel","response_id":"r","reason":"x"}`, "reason"},
		{realtime.Beta, `{"type":"input_audio_buffer.append"}`, "audio"},
	}
	for _, c := range bad {
		err := realtimetest.ValidateClientEvent(c.d, []byte(c.event))
		var se *realtimetest.SchemaError
		if !errors.As(err, &se) || se.Param != c.param {
			t.Errorf("%s %s: got %v, want an error at %s", c.d, c.event, err, c.param)
		}
	}
	good := []struct {
		d     realtime.Dialect
		event string
	}{
		{realtime.GA, `{"type":"conversation.item.create","item":{"type":"message","role":"assistant","content":[{"type":"output_text","text":"x"}]}}`},
		{realtime.Beta, `{"type":"conversation.item.create","item":{"type":"message","role":"assistant","content":[{"type":"text","text":"x"}]}}`},
		{realtime.GA, `{"type":"session.update","session":{"type":"realtime","audio":{"input":{"turn_detection":null,"transcription":null,"noise_reduction":null}}}}`},
		{realtime.GA, `{"type":"response.create","event_id":"e","response":{"instructions":"x","metadata":{"voicebot_request":"e"}}}`},
	}
	for _, c := range good {
		if err := realtimetest.ValidateClientEvent(c.d, []byte(c.event)); err != nil {
			t.Errorf("%s %s: %v", c.d, c.event, err)
		}
	}
}
