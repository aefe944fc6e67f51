package bridge

import (
	"cmp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/voicebot/voicebot/clock"
	"github.com/voicebot/voicebot/record"
)

// Keys the caller presses reach the model as user text items, or run the
// action the profile maps the key to. A burst (a PIN, "1234#") is answered
// once, after a pause between keys.
const (
	// interDigit is the quiet after a key before the model is asked to answer.
	interDigit = 700 * time.Millisecond
	// maxKeysPerSecond bounds what a flood of key presses can send the model.
	maxKeysPerSecond = 10
)

// Key actions a profile may map keys to.
const (
	KeyHangup   = "hangup"
	KeyIgnore   = "ignore"
	KeyTransfer = "transfer:" // followed by a transfer target's name
)

type keyState struct {
	timer       clock.Timer
	windowStart time.Time
	inWindow    int
	dropped     int
	pressed     int
	infoDropped atomic.Int64 // SIP INFO keys beyond the queue's room
}

// onKey handles one key press, from RTP (RFC 4733) or SIP INFO.
func (c *callState) onKey(digit rune, source string) {
	now := c.clock.Now()
	if now.Sub(c.keys.windowStart) >= time.Second {
		c.keys.windowStart, c.keys.inWindow = now, 0
	}
	if c.keys.inWindow >= maxKeysPerSecond {
		if c.keys.dropped == 0 {
			c.log.Warn().Int("per_second", maxKeysPerSecond).Msg("dtmf: key flood, dropping keys")
		}
		c.keys.dropped++
		return
	}
	c.keys.inWindow++
	c.keys.pressed++
	action := c.profile.DTMF[digit]
	// No action of the profile's: the key is told to the model.
	c.log.Info().Str("key", string(digit)).Str("source", source).Str("action", cmp.Or(action, "model")).Msg("dtmf: caller pressed a key")
	c.rec.Emit("key", record.Event{"key": string(digit), "source": source})
	if action == KeyIgnore {
		return
	}
	if c.speaking() {
		// A key press is the caller's decision: stop the bot as at a barge-in.
		c.barge.heardAt, c.barge.local = now, true
		c.interrupt("dtmf")
	}
	switch {
	case action == KeyHangup:
		c.ending = &ending{reason: endCallerKey + string(digit), immediate: true}
		return
	case strings.HasPrefix(action, KeyTransfer):
		name := strings.TrimPrefix(action, KeyTransfer)
		if t, ok := c.profile.TransferTargets[name]; ok && c.tools.inFlight == 0 {
			c.startTransfer("", name, t.referTo("", c.setup.Vars))
			return
		}
	}
	ev, err := c.model.Dialect().UserText(c.nextEventID("dtmf_"), "The caller pressed "+string(digit)+".")
	c.send("conversation.item.create", ev, err)
	if c.keys.timer != nil {
		c.keys.timer.Stop()
	}
	c.keys.timer = c.clock.NewTimer(interDigit)
}

// onKeysDone asks the model to answer the keys once the caller has paused.
func (c *callState) onKeysDone() {
	c.keys.timer = nil
	if c.activeResp != "" {
		// The answer that was playing is winding down after our cancel.
		c.answerAfter = c.activeResp
		return
	}
	c.request("dtmf_answer_", "")
}
