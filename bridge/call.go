package bridge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/clock"
	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/outcome"
	"github.com/voicebot/voicebot/realtime"
	"github.com/voicebot/voicebot/record"
	"github.com/voicebot/voicebot/resample"
	"github.com/voicebot/voicebot/vars"
	"github.com/voicebot/voicebot/webhook"
)

// modelConn is what a call needs of its model connection.
type modelConn interface {
	Dialect() realtime.Dialect
	Send(event []byte) error
	Buffer() *[]byte
	SendBuffer(*[]byte) error
}

// callState is owned by the bridge loop goroutine (run). The caller path
// (upstream) runs on a media worker and shares with it only the
// connection's send queue and the energy detector's atomic counters. SIP
// goroutines reach it through the Observer methods, which only touch the
// (goroutine-safe) media session and channels.
type callState struct {
	b       *Bridge
	cfg     *Config
	profile *Profile
	session realtime.SessionConfig // what this call's model is configured with
	clock   clock.Clock
	model   modelConn
	media   *media.Session
	call    Call
	setup   Setup
	up      *upstream
	vad     *energyVAD
	log     zerolog.Logger

	eventSeq        uint64
	greeted         bool
	greetingStarted bool
	ready           bool
	down            *resample.Resampler // the model's rate to the call's
	soundRS         *resample.Resampler // voicebot's sounds' rate to the call's, when they differ
	modelPCM        []int16
	callPCM         []int16
	callerPCM       []int16 // passthrough: the caller's audio decoded, when something needs it
	recoded         []byte  // passthrough: the caller's audio in the model's codec after a codec change
	// passthrough after a re-INVITE moved the call to another codec: the
	// caller's stream (decoder, and resampler to the model's rate: media
	// goroutine) and the bot's (resampler to the call's rate: bridge
	// goroutine).
	ptFrom  media.Codec
	ptDec   media.Decoder
	ptDown  *resample.Resampler
	ptPCM   []int16
	ptUp    *resample.Resampler
	ptUpPCM []int16

	// What the model has sent, per item: bytes in the model's format.
	receivedBytes map[string]int
	botText       map[string]string

	// Responses: the one in progress, those we no longer play, those we
	// asked the server to cancel.
	activeResp string
	discarded  map[string]bool
	cancelSent map[string]bool
	// answerAfter is a response we cancelled while the server was still
	// generating it: the caller's new turn may then get no automatic answer,
	// so one is asked for when it is done unless another response starts.
	answerAfter string

	barge         bargeState
	localSpeech   chan struct{}
	keys          keyState
	rtpKeys       chan rune // keys decoded from RTP, from the media goroutine
	infoKeys      chan rune // keys sent as SIP INFO, from SIP goroutines
	bargeIns      int
	falseBargeIns int

	tools  toolState
	ending *ending // the call ends once the bot has finished speaking
	sig    signalling

	// The model session, which may be replaced during the call, and the
	// conversation that outlives it.
	conn liveConn
	hist *history
	// recall brings the caller's earlier turns, once, from the memory
	// store (nil: the call is not remembered, or they are already in hist).
	recall chan recalled
	// remembered is how many earlier turns the model was given.
	remembered int
	rec        *record.Call // nil: not recorded
	// The model's audio format and how the call's audio meets it: PCM16
	// resampled between the model's rate and the call codec's
	// (transcoded), or the call's G.711 as it is (passthrough).
	format realtime.AudioFormat
	mode   audioMode
	codec  media.Codec // the call's, as the audio path was set up for it
	// Metrics bookkeeping: the media counters last reported, and when the
	// caller's last turn ended (for the response latency).
	lastStats   media.Stats
	statsTimer  clock.Timer
	turnEndedAt time.Time
	turnEndedMS int // silence the model's VAD waited before it said so
	sess        sessionState
	resp        responseState
	wg          sync.WaitGroup // session openers
	limits      limitState
}

// endedSummary is what the call-ended webhook tells of the call.
func (c *callState) endedSummary(direction, agent string, started, answered time.Time, d time.Duration, end outcome.End) webhook.CallEnded {
	ev := webhook.CallEnded{CallID: c.callID(), Direction: direction, Caller: c.setup.Caller, Called: c.setup.Called, Agent: agent,
		Variables: c.setup.Vars.Values, StartedAt: started.UTC(), EndedAt: c.clock.Now().UTC(), DurationMS: d.Milliseconds(),
		Outcome: string(end.Outcome), SIPCode: end.SIPCode, Detail: end.Detail, Transcript: []webhook.Turn{},
		ToolCalls: c.tools.calls, BargeIns: c.bargeIns, Recording: c.rec.RecordingFile()}
	if ev.Variables == nil {
		ev.Variables = map[string]string{}
	}
	if !answered.IsZero() {
		at := answered.UTC()
		ev.AnsweredAt = &at
	}
	for _, t := range c.hist.thisCall(c.callID()) {
		ev.Transcript = append(ev.Transcript, webhook.Turn{Role: t.Role, Text: t.Text, At: t.At.UTC()})
	}
	return ev
}

func newCallState(b *Bridge, p *Profile, model modelConn, log zerolog.Logger) *callState {
	if p == nil {
		p = &Profile{Name: "default"}
	}
	c := &callState{
		b: b, cfg: &b.cfg, profile: p, clock: b.cfg.Clock, log: log,
		// A delta is cut into pieces of these (see onAudio), so whatever
		// its size, the call holds no more than one piece's worth.
		modelPCM:      make([]int16, 0, deltaPiece),
		receivedBytes: map[string]int{},
		discarded:     map[string]bool{},
		cancelSent:    map[string]bool{},
		botText:       map[string]string{},
		rtpKeys:       make(chan rune, 32),
		infoKeys:      make(chan rune, 32),
		hist:          newHistory(b.cfg.Clock.Now),
		format:        realtime.PCM16,
	}
	c.session = p.Session
	c.session.Tools = p.toolDeclarations()
	if b.cfg.BargeIn.Pause && c.session.TurnDetection != nil {
		// In pause mode the bridge decides whether speech interrupts: the
		// model must not cancel its answer by itself.
		td := *c.session.TurnDetection
		td.InterruptResponse = false
		c.session.TurnDetection = &td
	}
	c.tools.init()
	c.up = newUpstream(nil, int(b.cfg.AppendInterval/time.Millisecond), media.PCMU.SampleRate, c.format)
	c.useCodec(media.PCMU) // until the call's is known
	bi := b.cfg.BargeIn
	if bi.LocalVAD || bi.Pause {
		if bi.LocalVAD {
			c.localSpeech = make(chan struct{}, 1)
		}
		c.vad = newEnergyVAD(bi.LocalThresholdDB, int(bi.LocalMinSpeech/time.Millisecond), c.codec.SampleRate, c.localSpeech)
		c.up.vad = c.vad
	}
	if model != nil {
		c.setModel(model)
	}
	return c
}

// setModel joins the call to its model connection. The caller path reads
// the connection from the media goroutine, which starts (for an inbound
// call) only after this.
func (c *callState) setModel(m modelConn) {
	c.model = m
	c.up.setConn(m)
}

func (c *callState) nextEventID(prefix string) string {
	c.eventSeq++
	return prefix + strconv.FormatUint(c.eventSeq, 10)
}

// send encodes and queues a client event; failures are logged, never fatal.
func (c *callState) send(what string, ev []byte, err error) {
	if err == nil {
		err = c.model.Send(ev)
	}
	if err != nil {
		c.log.Warn().Err(err).Str("event", what).Msg("model: event not sent")
	}
}

func (c *callState) configure() error {
	ev, err := c.sessionUpdate()
	if err != nil {
		return err
	}
	return c.model.Send(ev)
}

// errSessionRefused means the model answered session.update with an error.
var errSessionRefused = errors.New("model refused the session configuration")

// greetingWait bounds how long a call keeps ringing for its greeting's
// first audio once the model is ready; after it the call is answered anyway.
const greetingWait = 3 * time.Second

// awaitReady handles events until the model has taken the configuration
// and, with a greeting, until its first audio is queued: the caller then
// hears the greeting the instant the call is answered, not a model round
// trip later. An error answering our session.update refuses the call:
// answering into a misconfigured session would fail every call the same way.
func (c *callState) awaitReady(ctx context.Context, events <-chan realtime.ServerEvent, connErr func() error) error {
	var greetingTimeout <-chan time.Time
	for {
		if c.ready && (!c.profile.Greeting || c.greetingStarted) {
			return nil
		}
		if c.ready && greetingTimeout == nil {
			t := c.clock.NewTimer(greetingWait)
			defer t.Stop()
			greetingTimeout = t.C()
		}
		select {
		case <-ctx.Done():
			if c.ready {
				return nil // the model is there; answer without waiting for the greeting
			}
			return fmt.Errorf("waiting for session.updated: %w", ctx.Err())
		case <-greetingTimeout:
			c.log.Warn().Dur("waited", greetingWait).Msg("call: greeting audio not ready, answering anyway")
			return nil
		case ev, ok := <-events:
			if !ok {
				return fmt.Errorf("model connection lost: %w", connErr())
			}
			if ev.Kind == realtime.KindError && ev.Err.Code == realtime.CodeBetaShapeDisabled {
				err := fmt.Errorf("%w: %s (%s): this server no longer speaks the beta dialect; set realtime.dialect: ga",
					errSessionRefused, ev.Err.Message, ev.Err.Code)
				ev.Release()
				return err
			}
			if ev.Kind == realtime.KindError && strings.HasPrefix(ev.Err.EventID, "session_") {
				err := fmt.Errorf("%w: %s (%s, param %s)", errSessionRefused, ev.Err.Message, ev.Err.Code, ev.Err.Param)
				ev.Release()
				return err
			}
			c.handle(ev)
			if ev.Kind == realtime.KindAudioDelta || (ev.Kind == realtime.KindResponseDone && c.resp.retrying == "") ||
				(ev.Kind == realtime.KindError && strings.HasPrefix(ev.Err.EventID, "greeting_")) {
				c.greetingStarted = true // audio is queued, or there will be none
			}
			ev.Release()
		}
	}
}

// modelFailed ends a call whose model failed a response twice: the
// apology, then the fallback target or a hang-up. A call that was ending
// anyway (its goodbye failed) just ends: a transfer it never asked for
// would surprise the caller.
func (c *callState) modelFailed(ctx context.Context) string {
	if e := c.ending; e != nil {
		reason, _ := c.giveUp(ctx, e.reason, false)
		return reason
	}
	reason, _ := c.giveUp(ctx, endModelFailed, true)
	return reason
}

// connected runs once the call is answered: media goes live, unless the
// far end holds the call (an outbound call's media was held while it rang).
func (c *callState) connected() {
	c.sig.connected.Store(true)
	c.media.Hold(c.sig.peerHold.Load())
	c.startLimits()
	if c.cfg.Metrics != nil {
		c.statsTimer = c.clock.NewTimer(statsEvery)
	}
}

// statsEvery is how often a call reports its media to the metrics.
const statsEvery = 5 * time.Second

func (c *callState) reportMedia() {
	st := c.media.Stats()
	c.cfg.Metrics.Media(st, c.lastStats)
	c.lastStats = st
	c.statsTimer.Reset(statsEvery)
}

const (
	endCallerHungUp = "caller hung up"
	endModelLost    = "model connection lost"
	endModelFailed  = "model failed to answer"
	endBotHungUp    = "bot ended the call"
	endTransferred  = "transferred"
	endCallerKey    = "caller pressed " // and the key
)

// run is the call's event loop. It returns why the call ended.
func (c *callState) run(ctx context.Context) string {
	for {
		if c.resp.givenUp {
			return c.modelFailed(ctx)
		}
		var timerC, keysC, endC, rolloverC, rtpC, warnC, maxC, statsC <-chan time.Time
		if c.statsTimer != nil {
			statsC = c.statsTimer.C()
		}
		if c.sess.timer != nil {
			rolloverC = c.sess.timer.C()
		}
		if c.limits.rtp != nil {
			rtpC = c.limits.rtp.C()
		}
		if c.limits.warn != nil {
			warnC = c.limits.warn.C()
		}
		if c.limits.max != nil {
			maxC = c.limits.max.C()
		}
		shutdown := c.b.shutdown
		if c.limits.wrapping {
			shutdown = nil
		}
		if c.barge.timer != nil {
			timerC = c.barge.timer.C()
		}
		if c.keys.timer != nil {
			keysC = c.keys.timer.C()
		}
		if c.ending != nil && c.ending.timer != nil {
			endC = c.ending.timer.C()
		}
		select {
		case <-ctx.Done():
			return endCallerHungUp
		case ev, ok := <-c.conn.Events():
			if !ok {
				if reason, ok := c.sessionEnded(ctx, c.conn.Err()); !ok {
					return reason
				}
				continue
			}
			expired := c.sess.expired
			c.handle(ev)
			ev.Release()
			if c.sess.expired && !expired && !c.sess.dialing && c.sess.ready == nil {
				// The service closes an expired session right after saying
				// so: the replacement is dialled now, not once it has.
				c.onRolloverTimer(ctx)
			}
		case <-rolloverC:
			c.onRolloverTimer(ctx)
		case <-statsC:
			c.reportMedia()
		case <-rtpC:
			if reason, done := c.onRTPCheck(); done {
				return reason
			}
		case <-warnC:
			c.onMaxDurationWarning()
		case <-maxC:
			c.limits.max = nil
			c.wrapUp(endMaxDuration, "The call has reached its time limit. Say a short, friendly goodbye now.")
		case <-shutdown:
			c.wrapUp(endShutdown, "The service is closing for maintenance. Apologise briefly, invite the caller to call again, and say goodbye.")
		case res := <-c.sess.standby:
			c.onStandby(res)
		case <-timerC:
			c.onBargeTimer()
		case <-c.localSpeech:
			c.onLocalSpeech()
		case d := <-c.rtpKeys:
			c.onKey(d, "rfc4733")
		case d := <-c.infoKeys:
			c.onKey(d, "sip-info")
		case <-keysC:
			c.onKeysDone()
		case r := <-c.tools.results:
			c.onToolResult(r)
		case <-endC:
			c.ending.timer = nil
		}
		if reason, done := c.checkEnding(); done {
			return reason
		}
		c.maybeRollover()
	}
}

func (c *callState) stopTimers() {
	c.stopBargeTimer()
	if c.keys.timer != nil {
		c.keys.timer.Stop()
	}
	if c.ending != nil && c.ending.timer != nil {
		c.ending.timer.Stop()
	}
	if c.sess.timer != nil {
		c.sess.timer.Stop()
	}
	if c.statsTimer != nil {
		c.statsTimer.Stop()
	}
	c.stopLimits()
}

// closeSessions closes the model sessions once the call is over, the
// current one, a replacement that was ready and one being opened.
func (c *callState) closeSessions() {
	if c.sess.standby != nil {
		if r := <-c.sess.standby; r.conn != nil {
			r.conn.Close()
		}
	}
	c.wg.Wait()
	if c.sess.ready != nil {
		c.sess.ready.Close()
	}
	if c.conn != nil {
		c.conn.Close()
	}
}

func (c *callState) handle(ev realtime.ServerEvent) {
	defer c.speechEvents(ev)
	switch ev.Kind {
	case realtime.KindSessionCreated:
		if ev.Session != nil {
			c.log.Debug().Str("session", ev.Session.ID).Str("model", ev.Session.Model).Msg("model: session created")
			c.sessionCreated(ev.Session)
		}
	case realtime.KindItemAdded:
		c.hist.added(ev.Item)
	case realtime.KindSessionUpdated:
		if !c.ready {
			c.ready = true
			c.log.Debug().Msg("model: session configured")
			c.recallMemory()
			c.greet()
		}
	case realtime.KindAudioDelta:
		c.onAudio(ev)
	case realtime.KindAudioDone:
		c.onAudioDone(ev)
	case realtime.KindSpeechStarted:
		c.log.Debug().Int("audio_start_ms", ev.AudioStartMS).Msg("model: caller started speaking")
		c.sess.callerOn = true
		c.onSpeechStarted(ev.AudioStartMS, false)
	case realtime.KindSpeechStopped:
		c.log.Debug().Int("audio_end_ms", ev.AudioEndMS).Msg("model: caller stopped speaking")
		c.sess.callerOn = false
		c.turnEndedAt = c.clock.Now()
		_, c.turnEndedMS = c.session.TurnDetection.PaddingMS()
		c.onSpeechStopped(ev.AudioEndMS)
	case realtime.KindInputTranscript:
		c.log.Info().Str("who", "caller").Str("item_id", ev.ItemID).Str("text", ev.Text).Msg("transcript")
		c.rec.Emit("transcript", record.Event{"who": "caller", "item_id": ev.ItemID, "text": ev.Text})
		c.hist.transcript(ev.ItemID, ev.Text)
	case realtime.KindInputTranscriptFailed:
		c.log.Warn().Str("item_id", ev.ItemID).Msg("model: caller transcription failed")
	case realtime.KindTranscriptDelta:
		c.botText[ev.ItemID] += ev.Text
		c.rec.Live("transcript_delta", record.Event{"who": "bot", "item_id": ev.ItemID, "delta": ev.Text})
	case realtime.KindTranscriptDone:
		text := ev.Text
		if text == "" {
			text = c.botText[ev.ItemID]
		}
		delete(c.botText, ev.ItemID)
		c.hist.transcript(ev.ItemID, text)
		c.rec.Emit("transcript", record.Event{"who": "bot", "item_id": ev.ItemID, "text": text})
		c.log.Info().Str("who", "bot").Str("item_id", ev.ItemID).Str("text", text).Msg("transcript")
	case realtime.KindResponseCreated:
		c.activeResp = ev.ResponseID
		if c.answerAfter != "" && ev.ResponseID != c.answerAfter {
			c.answerAfter = "" // the server answered the caller's turn itself
		}
	case realtime.KindOutputItemDone:
		if ev.Item != nil && ev.Item.Type == "function_call" {
			c.hist.functionDone(ev.Item)
			c.onFunctionCall(ev.ResponseID, ev.Item)
		}
	case realtime.KindResponseDone:
		c.onResponseDone(ev)
	case realtime.KindItemTruncated:
		c.log.Debug().Str("item_id", ev.ItemID).Int("audio_end_ms", ev.AudioEndMS).Msg("model: item truncated")
	case realtime.KindError:
		c.cfg.Metrics.ModelError(ev.Err.Code)
		// Errors answering a truncate or a cancel (races with the server's
		// own cancel, or audio it had already cut) are expected and harmless.
		c.log.Warn().Str("code", ev.Err.Code).Str("type", ev.Err.Type).Str("event", ev.Err.EventID).
			Str("message", ev.Err.Message).Msg("model: error")
		c.onRequestRefused(ev.Err)
		if ev.Err.Code == realtime.CodeSessionExpired {
			c.log.Info().Msg("model: the session reached its maximum duration; replacing it now")
			c.sess.expired = true
		}
		if ev.Err.Code == realtime.CodeActiveResponse && strings.HasPrefix(ev.Err.EventID, toolAnswerPrefix) {
			c.tools.wantAnswer = true // asked too early: ask again when the active one is done
		}
	}
}

func (c *callState) onResponseDone(ev realtime.ServerEvent) {
	if ev.ResponseID == c.activeResp {
		c.activeResp = ""
	}
	if r := ev.Response; r != nil {
		c.onResponseOutcome(r)
	}
	if c.answerAfter != "" && ev.ResponseID == c.answerAfter {
		c.answerAfter = ""
		c.request("answer_", "")
	}
	c.maybeAnswerTools()
}

func (c *callState) greet() {
	if c.greeted || !c.profile.Greeting {
		return
	}
	c.greeted = true
	prompt := c.profile.GreetingPrompt
	if c.remembered > 0 && c.profile.Memory.GreetingPrompt != "" {
		prompt = c.profile.Memory.GreetingPrompt
	}
	c.request("greeting_", vars.Render(prompt, c.setup.Vars))
}
