package realtimetest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/zaf/g711"

	"github.com/voicebot/voicebot/realtime"
	"github.com/voicebot/voicebot/resample"
)

func (s *Session) onResponseCreate(eventID string) {
	s.mu.Lock()
	active := s.active
	s.mu.Unlock()
	if active != nil {
		s.sendError("conversation_already_has_active_response",
			fmt.Sprintf("Conversation already has an active response in progress: %s. Wait until the response is finished before creating a new one.", active.id), "", eventID)
		return
	}
	s.startResponse(eventID)
}

// startResponse generates one spoken response: the reply to the pending
// utterance, or the greeting when there is none.
func (s *Session) startResponse(eventID string) {
	s.mu.Lock()
	if s.active != nil || s.closed {
		s.mu.Unlock()
		return
	}
	var audio []int16
	var transcript string
	var call *ToolCall
	if s.pendingTool != "" {
		// Speak the result of a tool: a short two-tone beep.
		audio = append(beep(0.25, 880), beep(0.25, 660)...)
		transcript = "(the tool answered: " + s.pendingTool + ")"
		s.pendingTool = ""
	} else if s.pendingText != "" {
		// A text turn (a key press, history): acknowledge it with a short
		// beep, or call the tool the script picks for it.
		audio = beep(0.4, 660)
		transcript = "(heard: " + s.pendingText + ")"
		if call = s.srv.opts.ToolScript(s.pendingText, s.tools); call != nil {
			audio, transcript = call.Say, call.SayText
		}
		s.pendingText = ""
	} else if s.pending != nil {
		audio, transcript = s.srv.opts.Reply(s.pending)
		s.pending = nil
	} else {
		audio, transcript = s.srv.opts.Greeting, s.srv.opts.GreetingText
	}
	r := &response{id: s.newIDLocked("resp"), itemID: s.newIDLocked("item"), cancel: make(chan string, 1), done: make(chan struct{}), call: call}
	prev := s.lastItemLocked()
	s.addItemLocked(&item{id: r.itemID, role: "assistant", kind: "message", hasAudio: true, transcript: transcript})
	if call != nil {
		r.callItem, r.callID = s.newIDLocked("item"), s.newIDLocked("call")
	}
	s.active = r
	out := s.output
	s.streamWG.Add(1)
	s.mu.Unlock()
	go s.stream(r, prev, audio, transcript, out)
}

func (s *Session) onResponseCancel(data []byte, eventID string) {
	var ev struct {
		ResponseID string `json:"response_id"`
	}
	_ = json.Unmarshal(data, &ev)
	s.mu.Lock()
	active := s.active
	s.mu.Unlock()
	if active == nil || (ev.ResponseID != "" && ev.ResponseID != active.id) {
		s.sendError("response_cancel_not_active", "Cancellation failed: no active response found", "", eventID)
		return
	}
	s.cancelResponse(active, "client_cancelled")
}

// cancelResponse stops an active response and waits until its final events are sent.
func (s *Session) cancelResponse(r *response, reason string) {
	select {
	case r.cancel <- reason:
	default:
	}
	<-r.done
}

// stream sends a response's events, pacing audio at Speed× real time.
func (s *Session) stream(r *response, prev string, audio []int16, transcript string, format realtime.AudioFormat) {
	defer s.streamWG.Done()
	defer close(r.done)
	itemObj := func(status string, content []map[string]any) map[string]any {
		return map[string]any{"id": r.itemID, "object": "realtime.item", "type": "message", "status": status, "role": "assistant", "content": content}
	}
	partType := "audio"
	s.send(map[string]any{"type": "response.created", "response": map[string]any{"id": r.id, "object": "realtime.response", "status": "in_progress", "output": []any{}}})
	s.send(map[string]any{"type": "rate_limits.updated", "rate_limits": []map[string]any{{"name": "tokens", "limit": 20000, "remaining": 19000, "reset_seconds": 1.0}}})
	s.send(map[string]any{"type": "response.output_item.added", "response_id": r.id, "output_index": 0, "item": itemObj("in_progress", []map[string]any{})})
	s.send(map[string]any{"type": s.name("conversation.item.added"), "previous_item_id": nullable(prev), "item": itemObj("in_progress", []map[string]any{})})
	s.send(map[string]any{"type": "response.content_part.added", "response_id": r.id, "item_id": r.itemID, "output_index": 0, "content_index": 0, "part": map[string]any{"type": partType, "transcript": ""}})

	chunk := s.srv.opts.ChunkMS * 24
	words := strings.Fields(transcript)
	chunks := (len(audio) + chunk - 1) / chunk
	interval := time.Duration(float64(s.srv.opts.ChunkMS)/s.srv.opts.Speed*1e6) * time.Nanosecond
	start := time.Now().Add(s.srv.opts.FirstAudioDelay)
	reason := ""
	sentWords := 0
	var down *resample.Resampler
	if format != realtime.PCM16 {
		down = resample.MustNew(24000, 8000)
	}
loop:
	for i := 0; i < chunks; i++ {
		select {
		case reason = <-r.cancel:
			break loop
		case <-s.closedCh:
			reason = "client_cancelled"
			break loop
		case <-time.After(time.Until(start.Add(time.Duration(i) * interval))):
		}
		pcm := audio[i*chunk : min(len(audio), (i+1)*chunk)]
		s.send(map[string]any{"type": s.name("response.output_audio.delta"), "response_id": r.id, "item_id": r.itemID,
			"output_index": 0, "content_index": 0, "delta": b64(encodeOutput(pcm, format, down))})
		s.mu.Lock()
		if it := s.items[r.itemID]; it != nil {
			it.audioMS += len(pcm) / 24
		}
		s.mu.Unlock()
		if want := (i + 1) * len(words) / chunks; want > sentWords {
			s.send(map[string]any{"type": s.name("response.output_audio_transcript.delta"), "response_id": r.id, "item_id": r.itemID,
				"output_index": 0, "content_index": 0, "delta": strings.Join(words[sentWords:want], " ") + " "})
			sentWords = want
		}
	}
	status, itemStatus := "completed", "completed"
	var details any
	heard := transcript
	if reason != "" {
		status, itemStatus = "cancelled", "incomplete"
		details = map[string]any{"type": "cancelled", "reason": reason}
		heard = strings.Join(words[:sentWords], " ")
	}
	part := map[string]any{"type": partType, "transcript": heard}
	s.send(map[string]any{"type": s.name("response.output_audio.done"), "response_id": r.id, "item_id": r.itemID, "output_index": 0, "content_index": 0})
	s.send(map[string]any{"type": s.name("response.output_audio_transcript.done"), "response_id": r.id, "item_id": r.itemID, "output_index": 0, "content_index": 0, "transcript": heard})
	s.send(map[string]any{"type": "response.content_part.done", "response_id": r.id, "item_id": r.itemID, "output_index": 0, "content_index": 0, "part": part})
	final := itemObj(itemStatus, []map[string]any{part})
	s.send(map[string]any{"type": "response.output_item.done", "response_id": r.id, "output_index": 0, "item": final})
	if s.dialect == realtime.GA {
		s.send(map[string]any{"type": "conversation.item.done", "previous_item_id": nullable(prev), "item": final})
	}
	output := []any{final}
	if r.call != nil && reason == "" {
		output = append(output, s.streamFunctionCall(r, r.itemID))
	}
	s.mu.Lock()
	if s.active == r {
		s.active = nil
	}
	s.mu.Unlock()
	s.send(map[string]any{"type": "response.done", "response": map[string]any{
		"id": r.id, "object": "realtime.response", "status": status, "status_details": details,
		"output": output, "usage": map[string]any{"total_tokens": 0, "input_tokens": 0, "output_tokens": 0},
	}})
}

// streamFunctionCall sends the function call item of a response, after its
// spoken item, as the service does (§7 of the protocol notes): item added,
// argument deltas, arguments done, item done. It returns the final item.
func (s *Session) streamFunctionCall(r *response, prev string) map[string]any {
	obj := func(status, args string) map[string]any {
		return map[string]any{"id": r.callItem, "object": "realtime.item", "type": "function_call", "status": status,
			"call_id": r.callID, "name": r.call.Name, "arguments": args}
	}
	s.mu.Lock()
	s.addItemLocked(&item{id: r.callItem, role: "assistant", kind: "function_call", callID: r.callID})
	s.mu.Unlock()
	s.send(map[string]any{"type": "response.output_item.added", "response_id": r.id, "output_index": 1, "item": obj("in_progress", "")})
	s.send(map[string]any{"type": s.name("conversation.item.added"), "previous_item_id": nullable(prev), "item": obj("in_progress", "")})
	args := r.call.Arguments
	for i := 0; i < len(args); i += 8 {
		s.send(map[string]any{"type": "response.function_call_arguments.delta", "response_id": r.id, "item_id": r.callItem,
			"output_index": 1, "call_id": r.callID, "delta": args[i:min(len(args), i+8)]})
	}
	s.send(map[string]any{"type": "response.function_call_arguments.done", "response_id": r.id, "item_id": r.callItem,
		"output_index": 1, "call_id": r.callID, "name": r.call.Name, "arguments": args})
	final := obj("completed", args)
	s.send(map[string]any{"type": "response.output_item.done", "response_id": r.id, "output_index": 1, "item": final})
	if s.dialect == realtime.GA {
		s.send(map[string]any{"type": "conversation.item.done", "previous_item_id": nullable(prev), "item": final})
	}
	return final
}

// beep is a tone of seconds at freq, PCM16 at 24 kHz, with soft edges.
func beep(seconds, freq float64) []int16 {
	out := make([]int16, int(seconds*24000))
	for i := range out {
		edge := math.Min(1, math.Min(float64(i), float64(len(out)-i))/240)
		out[i] = int16(6000 * edge * math.Sin(2*math.Pi*freq*float64(i)/24000))
	}
	return out
}

func encodeOutput(pcm []int16, f realtime.AudioFormat, down *resample.Resampler) []byte {
	if f == realtime.PCM16 {
		b := make([]byte, 2*len(pcm))
		for i, v := range pcm {
			binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
		}
		return b
	}
	pcm8 := down.Process(nil, pcm)
	b := make([]byte, len(pcm8))
	for i, v := range pcm8 {
		if f == realtime.PCMU {
			b[i] = g711.EncodeUlawFrame(v)
		} else {
			b[i] = g711.EncodeAlawFrame(v)
		}
	}
	return b
}
