package bridge

import (
	"strings"

	"github.com/voicebot/voicebot/outcome"
)

// outcomeOf is how an answered call ends for reason, what run returned.
// When the far end's signalling ended it (the call's context: their BYE,
// a hang-up through the API, the session timer, voicebot stopping), the
// call's own account says how.
func (c *callState) outcomeOf(reason string) outcome.End {
	switch {
	case reason == endCallerHungUp:
		if sig := c.call.Outcome(); !sig.Zero() {
			return sig
		}
		return outcome.End{Outcome: outcome.CallerHungUp, Detail: reason}
	case reason == endBotHungUp, reason == endMaxDuration:
		return outcome.End{Outcome: outcome.BotHungUp, Detail: reason}
	case reason == endTransferred:
		return outcome.End{Outcome: outcome.Transferred, Detail: reason}
	case reason == endModelLost, reason == endModelFailed:
		return outcome.End{Outcome: outcome.ModelFailed, Detail: reason}
	case reason == endRTPTimeout:
		return outcome.End{Outcome: outcome.Timeout, Detail: reason + " for " + c.cfg.RTPTimeout.String()}
	case reason == endShutdown:
		return outcome.End{Outcome: outcome.Drained, Detail: reason}
	case strings.HasPrefix(reason, endCallerKey):
		return outcome.End{Outcome: outcome.CallerHungUp, Detail: reason}
	}
	return outcome.End{Outcome: outcome.Error, Detail: reason}
}

// refused is how a call ends that the bridge refused for why, with the
// SIP status the signalling refused it with (inbound).
func refused(call Call, why Refusal) outcome.End {
	e := outcome.End{Outcome: outcome.Rejected, Detail: string(why)}
	if sig := call.Outcome(); sig.Outcome == outcome.Rejected {
		e.SIPCode = sig.SIPCode
	}
	return e
}
