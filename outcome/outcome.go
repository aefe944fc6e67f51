// Package outcome is the one vocabulary for how a call ended, the same in
// the API, the records, the logs and the metrics. The values are an
// interface: dashboards, diallers and tests outside voicebot match them
// exactly, so they are never renamed, and a label made of them stays
// bounded.
package outcome

import "fmt"

// Outcome is how a call ended: one of the constants below.
type Outcome string

// The outcomes.
const (
	// CallerHungUp: the far end hung up (its BYE), or asked to by a key.
	CallerHungUp Outcome = "caller_hung_up"
	// BotHungUp: voicebot ended the call (the end_call tool, the maximum
	// call duration).
	BotHungUp Outcome = "bot_hung_up"
	// APIHungUp: DELETE /v1/calls/{id} of an answered call.
	APIHungUp Outcome = "api_hung_up"
	// Transferred: the call went on to another party (REFER).
	Transferred Outcome = "transferred"
	// Busy: the callee answered busy (486, 600).
	Busy Outcome = "busy"
	// NoAnswer: the callee rang out (the ring timeout, 408, 480).
	NoAnswer Outcome = "no_answer"
	// Declined: the callee answered 4xx-6xx other than busy.
	Declined Outcome = "declined"
	// Unreachable: nothing answered the INVITE (no response, a transport
	// error, the trunk down).
	Unreachable Outcome = "unreachable"
	// Cancelled: the caller cancelled before answer, or the call was hung
	// up through the API while it rang.
	Cancelled Outcome = "cancelled"
	// Rejected: voicebot refused the call (admission, auth, capacity,
	// codec, or the bridge could not take it).
	Rejected Outcome = "rejected"
	// Timeout: no ACK for our 200, no RTP from the caller, or the session
	// timer ran out.
	Timeout Outcome = "timeout"
	// ModelFailed: the model connection was lost for good, or the model
	// kept failing to answer.
	ModelFailed Outcome = "model_failed"
	// Drained: voicebot was shutting down.
	Drained Outcome = "drained"
	// Error: anything else.
	Error Outcome = "error"
)

// All lists the outcomes, for documentation and metrics.
func All() []Outcome {
	return []Outcome{CallerHungUp, BotHungUp, APIHungUp, Transferred, Busy, NoAnswer, Declined, Unreachable,
		Cancelled, Rejected, Timeout, ModelFailed, Drained, Error}
}

// Valid says whether o is one of the outcomes.
func (o Outcome) Valid() bool {
	for _, v := range All() {
		if o == v {
			return true
		}
	}
	return false
}

// End is how a call ended: its outcome, the SIP status that said so (0
// when none did) and a free-text detail ("408 no answer within 8s", "no
// RTP from the caller for 30s").
type End struct {
	Outcome Outcome `json:"outcome"`
	SIPCode int     `json:"sip_code"`
	Detail  string  `json:"detail"`
}

// Zero says whether e says nothing yet (the call goes on).
func (e End) Zero() bool { return e.Outcome == "" }

// String is e for people: "no_answer (408 no answer within 8s)".
func (e End) String() string {
	switch {
	case e.SIPCode != 0 && e.Detail != "":
		return fmt.Sprintf("%s (%d %s)", e.Outcome, e.SIPCode, e.Detail)
	case e.SIPCode != 0:
		return fmt.Sprintf("%s (%d)", e.Outcome, e.SIPCode)
	case e.Detail != "":
		return fmt.Sprintf("%s (%s)", e.Outcome, e.Detail)
	}
	return string(e.Outcome)
}

// ForSIPFailure is how an outbound call ended that the callee's side
// answered with a final failure code: busy for 486 and 600, no_answer for
// 408 and 480 (and 487: the callee's side gave up ringing), declined for
// any other 4xx-6xx.
func ForSIPFailure(code int) Outcome {
	switch code {
	case 486, 600:
		return Busy
	case 408, 480, 487:
		return NoAnswer
	}
	if code >= 400 && code <= 699 {
		return Declined
	}
	return Error
}
