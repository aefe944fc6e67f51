package bridge

import (
	"time"

	"github.com/voicebot/voicebot/clock"
	"github.com/voicebot/voicebot/realtime"
)

// limitState bounds a call: a caller gone without a BYE (no RTP), a call
// past its maximum length, a shutdown that will not wait any longer.
type limitState struct {
	rtp      clock.Timer
	rtpSince time.Time // the call was answered or last seen on hold
	warn     clock.Timer
	max      clock.Timer
	wrapping bool // the bot has been asked to say goodbye
}

const (
	endRTPTimeout  = "no RTP from the caller"
	endMaxDuration = "maximum call duration"
	endShutdown    = "voicebot shutting down"
)

// startLimits arms the call's limits once it is answered.
func (c *callState) startLimits() {
	l, cfg := &c.limits, c.cfg
	now := c.clock.Now()
	if cfg.RTPTimeout > 0 {
		l.rtpSince = now
		l.rtp = c.clock.NewTimer(rtpCheckEvery(cfg.RTPTimeout))
	}
	if cfg.MaxDuration > 0 {
		l.max = c.clock.NewTimer(cfg.MaxDuration)
		if w := cfg.MaxDurationWarning; w > 0 && w < cfg.MaxDuration {
			l.warn = c.clock.NewTimer(cfg.MaxDuration - w)
		}
	}
}

func rtpCheckEvery(timeout time.Duration) time.Duration { return min(time.Second, timeout/4) }

func (c *callState) stopLimits() {
	for _, t := range []clock.Timer{c.limits.rtp, c.limits.warn, c.limits.max} {
		if t != nil {
			t.Stop()
		}
	}
}

// onRTPCheck ends the call when the caller's RTP has stopped for the
// timeout while the call is not on hold (a held call may be silent).
func (c *callState) onRTPCheck() (string, bool) {
	l := &c.limits
	now := c.clock.Now()
	if c.media.Held() {
		l.rtpSince = now
	}
	last := c.media.LastReceived()
	if last.Before(l.rtpSince) {
		last = l.rtpSince
	}
	if idle := now.Sub(last); idle >= c.cfg.RTPTimeout {
		c.log.Warn().Dur("silent_for", idle).Msg("call: no RTP from the caller; the caller is gone, hanging up")
		return endRTPTimeout, true
	}
	l.rtp.Reset(rtpCheckEvery(c.cfg.RTPTimeout))
	return "", false
}

// onMaxDurationWarning tells the model the call is about to reach its limit.
func (c *callState) onMaxDurationWarning() {
	c.limits.warn = nil
	left := c.cfg.MaxDurationWarning.Round(time.Second)
	c.log.Info().Dur("left", left).Msg("call: near the maximum duration; the model is told to wrap up")
	ev, err := c.model.Dialect().ItemCreate(c.nextEventID("note_"), realtime.HistoryItem{Role: "system",
		Text: "This call will be ended automatically in about " + left.String() + " (its time limit). Help the caller finish, and tell them if they ask."})
	c.send("conversation.item.create", ev, err)
}

// wrapUp ends the call politely: the bot finishes what it is saying or
// says a short goodbye, then the call is hung up (bounded by speechWait).
func (c *callState) wrapUp(reason, goodbye string) {
	if c.limits.wrapping || c.ending != nil {
		return
	}
	c.limits.wrapping = true
	c.log.Info().Str("reason", reason).Msg("call: ending it politely")
	if c.activeResp != "" && !c.discarded[c.activeResp] {
		c.endAfterSpeech(reason, c.activeResp, false, func() bool { return true })
		return
	}
	c.request("goodbye_", goodbye)
	c.endAfterSpeech(reason, "", true, func() bool { return true })
}
