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
	// failedInARow counts responses that failed one after the other; a
	// completed one sets it back to 0.
	failedInARow int
	// audioFrom is the response whose audio arrived last: an incomplete
	// response that said nothing is as good as failed to the caller.
	audioFrom string
	// givenUp: the model failed a response and its retry; the loop ends
	// the call with the failure line.
	givenUp bool
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
	ev, err := c.model.Dialect().ResponseCreate(eventID, realtime.ResponseRequest{
		Instructions: instructions, Metadata: map[string]string{requestTag: eventID}})
	c.send("response.create", ev, err)
}

// onResponseOutcome counts how a response ended and asks again for one
// that failed, once; when the retry fails too, the call is given up.
func (c *callState) onResponseOutcome(r *realtime.Response) {
	c.cfg.Metrics.ModelResponse(r.Status)
	id := r.MetadataValue(requestTag)
	instructions, ours := c.resp.pending[id]
	delete(c.resp.pending, id)
	silent := c.resp.audioFrom != r.ID
	log := c.log.With().Str("response_id", r.ID).Str("status", r.Status).Str("reason", r.StatusDetails.Reason).Str("request", id).Logger()
	if e := r.StatusDetails.Error; e != nil {
		log = log.With().Str("code", e.Code).Str("error_type", e.Type).Logger()
	}
	switch {
	case r.Status == "completed":
		c.resp.failedInARow = 0
		log.Debug().Msg("model: response done")
		return
	case r.Status == "failed", r.Status == "incomplete" && silent:
		// Below: the caller heard nothing of it.
	case r.Status == "incomplete":
		// Cut short (max_output_tokens, content_filter) after it spoke:
		// the caller heard an answer, if not all of it.
		c.resp.failedInARow = 0
		log.Warn().Msg("model: response incomplete")
		return
	default: // cancelled: a barge-in, or our own cancel
		log.Debug().Msg("model: response done")
		return
	}
	c.resp.failedInARow++
	if c.resp.failedInARow >= maxFailedResponses {
		log.Error().Int("in_a_row", c.resp.failedInARow).Msg("model: response failed again; giving the call up")
		c.resp.givenUp = true
		return
	}
	log.Warn().Msg("model: response failed; asking again")
	retry := c.nextEventID("retry_")
	if !ours {
		// The server's own answer to the caller's turn: the turn is in the
		// conversation, and a plain response answers it.
		instructions = ""
	}
	if e := c.ending; e != nil && e.afterResp == r.ID {
		// The goodbye failed: the end waits for the one asked for now.
		e.afterResp, e.needResponse, e.respDone = "", true, false
	}
	c.requestWith(retry, instructions)
}
