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

// useCodec sets the transcoded path up for the call's codec, at the call's
// setup: resamplers between the model's rate and the codec's. A codec of
// the same rate keeps them (and their state). Mid-call, each direction
// follows a change of rate on its own goroutine (followCodec,
// upstream.write).
func (c *callState) useCodec(codec media.Codec) {
	if !codec.Valid() {
		codec = media.PCMU
	}
	c.followCodec(codec)
	if c.up.callRate != codec.SampleRate {
		c.up.useRates(codec.SampleRate, c.format)
	}
	if c.vad != nil {
		c.vad.perMS = codec.SampleRate / 1000
	}
}

// followCodec converts the model's audio to codec's rate from here on; a
// codec of the same rate keeps the resampler (and its state). It runs on
// the bridge goroutine, which owns the model → caller path.
func (c *callState) followCodec(codec media.Codec) {
	if c.down == nil || c.codec.SampleRate != codec.SampleRate {
		c.down = resample.MustNew(c.format.SampleRate(), codec.SampleRate)
		c.callPCM = make([]int16, 0, deltaPiece*codec.SampleRate/c.format.SampleRate()+1)
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
		// codec since the session was configured: then decoded (the
		// model's G.711), brought to the call's rate, and queued as PCM.
		call := c.media.CurrentPeer().Codec
		if call == c.codec {
			c.media.EnqueuePayload(ref, ev.Audio)
			return
		}
		for audio := ev.Audio; len(audio) > 0; {
			piece := audio[:min(len(audio), c.codec.FrameBytes)]
			audio = audio[len(piece):]
			c.callPCM = c.codec.Decode(c.callPCM[:0], piece)
			if call.SampleRate == c.codec.SampleRate {
				c.media.Enqueue(ref, c.callPCM, c.codec.SampleRate)
				continue
			}
			if c.ptUp == nil || c.ptUp.OutRate() != call.SampleRate {
				c.ptUp = resample.MustNew(c.codec.SampleRate, call.SampleRate)
			}
			c.ptUpPCM = c.ptUp.Process(c.ptUpPCM[:0], c.callPCM)
			c.media.Enqueue(ref, c.ptUpPCM, call.SampleRate)
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
		if now := c.media.CurrentPeer().Codec; now.SampleRate != c.codec.SampleRate {
			c.log.Info().Str("codec", now.Name).Str("rate", now.Rate()).Msg("call: the codec's rate changed: the bot's audio follows")
			c.followCodec(now)
		}
		c.callPCM = c.down.Process(c.callPCM[:0], c.modelPCM)
		c.media.Enqueue(ref, c.callPCM, c.codec.SampleRate)
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
	c.media.Enqueue(media.ItemRef{ResponseID: ev.ResponseID, ItemID: ev.ItemID, ContentIndex: ev.ContentIndex}, c.callPCM, c.codec.SampleRate)
}

// enqueueSound queues one of voicebot's own sounds (filler, apology), which
// are PCM16 at sound.Rate, converted when the call's codec has another rate
// (by one resampler the call keeps: a sound is a whole stream, flushed).
func (c *callState) enqueueSound(ref media.ItemRef, pcm []int16) {
	if now := c.media.CurrentPeer().Codec; now.SampleRate != c.codec.SampleRate && c.mode == transcoded {
		c.followCodec(now)
	}
	rate := c.codec.SampleRate
	if rate != sound.Rate {
		if c.soundRS == nil || c.soundRS.OutRate() != rate {
			c.soundRS = resample.MustNew(sound.Rate, rate)
		}
		pcm = c.soundRS.Flush(c.soundRS.Process(nil, pcm))
	}
	c.media.Enqueue(ref, pcm, rate)
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
		c.log.Info().Str("codec", codec.Name).Str("rate", codec.Rate()).
			Msg("call: passthrough is for G.711 only (the model speaks no other codec): this call is transcoded")
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
// call's codec since the model's session was set up for c.codec.
func (c *callState) callerPayload(g711 []byte, codec media.Codec) {
	decoded := false
	if codec != c.codec {
		// A re-INVITE moved the call to another codec (another law, or
		// G.722 at 16 kHz): its stream is decoded by a decoder of its own
		// and brought to the model's rate.
		if codec != c.ptFrom {
			c.ptFrom, c.ptDec, c.ptDown = codec, codec.NewDecoder(), nil
			if codec.SampleRate != c.codec.SampleRate {
				c.ptDown = resample.MustNew(codec.SampleRate, c.codec.SampleRate)
			}
		}
		c.callerPCM = c.ptDec.Decode(c.callerPCM[:0], g711)
		if c.ptDown != nil {
			c.ptPCM = c.ptDown.Process(c.ptPCM[:0], c.callerPCM)
			c.callerPCM, c.ptPCM = c.ptPCM, c.callerPCM
		}
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
			c.rec.CallerAudio(c.clock.Now(), c.callerPCM, c.codec.SampleRate)
		}
	}
	c.up.writeRaw(g711)
}

// callerAudio takes the caller's audio from a media worker:
// into the recording, then to the model.
func (c *callState) callerAudio(pcm []int16, rate int) {
	if c.rec.Recording() {
		c.rec.CallerAudio(c.clock.Now(), pcm, rate)
	}
	c.up.write(pcm, rate)
}
