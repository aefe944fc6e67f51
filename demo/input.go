package demo

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

	"github.com/zaf/g711"

	"github.com/voicebot/voicebot/realtime"
)

// The input audio buffer: appends decoded to the input timeline, the
// server VAD's speech events, commits.

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
			// No VAD: the client commits the buffer (push to talk), and
			// what was said is all of it.
			if len(s.utterance) < maxUtterance {
				s.utterance = append(s.utterance, w...)
			}
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
			keep := min(len(s.prefix), (nowMS-sp.startMS)*24)
			s.utterance = append(s.utterance[:0], s.prefix[len(s.prefix)-keep:]...)
			startMS, itemID := sp.startMS, sp.itemID
			out = append(out, func() {
				if o := s.srv.opts.Observer; o != nil {
					o.SpeechStarted(s)
				}
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
			s.sendTranscript(itemID, utter)
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
	utter := append([]int16(nil), s.utterance...)
	s.pending = utter
	s.utterance = s.utterance[:0]
	s.buffered = 0
	transcribe := s.transcribe
	s.mu.Unlock()
	s.send(map[string]any{"type": "input_audio_buffer.committed", "previous_item_id": nullable(prev), "item_id": itemID})
	s.sendUserItem(prev, itemID)
	if transcribe {
		s.sendTranscript(itemID, utter)
	}
}

// sendTranscript is the demo's transcription of an utterance: it cannot
// tell words, so it says how long the speech was.
func (s *Session) sendTranscript(itemID string, utter []int16) {
	s.send(map[string]any{"type": "conversation.item.input_audio_transcription.completed", "item_id": itemID, "content_index": 0,
		"transcript": fmt.Sprintf("(%.1f seconds of speech)", float64(len(utter))/24000),
		"usage":      map[string]any{"type": "duration", "seconds": float64(len(utter)) / 24000}})
}
