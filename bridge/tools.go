package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/voicebot/voicebot/clock"
	"github.com/voicebot/voicebot/realtime"
	"github.com/voicebot/voicebot/record"
)

// Tools the model calls (Realtime function calling): the call finds them in
// response.output_item.done, runs them, and gives the result back as a
// function_call_output item followed by response.create, once the response
// that made the call is done (earlier, the server refuses it).

const (
	toolAnswerPrefix = "tool_answer_"
	// maxToolsInFlight bounds the webhook calls one call may have running.
	maxToolsInFlight = 4
	// maxToolOutput bounds what a webhook may answer.
	maxToolOutput = 64 << 10
	// defaultWebhookTimeout applies when a webhook has none.
	defaultWebhookTimeout = 5 * time.Second
	// speechWait bounds how long an end or a transfer waits for the bot to
	// finish speaking.
	speechWait = 30 * time.Second
	// drainGrace lets the last packet of the bot's speech leave before BYE.
	drainGrace = 60 * time.Millisecond
)

type toolState struct {
	ctx        context.Context // ends with the call: tool goroutines stop
	results    chan toolResult
	inFlight   int
	wantAnswer bool // outputs were sent: ask for a response once the model is idle
	calls      int
	seen       map[string]bool // call_ids already run
	wg         sync.WaitGroup
}

func (t *toolState) init() {
	t.ctx = context.Background()
	t.results = make(chan toolResult, maxToolsInFlight+1)
	t.seen = map[string]bool{}
}

// wait waits for the tool goroutines, which end with the call's context.
func (t *toolState) wait() { t.wg.Wait() }

// toolResult is what a tool goroutine reports back to the bridge loop.
type toolResult struct {
	callID, name string
	output       string // JSON for function_call_output
	transfer     bool   // a transfer's outcome
	err          error
}

// ending is an end (or transfer) waiting for the bot to finish speaking:
// the response afterResp must be done and its audio played out.
type ending struct {
	reason       string
	afterResp    string // the response whose speech must finish; "" until known
	needResponse bool   // afterResp is the next response to be created
	respDone     bool
	immediate    bool
	deadline     time.Time
	drainedAt    time.Time
	timer        clock.Timer
	// then runs when the speech is over: it returns whether the call ends.
	then func() bool
}

func toolError(format string, args ...any) string {
	b, _ := json.Marshal(map[string]string{"error": fmt.Sprintf(format, args...)})
	return string(b)
}

func toolOK(fields map[string]any) string {
	b, _ := json.Marshal(fields)
	return string(b)
}

// onFunctionCall runs a tool the model called in response respID.
func (c *callState) onFunctionCall(respID string, item *realtime.Item) {
	if item.CallID == "" || c.tools.seen[item.CallID] {
		return
	}
	c.tools.seen[item.CallID] = true
	c.tools.calls++
	c.cfg.Metrics.Tool(item.Name)
	c.rec.Emit("tool_call", record.Event{"tool": item.Name, "call_id": item.CallID, "arguments": item.Arguments})
	log := c.log.With().Str("tool", item.Name).Str("tool_call_id", item.CallID).Logger()
	if item.Status != "" && item.Status != "completed" {
		log.Info().Str("status", item.Status).Msg("tool: not run (the response was cut short)")
		return
	}
	if c.discarded[respID] {
		// The caller interrupted the response that decided this: it is not
		// what the conversation is about any more.
		log.Info().Msg("tool: not run (the caller interrupted the response that called it)")
		c.toolOutput(item.CallID, toolError("not run: the caller interrupted before it took effect"), false)
		return
	}
	var args map[string]any
	if item.Arguments != "" {
		if err := json.Unmarshal([]byte(item.Arguments), &args); err != nil {
			log.Warn().Err(err).Msg("tool: arguments are not a JSON object")
			c.toolOutput(item.CallID, toolError("arguments are not a JSON object: %v", err), true)
			return
		}
	}
	log.Info().Msg("tool: called")
	log.Debug().Str("arguments", item.Arguments).Msg("tool: arguments")
	if !c.profile.has(item.Name) {
		c.toolOutput(item.CallID, toolError("no tool named %q", item.Name), true)
		return
	}
	switch item.Name {
	case ToolEndCall:
		reason, _ := args["reason"].(string)
		log.Info().Str("reason", reason).Msg("tool: ending the call once the bot has finished speaking")
		c.toolOutput(item.CallID, toolOK(map[string]any{"status": "the call ends when you finish speaking"}), false)
		c.endAfterSpeech(endBotHungUp, respID, false, func() bool { return true })
	case ToolTransfer:
		target, _ := args["target"].(string)
		t, ok := c.profile.TransferTargets[target]
		if !ok {
			log.Warn().Str("target", target).Msg("tool: transfer to a target not in the profile refused")
			c.toolOutput(item.CallID, toolError("unknown transfer target %q; the targets are %v", target, c.profile.targetNames()), true)
			return
		}
		summary, _ := args["summary"].(string)
		log.Info().Str("target", target).Str("summary", summary).Msg("tool: transferring once the bot has finished speaking")
		uri := t.referTo(summary, c.setup.Vars)
		c.endAfterSpeech(endTransferred, respID, false, func() bool {
			c.startTransfer(item.CallID, target, uri)
			return false
		})
	case ToolSendDTMF:
		digits, _ := args["digits"].(string)
		if err := c.media.SendDTMF(digits); err != nil {
			log.Warn().Err(err).Msg("tool: keys not sent")
			c.toolOutput(item.CallID, toolError("%v", err), true)
			return
		}
		log.Info().Str("digits", digits).Msg("tool: sending keys (RFC 4733)")
		c.toolOutput(item.CallID, toolOK(map[string]any{"status": "sent", "digits": digits}), true)
	default:
		w := c.profile.Webhooks[item.Name]
		if c.tools.inFlight >= maxToolsInFlight {
			c.toolOutput(item.CallID, toolError("too many tool calls at once; try again"), true)
			return
		}
		c.startWebhook(item.CallID, w, item.Arguments)
	}
}

// toolOutput gives the model a tool's result; with answer, the model is
// asked to respond to it once it is idle.
func (c *callState) toolOutput(callID, output string, answer bool) {
	if callID != "" {
		ev, err := c.model.Dialect().FunctionCallOutput(c.nextEventID("tool_output_"), callID, output)
		c.send("conversation.item.create", ev, err)
	} else {
		// An action of a key, not of the model: tell the model what happened.
		ev, err := c.model.Dialect().UserText(c.nextEventID("action_"), "(voicebot: "+output+")")
		c.send("conversation.item.create", ev, err)
	}
	if answer {
		c.tools.wantAnswer = true
		c.maybeAnswerTools()
	}
}

// maybeAnswerTools asks for the response to tool results once no response
// is active and no tool is still running.
func (c *callState) maybeAnswerTools() {
	if !c.tools.wantAnswer || c.activeResp != "" || c.tools.inFlight > 0 || c.ending != nil {
		return
	}
	c.tools.wantAnswer = false
	c.request(toolAnswerPrefix, "")
}

// goTool runs f in a tool goroutine that reports its result to the loop.
func (c *callState) goTool(f func(ctx context.Context) toolResult) {
	c.tools.inFlight++
	c.tools.wg.Add(1)
	ctx := c.tools.ctx
	go func() {
		defer c.tools.wg.Done()
		r := f(ctx)
		select {
		case c.tools.results <- r:
		case <-ctx.Done():
		}
	}()
}

func (c *callState) onToolResult(r toolResult) {
	c.tools.inFlight--
	log := c.log.With().Str("tool", r.name).Str("tool_call_id", r.callID).Logger()
	if !r.transfer {
		if r.err != nil {
			log.Warn().Err(r.err).Msg("tool: webhook failed; the model is told")
		} else {
			log.Info().Int("bytes", len(r.output)).Msg("tool: webhook answered")
		}
		c.toolOutput(r.callID, r.output, true)
		return
	}
	if r.err == nil {
		log.Info().Msg("tool: transfer succeeded")
		c.toolOutput(r.callID, toolOK(map[string]any{"status": "transferred"}), false)
		c.ending = &ending{reason: endTransferred, immediate: true}
		return
	}
	log.Warn().Err(r.err).Msg("tool: transfer failed")
	c.toolOutput(r.callID, toolOK(map[string]any{"status": "failed", "reason": r.err.Error()}), !c.profile.HangupOnTransferFailure)
	if c.profile.HangupOnTransferFailure {
		c.request("transfer_failed_", "The transfer did not go through. Apologise briefly to the caller, say goodbye, and say nothing more.")
		c.endAfterSpeech(endBotHungUp, "", true, func() bool { return true })
	}
}

// startTransfer refers the caller to uri, in a tool goroutine.
func (c *callState) startTransfer(callID, target, uri string) {
	c.log.Info().Str("target", target).Msg("call: transferring")
	c.goTool(func(ctx context.Context) toolResult {
		err := c.call.Transfer(ctx, uri)
		return toolResult{callID: callID, name: ToolTransfer, transfer: true, err: err}
	})
}

// startWebhook POSTs a tool call's arguments to its webhook.
func (c *callState) startWebhook(callID string, w Webhook, args string) {
	client := c.cfg.HTTP
	meta := map[string]string{
		"X-Voicebot-Call-Id": c.callID(), "X-Voicebot-Tool": w.Name,
		"X-Voicebot-Caller": c.setup.Caller, "X-Voicebot-Called": c.setup.Called,
	}
	args = w.withPayload(args, c.setup.Vars)
	c.goTool(func(ctx context.Context) toolResult {
		out, err := callWebhook(ctx, client, w, args, meta)
		if err != nil {
			out = toolError("the %s service failed: %v", w.Name, err)
		}
		return toolResult{callID: callID, name: w.Name, output: out, err: err}
	})
}

func (c *callState) callID() string {
	if c.call == nil {
		return ""
	}
	return c.call.ID()
}

// errNotJSON is a webhook answer the model could not use.
var errNotJSON = errors.New("its answer is not JSON")

// Call POSTs args (a JSON object) to the webhook and returns its JSON
// answer, with meta as extra request headers: how calls run it, for the
// conversation service.
func (w Webhook) Call(ctx context.Context, client *http.Client, args string, meta map[string]string) (string, error) {
	return callWebhook(ctx, client, w, args, meta)
}

// callWebhook POSTs args (a JSON object) to w and returns its JSON answer.
func callWebhook(ctx context.Context, client *http.Client, w Webhook, args string, meta map[string]string) (string, error) {
	if w.URL == nil {
		return "", errors.New("no URL")
	}
	if args == "" {
		args = "{}"
	}
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = defaultWebhookTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL.String(), bytes.NewReader([]byte(args)))
	if err != nil {
		return "", fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "voicebot")
	for k, v := range meta {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	for k, v := range w.Headers {
		req.Header.Set(k, v.Reveal())
	}
	res, err := client.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return "", fmt.Errorf("no answer within %s", timeout)
		}
		// The URL may carry a token in its query: say only where it went.
		return "", fmt.Errorf("unreachable (%s)", w.URL.Host)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxToolOutput+1))
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return "", fmt.Errorf("no complete answer within %s", timeout)
		}
		return "", fmt.Errorf("reading its answer: %w", err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return "", fmt.Errorf("it answered HTTP %d", res.StatusCode)
	}
	if len(body) > maxToolOutput {
		return "", fmt.Errorf("its answer is over %d KiB", maxToolOutput>>10)
	}
	body = bytes.TrimSpace(body)
	if !json.Valid(body) {
		return "", errNotJSON
	}
	return string(body), nil
}

// endAfterSpeech arranges for then to run once the bot has finished the
// response respID (or, with next, the next response) and its audio has
// left: the call ends when then returns true.
func (c *callState) endAfterSpeech(reason, respID string, next bool, then func() bool) {
	e := &ending{reason: reason, afterResp: respID, needResponse: next, then: then,
		deadline: c.clock.Now().Add(speechWait)}
	if !next && (respID == "" || respID != c.activeResp) {
		e.respDone = true // that response is already over
	}
	c.ending = e
}

// checkEnding reports whether a pending end is due now, arming a timer to
// look again while the bot is still speaking.
func (c *callState) checkEnding() (string, bool) {
	e := c.ending
	if e == nil {
		return "", false
	}
	if e.immediate {
		return e.reason, true
	}
	now := c.clock.Now()
	if !now.Before(e.deadline) {
		c.log.Warn().Dur("waited", speechWait).Msg("call: the bot did not finish speaking in time; going ahead")
		return c.afterSpeech()
	}
	queued := c.media.QueuedMS()
	if !e.respDone || queued > 0 || c.media.Paused() || c.media.DTMFPending() > 0 {
		e.drainedAt = time.Time{}
		c.wakeEnding(time.Duration(min(max(queued, 20), 200)) * time.Millisecond)
		return "", false
	}
	if e.drainedAt.IsZero() {
		e.drainedAt = now
	}
	if wait := drainGrace - now.Sub(e.drainedAt); wait > 0 {
		c.wakeEnding(wait)
		return "", false
	}
	return c.afterSpeech()
}

// wakeEnding makes the loop look at a pending end again within d.
func (c *callState) wakeEnding(d time.Duration) {
	if c.ending.timer == nil {
		c.ending.timer = c.clock.NewTimer(d)
	}
}

func (c *callState) afterSpeech() (string, bool) {
	e := c.ending
	if e.timer != nil {
		e.timer.Stop()
	}
	c.ending = nil
	if e.then() {
		return e.reason, true
	}
	return "", false
}

// speechEvents tells a pending end about the responses it waits for.
func (c *callState) speechEvents(ev realtime.ServerEvent) {
	e := c.ending
	if e == nil {
		return
	}
	switch ev.Kind {
	case realtime.KindResponseCreated:
		if e.needResponse && e.afterResp == "" {
			e.afterResp = ev.ResponseID
		}
	case realtime.KindResponseDone:
		if ev.ResponseID == e.afterResp {
			e.respDone = true
		}
	}
}
