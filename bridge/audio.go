package bridge

import (
	"encoding/binary"
	"time"

	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/realtime"
	"github.com/voicebot/voicebot/resample"
	"github.com/voicebot/voicebot/sound"
)

// The call's audio both ways: the model's deltas to the playout, and the
// caller's frames (or, in passthrough, G.711 payloads) to the model.

// audioMode is how the call's audio meets the model's format.
type audioMode int

const (
	// transcoded: the model speaks PCM16 at its rate; the call's codec is
	// decoded and resampled to it and back.
	transcoded audioMode = iota
	// passthrough: the model speaks the call's G.711; payloads go both
	// ways as they are.
	passthrough
)

// useCodec sets the transcoded path up for the call's codec: resamplers
// between the model's rate and the codec's. A codec of the same rate
// keeps them (and their state).
func (c *callState) useCodec(codec media.Codec) {
	if !codec.Valid() {
		codec = media.PCMU
	}
	if c.down == nil || c.codec.SampleRate != codec.SampleRate {
		c.down = resample.MustNew(c.format.SampleRate(), codec.SampleRate)
		c.callPCM = make([]int16, 0, deltaPiece*codec.SampleRate/c.format.SampleRate()+1)
	}
	if c.up.callRate != codec.SampleRate {
		c.up.useRates(codec.SampleRate, c.format)
	}
	if c.vad != nil {
		c.vad.perMS = codec.SampleRate / 1000
	}
	c.codec = codec
}

// onAudio decodes a model audio delta and queues it at the call's rate.
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
	if c.mode == passthrough {
		// Queued as it came unless a re-INVITE has changed the call's
		// codec since the session was configured.
		if c.media.CurrentPeer().Codec == c.codec {
			c.media.EnqueuePayload(ref, ev.Audio)
			return
		}
		for audio := ev.Audio; len(audio) > 0; {
			piece := audio[:min(len(audio), c.codec.FrameBytes)]
			audio = audio[len(piece):]
			c.callPCM = c.codec.Decode(c.callPCM[:0], piece)
			c.media.Enqueue(ref, c.callPCM)
		}
		return
	}
	for audio := ev.Audio; len(audio) >= 2; {
		piece := audio[:min(len(audio), 2*deltaPiece)&^1]
		audio = audio[len(piece):]
		c.modelPCM = c.modelPCM[:0]
		for i := 0; i < len(piece); i += 2 {
			c.modelPCM = append(c.modelPCM, int16(binary.LittleEndian.Uint16(piece[i:])))
		}
		c.callPCM = c.down.Process(c.callPCM[:0], c.modelPCM)
		c.media.Enqueue(ref, c.callPCM)
	}
}

// onAudioDone ends an answer's audio: the last few milliseconds the
// resampler's filter still holds are queued behind it, not left to start
// the next answer (4.5 ms late, and in the wrong answer).
func (c *callState) onAudioDone(ev realtime.ServerEvent) {
	if c.mode == passthrough || c.discarded[ev.ResponseID] {
		return // passthrough has no resampler; an interrupted answer's tail was dropped with it
	}
	c.callPCM = c.down.Flush(c.callPCM[:0])
	c.media.Enqueue(media.ItemRef{ResponseID: ev.ResponseID, ItemID: ev.ItemID, ContentIndex: ev.ContentIndex}, c.callPCM)
}

// enqueueSound queues one of voicebot's own sounds (filler, apology), which
// are PCM16 at sound.Rate, converted when the call's codec has another rate.
func (c *callState) enqueueSound(ref media.ItemRef, pcm []int16) {
	if c.codec.SampleRate != sound.Rate {
		rs := resample.MustNew(sound.Rate, c.codec.SampleRate)
		pcm = rs.Flush(rs.Process(nil, pcm))
	}
	c.media.Enqueue(ref, pcm)
}

// deltaPiece is how many samples of a model's PCM16 audio delta are
// converted at a time: 20 ms at 24 kHz. Deltas come in any size (100 ms is typical, whole
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
func (c *callState) receivedMS(itemID string) int {
	return c.receivedBytes[itemID] / c.format.BytesPerMS()
}

// modelFormats are the call codecs a Realtime model can speak itself.
var modelFormats = map[string]realtime.AudioFormat{"PCMU": realtime.PCMU, "PCMA": realtime.PCMA}

// usePassthrough makes the call's model speak the call's codec, if it can;
// otherwise the call stays transcoded.
func (c *callState) usePassthrough(codec media.Codec) {
	format, ok := modelFormats[codec.Name]
	if !ok {
		return
	}
	c.format, c.mode = format, passthrough
	c.useCodec(codec)
	c.up.passthrough(format, int(c.cfg.AppendInterval/time.Millisecond))
}

// callerPayloadFunc is the media's raw-audio hook for a passthrough call.
func (c *callState) callerPayloadFunc() func([]byte, media.Codec) {
	if c.mode != passthrough {
		return nil
	}
	return c.callerPayload
}

// callerPayload takes a passthrough call's G.711 from the media receive
// goroutine. It is decoded only for what needs PCM: the local speech
// detector and the recording; and recoded when a re-INVITE has changed the
// call's codec since the model's session was set up for c.codec (G.711's
// laws share a rate: a sample each way).
func (c *callState) callerPayload(g711 []byte, codec media.Codec) {
	decoded := false
	if codec != c.codec {
		c.callerPCM = codec.Decode(c.callerPCM[:0], g711)
		c.recoded = c.codec.Encode(c.recoded[:0], c.callerPCM)
		g711, decoded = c.recoded, true
	}
	if c.vad != nil || c.rec.Recording() {
		if !decoded {
			c.callerPCM = c.codec.Decode(c.callerPCM[:0], g711)
		}
		if c.vad != nil {
			c.vad.frame(c.callerPCM)
		}
		if c.rec.Recording() {
			c.rec.CallerAudio(c.clock.Now(), c.callerPCM)
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
