package bridge

import (
	"encoding/binary"
	"time"

	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/realtime"
)

// The call's audio both ways: the model's deltas to the playout, and the
// caller's frames (or, in passthrough, G.711 payloads) to the model.

// onAudio decodes a model audio delta (PCM16 24 kHz) and queues it at 8 kHz.
func (c *callState) onAudio(ev realtime.ServerEvent) {
	if c.discarded[ev.ResponseID] {
		return // a late delta of an interrupted response
	}
	if !c.turnEndedAt.IsZero() {
		// The answer's first audio: it plays after what is queued.
		wait := time.Duration(c.media.QueuedMS()) * time.Millisecond
		c.cfg.Metrics.ResponseLatency(c.clock.Now().Sub(c.turnEndedAt) + time.Duration(c.turnEndedMS)*time.Millisecond + wait)
		c.turnEndedAt = time.Time{}
	}
	c.receivedBytes[ev.ItemID] += len(ev.Audio)
	c.resp.audioFrom = ev.ResponseID
	ref := media.ItemRef{ResponseID: ev.ResponseID, ItemID: ev.ItemID, ContentIndex: ev.ContentIndex}
	if c.bytesPerMS == 8 {
		// Passthrough: G.711 at 8 kHz, queued as it came unless a re-INVITE
		// has changed the call's codec since the session was configured.
		if c.media.CurrentPeer().Codec == c.passthrough {
			c.media.EnqueuePayload(ref, ev.Audio)
			return
		}
		for audio := ev.Audio; len(audio) > 0; {
			piece := audio[:min(len(audio), deltaPiece/3)] // 20 ms at 8 kHz
			audio = audio[len(piece):]
			c.pcm8 = c.passthrough.Decode(c.pcm8[:0], piece)
			c.media.Enqueue(ref, c.pcm8)
		}
		return
	}
	for audio := ev.Audio; len(audio) >= 2; {
		piece := audio[:min(len(audio), 2*deltaPiece)&^1]
		audio = audio[len(piece):]
		c.pcm24 = c.pcm24[:0]
		for i := 0; i < len(piece); i += 2 {
			c.pcm24 = append(c.pcm24, int16(binary.LittleEndian.Uint16(piece[i:])))
		}
		c.pcm8 = c.down.Process(c.pcm8[:0], c.pcm24)
		c.media.Enqueue(ref, c.pcm8)
	}
}

// onAudioDone ends an answer's audio: the last few milliseconds the
// resampler's filter still holds are queued behind it, not left to start
// the next answer (4.5 ms late, and in the wrong answer).
func (c *callState) onAudioDone(ev realtime.ServerEvent) {
	if c.bytesPerMS == 8 || c.discarded[ev.ResponseID] {
		return // passthrough has no resampler; an interrupted answer's tail was dropped with it
	}
	c.pcm8 = c.down.Flush(c.pcm8[:0])
	c.media.Enqueue(media.ItemRef{ResponseID: ev.ResponseID, ItemID: ev.ItemID, ContentIndex: ev.ContentIndex}, c.pcm8)
}

// deltaPiece is how many samples of a model's audio delta are converted at
// a time: 20 ms at 24 kHz. Deltas come in any size (100 ms is typical, whole
// seconds happen); converting them whole would make every call keep buffers,
// and a resampler history, the size of the largest delta it ever got.
const deltaPiece = 480

// rtpKey takes a key press from a media worker. A flood beyond
// the channel's room is dropped here rather than stalling the RTP reader.
func (c *callState) rtpKey(digit rune, _ time.Duration) {
	select {
	case c.rtpKeys <- digit:
	default:
	}
}

// receivedMS is how much of an item's audio the model has sent, in whole ms.
func (c *callState) receivedMS(itemID string) int { return c.receivedBytes[itemID] / c.bytesPerMS }

// usePassthrough makes the call's model speak its G.711 codec.
func (c *callState) usePassthrough(codec media.Codec) {
	switch codec.Name {
	case "PCMU":
		c.format = realtime.PCMU
	case "PCMA":
		c.format = realtime.PCMA
	default:
		return
	}
	c.passthrough, c.bytesPerMS = codec, 8
	c.up.passthrough(int(c.cfg.AppendInterval / time.Millisecond))
}

// callerPayloadFunc is the media's raw-audio hook for a passthrough call.
func (c *callState) callerPayloadFunc() func([]byte) {
	if c.bytesPerMS != 8 {
		return nil
	}
	return c.callerPayload
}

// callerPayload takes a passthrough call's G.711 from the media receive
// goroutine. It is decoded only for what needs PCM: the local speech
// detector and the recording.
func (c *callState) callerPayload(g711 []byte) {
	if c.vad != nil || c.rec.Recording() {
		c.pcm8in = c.passthrough.Decode(c.pcm8in[:0], g711)
		if c.vad != nil {
			c.vad.frame(c.pcm8in)
		}
		if c.rec.Recording() {
			c.rec.CallerAudio(c.clock.Now(), c.pcm8in)
		}
	}
	c.up.writeRaw(g711)
}

// callerAudio takes the caller's audio from a media worker:
// into the recording, then to the model.
func (c *callState) callerAudio(pcm []int16) {
	if c.rec.Recording() {
		c.rec.CallerAudio(c.clock.Now(), pcm)
	}
	c.up.write(pcm)
}
