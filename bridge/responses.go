package bridge

import (
	"github.com/voicebot/voicebot/realtime"
)

// Every response voicebot asks for goes through request: it carries the
// agent's instructions whatever the prompt, it is tagged so that its
// outcome can be told from the server's own responses, and a failed one is
// asked for again once.

// requestTag is the response metadata key naming the request a response
// answers (the response.create's event id); the server echoes it in
// response.created and response.done.
const requestTag = "voicebot_request"

// responseState follows the responses asked for and how they ended.
type responseState struct {
	// pending maps a request's event id to its instructions ("" for the
	// session's), until its response is done: a failed one is asked for
	// again with the same.
	pending map[string]string
	// failedInARow counts responses that failed one after the other; any
	// other outcome sets it back to 0.
	failedInARow int
	// audioFrom is the response whose audio arrived last: an incomplete
	// response that said nothing is as good as failed to the caller.
	audioFrom string
	// givenUp: the model failed a response and its retry; the loop ends
	// the call with the failure line.
	givenUp bool
	// retrying is the retry's request until its response is done.
	retrying string
	// untagged: the server refused response metadata; requests go without.
	untagged bool
}

// maxFailedResponses is how many responses may fail in a row: the first
// is asked for again, the second ends the call politely. A model that
// fails every response cannot make the call loop.
const maxFailedResponses = 2

// request asks the model for a response. A prompt, when given, is what
// this response must do beyond the agent's usual behaviour (greet, say
// goodbye, apologise).
//
// response.instructions replace the session's instructions for that one
// response (both dialects), so a prompt sent alone is spoken without the
// agent's persona, language and rules. It goes with the session's
// instructions before it. The alternative, a system message item followed
// by a plain response.create, would keep the persona too, but the prompt
// would stay in the conversation: it would steer every later answer ("say
// goodbye and nothing more" on a call that goes on), cost its tokens on
// each, and be replayed into every new session.
func (c *callState) request(prefix, prompt string) {
	c.requestWith(c.nextEventID(prefix), c.withPersona(prompt))
}

// withPersona is the instructions for a response that follows prompt.
func (c *callState) withPersona(prompt string) string {
	if prompt == "" {
		return "" // the session's, unchanged
	}
	if c.session.Instructions == "" {
		return prompt
	}
	return c.session.Instructions + "\n\n" + prompt
}

func (c *callState) requestWith(eventID, instructions string) {
	if c.resp.pending == nil {
		c.resp.pending = map[string]string{}
	}
	c.resp.pending[eventID] = instructions
	req := realtime.ResponseRequest{Instructions: instructions}
	if !c.resp.untagged {
		req.Metadata = map[string]string{requestTag: eventID}
	}
	ev, err := c.model.Dialect().ResponseCreate(eventID, req)
	c.send("response.create", ev, err)
}

// onResponseOutcome counts how a response ended and asks again, once, for
// one that failed before the caller heard anything of it; when the retry
// fails too, the call is given up.
func (c *callState) onResponseOutcome(r *realtime.Response) {
	c.cfg.Metrics.ModelResponse(r.Status)
	id := r.MetadataValue(requestTag)
	instructions, ours := c.resp.pending[id]
	delete(c.resp.pending, id)
	if id != "" && id == c.resp.retrying {
		c.resp.retrying = ""
	}
	spoke := c.resp.audioFrom == r.ID
	log := c.log.With().Str("response_id", r.ID).Str("status", r.Status).Str("reason", r.StatusDetails.Reason).Str("request", id).Logger()
	if e := r.StatusDetails.Error; e != nil {
		log = log.With().Str("code", e.Code).Str("error_type", e.Type).Logger()
	}
	failed := r.Status == "failed" && !spoke
	switch {
	case failed:
	case r.Status == "failed" || r.Status == "incomplete":
		// Cut short after it spoke (asking again would repeat what the
		// caller heard), or stopped by max_output_tokens or the content
		// filter, which would stop a retry the same way: the caller can
		// go on or rephrase.
		log.Warn().Bool("spoke", spoke).Msg("model: response cut short")
	default:
		log.Debug().Msg("model: response done")
	}
	if !failed {
		c.resp.failedInARow = 0
		return
	}
	if c.discarded[r.ID] || c.sess.callerOn {
		// Interrupted, or the caller is speaking: their new turn gets its
		// own answer.
		log.Warn().Msg("model: response failed; the caller has moved on")
		return
	}
	c.resp.failedInARow++
	if c.resp.failedInARow >= maxFailedResponses {
		log.Error().Int("in_a_row", c.resp.failedInARow).Msg("model: response failed again; giving the call up")
		c.resp.givenUp = true
		return
	}
	log.Warn().Msg("model: response failed; asking again")
	if !ours {
		// The server's own answer to the caller's turn: the turn is in the
		// conversation, and a plain response answers it.
		instructions = ""
	}
	if e := c.ending; e != nil && e.afterResp == r.ID {
		// The goodbye failed: the end waits for the one asked for now.
		e.afterResp, e.needResponse, e.respDone = "", true, false
	}
	c.resp.retrying = c.nextEventID("retry_")
	c.requestWith(c.resp.retrying, instructions)
}

// onRequestRefused handles an error answering one of our response.create
// events. A server that does not know response metadata (an old preview
// API version) is asked again without it, and never given it again.
func (c *callState) onRequestRefused(e *realtime.APIError) {
	instructions, ours := c.resp.pending[e.EventID]
	if !ours {
		return
	}
	delete(c.resp.pending, e.EventID)
	if e.Param == "response.metadata" && !c.resp.untagged {
		c.log.Warn().Str("code", e.Code).Msg("model: the server refuses response metadata; responses go untagged (a failed one is retried without its prompt)")
		c.resp.untagged = true
		c.requestWith(e.EventID+"_untagged", instructions)
	}
}
