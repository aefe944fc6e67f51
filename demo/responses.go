package demo

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

// responseRequest is what a response is asked to do.
type responseRequest struct {
	eventID string // of the response.create; "" for the VAD's own
	// instructions govern the response: the session's, or the
	// response.create's, which replace them for this response.
	instructions string
	// prompt is what the response.create's instructions ask beyond the
	// session's ("" when they are the session's).
	prompt   string
	metadata map[string]string
	textOnly bool // output_modalities (beta: modalities) ["text"]: no audio
}

// ResponseInfo is a response the session generated and what governed it.
type ResponseInfo struct {
	ID      string
	Request string // the response.create's event id; "" for the VAD's own
	// Instructions are those the response followed: the session's, or
	// the response.create's, which replace them for that response.
	Instructions string
	Prompt       string // what they asked beyond the session's
	Transcript   string
	Status       string // completed, cancelled, failed, incomplete; "" while in progress
}

func (s *Session) observeResponse(info ResponseInfo) {
	if o := s.srv.opts.Observer; o != nil {
		o.Response(s, info)
	}
}

func (s *Session) onResponseCreate(data []byte, eventID string) {
	var ev struct {
		Response *struct {
			Instructions     *string           `json:"instructions"`
			Metadata         map[string]string `json:"metadata"`
			OutputModalities []string          `json:"output_modalities"`
			Modalities       []string          `json:"modalities"`
		} `json:"response"`
	}
	_ = json.Unmarshal(data, &ev) // the shape was validated
	s.mu.Lock()
	active := s.active
	req := responseRequest{eventID: eventID, instructions: s.instructions}
	session := s.instructions
	s.mu.Unlock()
	if active != nil {
		s.sendError("conversation_already_has_active_response",
			fmt.Sprintf("Conversation already has an active response in progress: %s. Wait until the response is finished before creating a new one.", active.id), "", eventID)
		return
	}
	if r := ev.Response; r != nil {
		req.metadata = r.Metadata
		modalities := r.OutputModalities
		if s.dialect == realtime.Beta {
			modalities = r.Modalities
		}
		req.textOnly = len(modalities) == 1 && modalities[0] == "text"
		if r.Instructions != nil {
			req.instructions = *r.Instructions
			req.prompt = strings.TrimSpace(strings.Replace(req.instructions, session, "", 1))
			if !strings.Contains(req.instructions, session) {
				// Legal, and what the real service then does: the response
				// runs without the agent's persona, language and rules.
				s.violate("persona", "response.create", eventID, "response.instructions replace the session's instructions without them: "+
					"this response is spoken without the agent's persona ("+clip(req.instructions, 80)+")")
			}
		}
	}
	s.startResponse(req)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// followPrompt is what the demo says when a response is prompted: it does
// what it is asked as far as a model without words can (the greeting, the
// goodbye tones), and says which prompt it followed.
func followPrompt(opts *Options, prompt string) ([]int16, string) {
	lower := strings.ToLower(prompt)
	switch {
	case strings.Contains(lower, "goodbye"):
		return GoodbyeAudio(), "Goodbye!"
	case strings.Contains(lower, "greet"), strings.Contains(lower, "welcome"):
		return opts.Greeting, opts.GreetingText
	}
	return beep(0.4, 550), "(as asked: " + clip(prompt, 120) + ")"
}

// startResponse generates one spoken response: what a prompt asks, the
// reply to the pending tool output, text or utterance, or the greeting
// when there is none.
func (s *Session) startResponse(req responseRequest) {
	s.mu.Lock()
	if s.active != nil || s.closed {
		s.mu.Unlock()
		return
	}
	if req.eventID == "" {
		req.instructions = s.instructions // the VAD's own response
	}
	if fail := s.srv.takeFailure(); fail != "" {
		r := &response{id: s.newIDLocked("resp"), cancel: make(chan string, 1), done: make(chan struct{}), metadata: req.metadata}
		r.info = ResponseInfo{ID: r.id, Request: req.eventID, Instructions: req.instructions, Prompt: req.prompt}
		s.active = r
		s.streamWG.Add(1)
		s.mu.Unlock()
		s.observeResponse(r.info)
		go s.streamFailed(r, fail)
		return
	}
	var audio []int16
	var transcript string
	var call *ToolCall
	if req.prompt != "" {
		// A prompted response (greeting, goodbye, apology) does what it is
		// told; whatever is pending waits for the next.
		audio, transcript = followPrompt(&s.srv.opts, req.prompt)
	} else if s.pendingTool != "" {
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
	r := &response{id: s.newIDLocked("resp"), itemID: s.newIDLocked("item"), cancel: make(chan string, 1), done: make(chan struct{}), call: call,
		metadata: req.metadata, textOnly: req.textOnly}
	r.info = ResponseInfo{ID: r.id, Request: req.eventID, Instructions: req.instructions, Prompt: req.prompt, Transcript: transcript}
	prev := s.lastItemLocked()
	s.addItemLocked(&item{id: r.itemID, role: "assistant", kind: "message", hasAudio: !r.textOnly, transcript: transcript})
	if call != nil {
		r.callItem, r.callID = s.newIDLocked("item"), s.newIDLocked("call")
	}
	s.active = r
	out := s.output
	s.streamWG.Add(1)
	s.mu.Unlock()
	s.observeResponse(r.info)
	if r.textOnly {
		go s.streamText(r, prev, transcript)
		return
	}
	go s.stream(r, prev, audio, transcript, out)
}

// streamText is a text-only response: the words the spoken answer would
// have said, as output_text deltas (beta: response.text.*), at the pace
// of the audio chunks.
func (s *Session) streamText(r *response, prev, text string) {
	defer s.streamWG.Done()
	defer close(r.done)
	partType, deltaType, doneType := "output_text", "response.output_text.delta", "response.output_text.done"
	if s.dialect == realtime.Beta {
		partType, deltaType, doneType = "text", "response.text.delta", "response.text.done"
	}
	s.begin(r, prev, map[string]any{"type": "text", "text": ""})
	interval := time.Duration(float64(s.srv.opts.ChunkMS)/s.srv.opts.Speed*1e6) * time.Nanosecond
	words := strings.Fields(text)
	reason, sent := "", 0
loop:
	for i, w := range words {
		select {
		case reason = <-r.cancel:
			break loop
		case <-s.closedCh:
			reason = "client_cancelled"
			break loop
		case <-time.After(interval):
		}
		if i > 0 {
			w = " " + w
		}
		s.send(map[string]any{"type": deltaType, "response_id": r.id, "item_id": r.itemID, "output_index": 0, "content_index": 0, "delta": w})
		sent++
	}
	said := strings.Join(words[:sent], " ")
	s.send(map[string]any{"type": doneType, "response_id": r.id, "item_id": r.itemID, "output_index": 0, "content_index": 0, "text": said})
	s.end(r, prev, map[string]any{"type": "text", "text": said}, map[string]any{"type": partType, "text": said}, reason)
}

// messageItem is the response's message item as events describe it.
func (r *response) messageItem(status string, content []map[string]any) map[string]any {
	return map[string]any{"id": r.itemID, "object": "realtime.item", "type": "message", "status": status, "role": "assistant", "content": content}
}

// begin opens a response's message: response.created, the item added (to
// the response and the conversation), its content part (part).
func (s *Session) begin(r *response, prev string, part map[string]any) {
	s.send(map[string]any{"type": "response.created", "response": map[string]any{"id": r.id, "object": "realtime.response", "status": "in_progress",
		"output": []any{}, "metadata": r.metadataWire()}})
	s.send(map[string]any{"type": "rate_limits.updated", "rate_limits": []map[string]any{{"name": "tokens", "limit": 20000, "remaining": 19000, "reset_seconds": 1.0}}})
	s.send(map[string]any{"type": "response.output_item.added", "response_id": r.id, "output_index": 0, "item": r.messageItem("in_progress", []map[string]any{})})
	s.send(map[string]any{"type": s.name("conversation.item.added"), "previous_item_id": nullable(prev), "item": r.messageItem("in_progress", []map[string]any{})})
	s.send(map[string]any{"type": "response.content_part.added", "response_id": r.id, "item_id": r.itemID, "output_index": 0, "content_index": 0, "part": part})
}

// end closes it: the content part done (part), the item done with its
// content, the function call the response makes (unless cancelled, reason
// set), and response.done.
func (s *Session) end(r *response, prev string, part, content map[string]any, reason string) {
	status, itemStatus := "completed", "completed"
	var details any
	if reason != "" {
		status, itemStatus = "cancelled", "incomplete"
		details = map[string]any{"type": "cancelled", "reason": reason}
	}
	s.send(map[string]any{"type": "response.content_part.done", "response_id": r.id, "item_id": r.itemID, "output_index": 0, "content_index": 0, "part": part})
	final := r.messageItem(itemStatus, []map[string]any{content})
	s.send(map[string]any{"type": "response.output_item.done", "response_id": r.id, "output_index": 0, "item": final})
	if s.dialect == realtime.GA {
		s.send(map[string]any{"type": "conversation.item.done", "previous_item_id": nullable(prev), "item": final})
	}
	output := []any{final}
	if r.call != nil && reason == "" {
		output = append(output, s.streamFunctionCall(r, r.itemID))
	}
	s.finish(r, status, details, output)
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
	partType := "audio"
	s.begin(r, prev, map[string]any{"type": partType, "transcript": ""})

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
	heard := transcript
	if reason != "" {
		heard = strings.Join(words[:sentWords], " ")
	}
	part := map[string]any{"type": partType, "transcript": heard}
	s.send(map[string]any{"type": s.name("response.output_audio.done"), "response_id": r.id, "item_id": r.itemID, "output_index": 0, "content_index": 0})
	s.send(map[string]any{"type": s.name("response.output_audio_transcript.done"), "response_id": r.id, "item_id": r.itemID, "output_index": 0, "content_index": 0, "transcript": heard})
	s.end(r, prev, part, part, reason)
}

// finish ends a response: it is no longer active, and response.done says how.
func (s *Session) finish(r *response, status string, details any, output []any) {
	s.mu.Lock()
	if s.active == r {
		s.active = nil
	}
	s.mu.Unlock()
	info := r.info
	info.Status = status
	s.observeResponse(info)
	s.send(map[string]any{"type": "response.done", "response": map[string]any{
		"id": r.id, "object": "realtime.response", "status": status, "status_details": details,
		"output": output, "metadata": r.metadataWire(), "usage": map[string]any{"total_tokens": 0, "input_tokens": 0, "output_tokens": 0},
	}})
}

// streamFailed is a response that fails before it says anything, as the
// service's do on a server error (failed) or a filtered answer (incomplete).
func (s *Session) streamFailed(r *response, status string) {
	defer s.streamWG.Done()
	defer close(r.done)
	s.send(map[string]any{"type": "response.created", "response": map[string]any{"id": r.id, "object": "realtime.response", "status": "in_progress",
		"output": []any{}, "metadata": r.metadataWire()}})
	details := map[string]any{"type": status, "reason": "content_filter"}
	if status == "failed" {
		details = map[string]any{"type": status, "error": map[string]any{"type": "server_error", "code": "internal_error"}}
	}
	s.finish(r, status, details, []any{})
}

func (r *response) metadataWire() any {
	if len(r.metadata) == 0 {
		return nil
	}
	return r.metadata
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
