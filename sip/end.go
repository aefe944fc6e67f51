package sip

// How calls end: from our side (Hangup, HangupAs), what the signalling
// saw (EndReason, Outcome), and why a call never connected (CallError).

import (
	"context"
	"fmt"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/voicebot/voicebot/outcome"
)

// EndReason says why a call ended, in the signalling's terms; Outcome
// says it in the vocabulary the API, records and metrics share.
type EndReason string

// Why calls end.
const (
	EndRemoteBye      EndReason = "remote_bye"
	EndLocalBye       EndReason = "local_bye"
	EndCancelled      EndReason = "cancelled"
	EndRejected       EndReason = "rejected"
	EndAckTimeout     EndReason = "ack_timeout"
	EndSessionExpired EndReason = "session_expired"
	EndTransferred    EndReason = "transferred"
	EndShutdown       EndReason = "shutdown"
	EndError          EndReason = "error"
	// Outbound calls that never connected.
	EndNoAnswer EndReason = "no_answer"
	EndBusy     EndReason = "busy"
	EndDeclined EndReason = "declined"
	// EndUnreachable: nothing answered the INVITE (no response at all, or
	// it could not be sent).
	EndUnreachable EndReason = "unreachable"
	EndFailed      EndReason = "failed"
)

// Hangup ends the call from our side: BYE when connected; for an
// unanswered inbound call 480, for an outbound one a CANCEL.
func (c *Call) Hangup() error {
	c.mu.Lock()
	answered, responded := c.answered, c.responded
	c.mu.Unlock()
	if !answered {
		if c.dir == Outbound {
			c.end(EndCancelled)
			return nil
		}
		if !responded {
			return c.Reject(480, "Temporarily Unavailable")
		}
		return nil
	}
	if c.ctx.Err() != nil {
		return nil // already over (their BYE, or ours)
	}
	c.end(EndLocalBye)
	return c.sendBye()
}

// HangupAs hangs up like Hangup, for a reason of the caller's: an
// answered call then ends as why says (e.g. outcome.APIHungUp) rather
// than as hung up by voicebot; one not answered yet ends cancelled, with
// why's detail. Nothing changes for a call that already ended.
func (c *Call) HangupAs(why outcome.End) error {
	c.mu.Lock()
	if c.reason == "" && c.hungUpAs == nil {
		c.hungUpAs = &why
	}
	c.mu.Unlock()
	return c.Hangup()
}

// Outcome is how the call ended as the signalling saw it, zero while it
// goes on. A call whose context ended without a reason was ended by the
// UA stopping: drained.
func (c *Call) Outcome() outcome.End {
	c.mu.Lock()
	defer c.mu.Unlock()
	var e outcome.End
	if f := c.failure; f != nil {
		e.SIPCode, e.Detail = f.Code, f.Reason
	}
	switch c.reason {
	case "":
		if c.ctx.Err() != nil {
			return outcome.End{Outcome: outcome.Drained, Detail: "voicebot stopping"}
		}
		return outcome.End{}
	case EndRemoteBye:
		return outcome.End{Outcome: outcome.CallerHungUp, Detail: "the far end hung up"}
	case EndLocalBye:
		if c.hungUpAs != nil {
			return *c.hungUpAs
		}
		return outcome.End{Outcome: outcome.BotHungUp, Detail: "voicebot hung up"}
	case EndCancelled, EndRejected:
		switch {
		case c.hungUpAs != nil && !c.answered:
			e.Outcome, e.Detail = outcome.Cancelled, c.hungUpAs.Detail+" before answer"
		case c.reason == EndCancelled:
			e.Outcome = outcome.Cancelled
			if c.dir == Inbound {
				e.SIPCode, e.Detail = 487, "the caller cancelled before answer"
			}
		default:
			e.Outcome = outcome.Rejected
		}
		return e
	case EndAckTimeout:
		return outcome.End{Outcome: outcome.Timeout, Detail: "no ACK for our 200 OK within " + c.ua.cfg.AckTimeout.String()}
	case EndSessionExpired:
		return outcome.End{Outcome: outcome.Timeout, Detail: "the session timer expired"}
	case EndTransferred:
		return outcome.End{Outcome: outcome.Transferred, Detail: "transferred (REFER)"}
	case EndShutdown:
		return outcome.End{Outcome: outcome.Drained, Detail: "voicebot stopping"}
	case EndBusy:
		e.Outcome = outcome.Busy
	case EndNoAnswer:
		e.Outcome = outcome.NoAnswer
	case EndDeclined:
		e.Outcome = outcome.Declined
	case EndUnreachable:
		e.Outcome = outcome.Unreachable
	default: // EndError, EndFailed
		e.Outcome = outcome.Error
	}
	return e
}

// finish runs when the handler returns (or panicked): whatever state the
// call is in, it ends, and its goroutines are waited for.
func (c *Call) finish(panicked bool) {
	c.mu.Lock()
	answered, responded, reason := c.answered, c.responded, c.reason
	c.mu.Unlock()
	stopping := c.ctx.Err() != nil
	if panicked {
		c.end(EndError) // why it ends; the peer is still told below
	}
	switch {
	case c.dir == Inbound && !responded && reason == "" && stopping:
		_ = c.Reject(503, "Service Unavailable") // shutting down before answer
	case c.dir == Inbound && !responded && reason == "":
		if !panicked {
			c.log.Warn().Msg("sip: handler returned without answering; rejecting")
		}
		_ = c.Reject(500, "Server Internal Error")
	case answered && reason == "":
		// Nobody ended the call yet: the handler is done, or the UA is stopping.
		r := EndLocalBye
		if stopping {
			r = EndShutdown
		}
		c.end(r)
		_ = c.sendBye()
	}
	c.cancel()
	c.wg.Wait()
	c.ua.unregister(c)
}

// sendBye sends BYE in the dialog and waits (bounded) for its answer.
func (c *Call) sendBye() error {
	d := c.dialog()
	if d == nil {
		return ErrCallEnded
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	res, err := c.ua.do(ctx, d.request(sip.BYE, c.ua.cfg.UserAgent, nil))
	if err != nil {
		c.log.Debug().Err(err).Msg("sip: BYE got no answer")
		return fmt.Errorf("sip bye: %w", err)
	}
	if res.StatusCode >= 300 {
		c.log.Debug().Int("code", res.StatusCode).Msg("sip: BYE refused")
		return fmt.Errorf("sip bye: %d %s", res.StatusCode, res.Reason)
	}
	return nil
}

// CallError is why a call did not connect: for an outbound one the final
// response (or 408 for no answer in time, 487 when we cancelled, 0 when
// nothing answered at all); for an inbound one the response we refused it
// with.
type CallError struct {
	Code   int
	Reason string
}

func (e *CallError) Error() string {
	if e.Code == 0 {
		return "sip: call failed: " + e.Reason
	}
	return fmt.Sprintf("sip: call failed: %d %s", e.Code, e.Reason)
}

// Failure is why the call did not connect, nil if it did or has not yet
// failed.
func (c *Call) Failure() *CallError {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failure
}
