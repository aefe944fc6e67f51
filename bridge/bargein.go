package bridge

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/clock"
	"github.com/voicebot/voicebot/record"
)

// bargeState is the pause-mode decision in progress, and when the caller's
// speech reached us (for the stop-latency figure).
type bargeState struct {
	heardAt  time.Time // speech_started (or the local trigger) arrived
	local    bool      // the local VAD started it
	paused   bool
	pausedAt time.Time
	onsetMS  int   // speech onset on the input timeline (server's ms)
	voiced0  int64 // the energy detector's voiced total when the pause began
	timer    clock.Timer
}

// pauseCheck is how often a paused playout re-checks the caller's speech.
const pauseCheck = 40 * time.Millisecond

// playing reports whether the bot has audio out or waiting.
func (c *callState) playing() bool {
	return c.media.QueuedMS() > 0 || c.media.Paused()
}

// speaking reports whether the bot is talking or about to: audio queued, or
// a response being generated that has not been interrupted yet.
func (c *callState) speaking() bool {
	return c.playing() || (c.activeResp != "" && !c.discarded[c.activeResp])
}

// onSpeechStarted is the caller starting to talk, per the model's VAD
// (audioStartMS on the input timeline) or the local detector.
func (c *callState) onSpeechStarted(audioStartMS int, local bool) {
	if !c.speaking() || c.barge.paused {
		return // nothing to stop, or a decision already under way
	}
	c.barge.heardAt, c.barge.local = c.clock.Now(), local
	if !c.cfg.BargeIn.Pause {
		c.interrupt("speech")
		return
	}
	c.media.Pause()
	c.barge.paused = true
	c.barge.pausedAt = c.barge.heardAt
	c.barge.onsetMS = audioStartMS
	if prefix, _ := c.session.TurnDetection.PaddingMS(); !local {
		c.barge.onsetMS += prefix // audio_start_ms includes the padding
	}
	if c.vad != nil {
		c.barge.voiced0 = c.vad.voicedMS.Load()
		if local {
			c.barge.voiced0 -= int64(c.cfg.BargeIn.LocalMinSpeech / time.Millisecond)
		}
	}
	c.armBargeTimer(pauseCheck)
	c.log.Debug().Bool("local", local).Msg("barge-in: playout paused, deciding")
}

func (c *callState) onLocalSpeech() {
	c.log.Debug().Msg("barge-in: local VAD heard the caller")
	c.onSpeechStarted(0, true)
}

// onSpeechStopped ends a pause-mode decision by the length of the speech.
func (c *callState) onSpeechStopped(audioEndMS int) {
	if !c.barge.paused {
		return
	}
	_, silence := c.session.TurnDetection.PaddingMS()
	speech := audioEndMS - c.barge.onsetMS - silence // audio_end_ms includes the silence that ended the turn
	if speech < int(c.cfg.BargeIn.MinSpeech/time.Millisecond) && !c.voicedEnough() {
		c.resume("short speech", speech)
		return
	}
	c.interrupt("speech")
}

// voicedEnough reports whether the caller has spoken MinSpeech since the pause.
func (c *callState) voicedEnough() bool {
	if c.vad == nil {
		return false
	}
	return c.vad.voicedMS.Load()-c.barge.voiced0 >= int64(c.cfg.BargeIn.MinSpeech/time.Millisecond)
}

// onBargeTimer re-checks a pause: enough speech interrupts at once; too long
// without a decision resumes.
func (c *callState) onBargeTimer() {
	c.barge.timer = nil
	if !c.barge.paused {
		return
	}
	switch {
	case c.voicedEnough():
		c.interrupt("speech")
	case c.clock.Now().Sub(c.barge.pausedAt) >= c.cfg.BargeIn.ResumeAfter:
		c.resume("no decision", -1)
	default:
		c.armBargeTimer(pauseCheck)
	}
}

func (c *callState) armBargeTimer(d time.Duration) {
	c.stopBargeTimer()
	c.barge.timer = c.clock.NewTimer(d)
}

func (c *callState) stopBargeTimer() {
	if c.barge.timer != nil {
		c.barge.timer.Stop()
		c.barge.timer = nil
	}
}

// resume ends a false barge-in: playout continues where it paused.
func (c *callState) resume(why string, speechMS int) {
	c.stopBargeTimer()
	c.barge.paused = false
	c.media.Resume()
	c.falseBargeIns++
	c.log.Info().Str("why", why).Int("speech_ms", speechMS).
		Dur("paused", c.clock.Now().Sub(c.barge.pausedAt)).Msg("barge-in: not an interruption, playout resumed")
}

// interrupt stops the bot and tells the model exactly what the caller heard:
// flush playout, truncate each item to what was sent (never beyond what the
// model sent), cancel the response when the server will not, and drop every
// late delta of the interrupted responses.
func (c *callState) interrupt(cause string) {
	c.stopBargeTimer()
	c.barge.paused = false
	played, lastAudio := c.media.Flush()
	c.down.Reset() // the next answer must not start with this one's filter tail
	if c.ptUp != nil {
		c.ptUp.Reset() // nor a passthrough call's moved to another rate
	}
	c.bargeIns++

	ev := c.log.Info().Str("cause", cause).Bool("local", c.barge.local)
	stop := time.Duration(0)
	if lastAudio.After(c.barge.heardAt) {
		stop = lastAudio.Sub(c.barge.heardAt)
	}
	ev = ev.Dur("stop_latency", stop)
	discardedMS, truncated := 0, 0
	truncs := zerolog.Arr()
	for _, p := range played {
		c.discarded[p.Ref.ResponseID] = true
		discardedMS += p.QueuedMS()
		received := c.receivedMS(p.Ref.ItemID)
		if received == 0 {
			continue // no audio: nothing the server could truncate
		}
		end := min(p.SentMS(), received)
		c.hist.heard(p.Ref.ItemID, end, received)
		truncs.Dict(zerolog.Dict().Str("item_id", p.Ref.ItemID).Int("audio_end_ms", end).Int("received_ms", received))
		tr, err := c.model.Dialect().ItemTruncate(c.nextEventID("truncate_"), p.Ref.ItemID, p.Ref.ContentIndex, end)
		c.send("conversation.item.truncate", tr, err)
		truncated++
	}
	if len(played) == 0 {
		ev = ev.Str("truncate", "none: playout had drained")
	}
	if r := c.activeResp; r != "" {
		c.discarded[r] = true
		serverCancels := c.session.TurnDetection != nil && c.session.TurnDetection.InterruptResponse && !c.barge.local
		if !serverCancels && !c.cancelSent[r] {
			c.cancelSent[r] = true
			cancel, err := c.model.Dialect().ResponseCancel(c.nextEventID("cancel_"), r)
			c.send("response.cancel", cancel, err)
			ev = ev.Str("cancelled", r)
			if c.cfg.BargeIn.Pause {
				// The model had no say in this interruption: the caller's turn
				// may get no automatic answer while this response winds down.
				c.answerAfter = r
			}
		}
	}
	ev.Array("truncated", truncs).Int("discarded_ms", discardedMS).Msg("barge-in: bot stopped")
	c.cfg.Metrics.BargeIn(stop, truncated)
	c.rec.Emit("barge_in", record.Event{"stop_latency_ms": float64(stop) / 1e6, "truncated": truncated, "discarded_ms": discardedMS, "local": c.barge.local})
}
