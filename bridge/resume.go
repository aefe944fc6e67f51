package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/voicebot/voicebot/clock"
	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/realtime"
	"github.com/voicebot/voicebot/record"
	"github.com/voicebot/voicebot/sound"
)

// Resume configures how a call outlives its model session: a connection
// that drops is reopened within Budget while the caller hears the filler,
// and the conversation goes on from its history; a session about to expire
// is replaced by a fresh one at a quiet moment.
type Resume struct {
	// Budget is how long a lost session may take to come back, all
	// attempts included (default 15 s; negative: end the call at once).
	Budget time.Duration
	// FillerIntro plays once when the connection is lost, then FillerLoop
	// repeats until the session is back (PCM16 8 kHz; both empty: silence
	// would be dead air, so New puts in sound.ComfortTone).
	FillerIntro, FillerLoop []int16
	// Apology plays before the call is given up (PCM16 8 kHz).
	Apology []int16
	// FallbackTarget, a transfer target of the call's profile, takes the
	// caller when the session cannot be brought back; empty: hang up.
	FallbackTarget string
	// GapBuffer is how much of the caller's audio during the gap is kept
	// and sent once the session is back (default 10 s; the latest is kept).
	GapBuffer time.Duration
	// RolloverBefore is how long before a session's expires_at a fresh
	// one replaces it (default 2 min).
	RolloverBefore time.Duration
}

func (r *Resume) defaults() {
	if r.Budget == 0 {
		r.Budget = 15 * time.Second
	}
	if r.GapBuffer <= 0 {
		r.GapBuffer = 10 * time.Second
	}
	if r.RolloverBefore <= 0 {
		r.RolloverBefore = 2 * time.Minute
	}
	if len(r.FillerIntro) == 0 && len(r.FillerLoop) == 0 {
		r.FillerLoop = sound.ComfortTone()
	}
}

// liveConn is a model session the call reads events from.
type liveConn interface {
	modelConn
	Events() <-chan realtime.ServerEvent
	Err() error
	Close() error
}

// fillerRef marks the filler's audio in the playout: it is nobody's item.
var fillerRef = media.ItemRef{ResponseID: "voicebot_filler", ItemID: "voicebot_filler"}

// sessionState is the bookkeeping of session changes, owned by the loop.
type sessionState struct {
	reconnects int
	rollovers  int
	fillerOn   bool
	// Rollover: when the session expires, the timer that starts the
	// replacement, and the replacement once it is ready.
	expiresAt time.Time
	timer     clock.Timer
	dialing   bool
	standby   chan standbyResult
	ready     liveConn
	readyInfo *realtime.SessionInfo
	urgentAt  time.Time // the old session must go now, quiet or not
	callerOn  bool      // the caller is speaking (speech_started without stopped)
	// expired: the server said session_expired; it closes the session
	// next, and the replacement takes over at once.
	expired bool
	// fillerWhenDry: the filler waits for the bot's queued audio to play
	// out (a session replaced while it spoke), rather than cutting it.
	fillerWhenDry bool
}

type standbyResult struct {
	conn liveConn
	info *realtime.SessionInfo // from session.created, for its expiry
	err  error
}

// sessionCreated learns when the session expires and plans the rollover.
func (c *callState) sessionCreated(info *realtime.SessionInfo) {
	if info == nil || info.ExpiresAt <= 0 {
		return
	}
	r := &c.sess
	r.expiresAt = time.Unix(info.ExpiresAt, 0)
	lead := c.cfg.Resume.RolloverBefore
	left := r.expiresAt.Sub(c.clock.Now())
	if left <= 0 {
		return
	}
	if lead >= left {
		lead = left / 2 // a short-lived session: replace it half way
	}
	r.urgentAt = r.expiresAt.Add(-min(10*time.Second, lead/2))
	if r.timer != nil {
		r.timer.Stop()
	}
	r.timer = c.clock.NewTimer(left - lead)
}

// onRolloverTimer opens the replacement session in the background: the
// current one keeps serving the call meanwhile.
func (c *callState) onRolloverTimer(ctx context.Context) {
	r := &c.sess
	if r.timer != nil {
		r.timer.Stop() // fired, or overtaken by session_expired
		r.timer = nil
	}
	if r.dialing || r.ready != nil || c.ending != nil {
		return
	}
	update, err := c.sessionUpdate()
	if err != nil {
		c.log.Warn().Err(err).Msg("model: rollover not started")
		return
	}
	r.dialing = true
	r.standby = make(chan standbyResult, 1)
	c.log.Info().Time("expires_at", r.expiresAt).Msg("model: session expires soon, opening its replacement")
	ch, dial := r.standby, c.b.cfg.Model
	timeout, modelName := c.b.cfg.ConnectTimeout, c.profile.Model
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ch <- openStandby(ctx, dial, modelName, update, timeout)
	}()
}

// openStandby dials a session, configures it and waits for session.updated.
func openStandby(ctx context.Context, m Model, model string, update []byte, timeout time.Duration) standbyResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := m.Dial(ctx, model)
	if err != nil {
		return standbyResult{err: err}
	}
	if err := conn.Send(update); err != nil {
		conn.Close()
		return standbyResult{err: err}
	}
	var info *realtime.SessionInfo
	for {
		select {
		case <-ctx.Done():
			conn.Close()
			return standbyResult{err: ctx.Err()}
		case ev, ok := <-conn.Events():
			if !ok {
				return standbyResult{err: fmt.Errorf("connection lost: %w", conn.Err())}
			}
			kind, msg := ev.Kind, ""
			if ev.Err != nil {
				msg = ev.Err.Message
			}
			if kind == realtime.KindSessionCreated {
				info = ev.Session
			}
			ev.Release()
			switch kind {
			case realtime.KindSessionUpdated:
				return standbyResult{conn: conn, info: info}
			case realtime.KindError:
				conn.Close()
				return standbyResult{err: fmt.Errorf("%w: %s", errSessionRefused, msg)}
			}
		}
	}
}

// onStandby takes the finished attempt at a replacement session.
func (c *callState) onStandby(res standbyResult) {
	r := &c.sess
	r.dialing, r.standby = false, nil
	if res.err != nil {
		c.log.Warn().Err(res.err).Msg("model: replacement session failed; trying again in 30 s")
		r.timer = c.clock.NewTimer(30 * time.Second)
		return
	}
	r.ready, r.readyInfo = res.conn, res.info
}

// quiet reports whether nobody is talking and nothing is pending: the
// moment to change sessions without anyone noticing. A caller's turn the
// model has yet to answer, or an answer still being made, is pending: the
// new session would not know to answer (the turn's transcript may not
// even exist yet).
func (c *callState) quiet() bool {
	answerDue := !c.turnEndedAt.IsZero() && c.clock.Now().Sub(c.turnEndedAt) < answerWait
	return !c.speaking() && !c.sess.callerOn && !c.barge.paused && c.tools.inFlight == 0 && c.ending == nil && !c.tools.wantAnswer &&
		c.activeResp == "" && !answerDue
}

// answerWait is how long after the caller's turn an answer is expected;
// a model that does not answer (create_response off) is not waited for
// longer.
const answerWait = 5 * time.Second

// maybeRollover moves the call to the ready replacement at a quiet
// moment, or at once when the old session is about to expire.
func (c *callState) maybeRollover() {
	r := &c.sess
	if r.ready == nil {
		return
	}
	urgent := r.expired || (!r.urgentAt.IsZero() && !c.clock.Now().Before(r.urgentAt))
	if !c.quiet() && !urgent {
		return
	}
	old := c.conn
	// An expired session's answer is all there will be of it: what is
	// queued plays on (as when its close is read first, replaceExpired).
	c.loseSession(r.expired)
	c.takeOver()
	c.log.Info().Bool("urgent", urgent).Msg("model: session replaced before it expired")
	if old != nil {
		// Closing waits for its reader, which may be mid-event: not on the
		// loop, but still within the call (closeSessions waits for it).
		c.wg.Add(1)
		go func() { defer c.wg.Done(); old.Close() }()
	}
}

// takeOver moves the call to the ready replacement session, the old one
// already lost: the conversation is replayed into it and the caller's
// audio held meanwhile follows.
func (c *callState) takeOver() {
	r := &c.sess
	next, info := r.ready, r.readyInfo
	r.ready, r.readyInfo = nil, nil
	c.useSession(next)
	c.rolledOver()
	c.sessionCreated(info)
}

// useSession makes conn the call's session: the conversation so far is
// replayed into it, then the caller's audio held meanwhile follows.
func (c *callState) useSession(conn liveConn) {
	c.conn = conn
	c.setModel(conn)
	c.replayHistory()
	c.up.release(conn)
}

func (c *callState) rolledOver() {
	c.sess.rollovers++
	c.cfg.Metrics.Rollover()
	c.rec.Emit("rollover", nil)
}

// sessionEnded handles the end of the session's event stream: a session
// the server expired is replaced at once, as a planned rollover would have
// done; any other end is a lost connection.
func (c *callState) sessionEnded(ctx context.Context, cause error) (reason string, ok bool) {
	if !c.sess.expired || c.ending != nil {
		return c.modelLost(ctx, cause)
	}
	return c.replaceExpired(ctx, cause)
}

// replaceExpired moves the call to a new session after the service expired
// the old one (the planned rollover did not happen in time: no expires_at,
// a clock ahead of ours, a call never quiet). Nothing went wrong: what is
// queued of the bot's answer plays on while the replacement, dialled when
// session_expired arrived, comes; the filler starts only if the queue runs
// dry first.
func (c *callState) replaceExpired(ctx context.Context, cause error) (string, bool) {
	c.conn.Close()
	c.loseSession(true)
	c.sess.fillerWhenDry = true
	conn, err := c.reopen(ctx, c.clock.Now().Add(c.b.cfg.ConnectTimeout))
	c.sess.fillerWhenDry = false
	if err != nil {
		if ctx.Err() != nil {
			return endCallerHungUp, false
		}
		c.log.Warn().Err(err).Msg("model: no replacement for the expired session; reconnecting")
		return c.reconnect(ctx, cause)
	}
	c.fillerPlaying(false) // only the filler is flushed: it starts once the bot's audio is out
	c.useSession(conn)
	c.rolledOver()
	c.log.Info().Msg("model: expired session replaced")
	return "", true
}

// loseSession forgets the old session's responses: what the caller heard
// of the bot's audio is recorded, the rest is dropped (the new session
// knows nothing of those items), and caller audio is held for the next.
// With keepPlayout what is queued plays on and counts as heard (unless
// the playout is paused on a barge-in decision, which the new session
// could not finish).
func (c *callState) loseSession(keepPlayout bool) {
	if keepPlayout && !c.barge.paused {
		for item, received := range c.receivedBytes {
			ms := received / c.format.BytesPerMS()
			c.hist.heard(item, ms, ms)
		}
	} else {
		played, _ := c.media.Flush()
		c.fillerPlaying(false)
		for _, p := range played {
			if p.Ref == fillerRef {
				continue
			}
			c.hist.heard(p.Ref.ItemID, min(p.SentMS(), c.receivedMS(p.Ref.ItemID)), c.receivedMS(p.Ref.ItemID))
		}
	}
	c.down.Reset()
	for item, text := range c.botText {
		c.hist.transcript(item, text) // a transcript the session did not finish
	}
	c.stopBargeTimer()
	c.barge.paused = false
	c.activeResp, c.answerAfter = "", ""
	clear(c.discarded)
	clear(c.cancelSent)
	clear(c.receivedBytes)
	clear(c.botText)
	clear(c.resp.pending) // the new session knows nothing of those requests
	c.sess.callerOn, c.sess.expired = false, false
	c.up.hold(int(c.cfg.Resume.GapBuffer / time.Millisecond))
}

// replayHistory gives the new session the conversation so far, then asks
// for an answer when the caller is owed one.
func (c *callState) replayHistory() {
	owed := c.hist.awaitingBot()
	items := c.hist.replay()
	for _, it := range items {
		ev, err := c.model.Dialect().ItemCreate(c.nextEventID("replay_"), it)
		c.send("conversation.item.create", ev, err)
	}
	c.log.Info().Int("items", len(items)).Bool("answer", owed).Msg("model: conversation replayed into the new session")
	if owed {
		c.request("answer_", "")
	}
}

// fillerPlaying starts or stops the filler.
func (c *callState) fillerPlaying(on bool) {
	if on == c.sess.fillerOn {
		return
	}
	c.sess.fillerOn = on
	if !on {
		c.media.Flush()
		return
	}
	if len(c.cfg.Resume.FillerIntro) > 0 {
		c.enqueueSound(fillerRef, c.cfg.Resume.FillerIntro)
	}
	c.topUpFiller()
}

// topUpFiller keeps half a second of the filler loop queued.
func (c *callState) topUpFiller() {
	if !c.sess.fillerOn && c.sess.fillerWhenDry && c.media.QueuedMS() == 0 {
		c.fillerPlaying(true) // the bot's audio is out: fill from here
		return
	}
	loop := c.cfg.Resume.FillerLoop
	if !c.sess.fillerOn || len(loop) == 0 {
		return
	}
	for c.media.QueuedMS() < 500 {
		c.enqueueSound(fillerRef, loop)
	}
}

// fillerTick is how often the filler is topped up while the loop waits.
const fillerTick = 100 * time.Millisecond

// modelLost brings a lost session back. It returns false when the call
// cannot go on: the caller hung up, or the budget ran out (the caller has
// then heard the apology and been transferred or hung up on).
func (c *callState) modelLost(ctx context.Context, cause error) (reason string, ok bool) {
	if c.ending != nil {
		c.log.Warn().Err(cause).Msg("model: connection lost while the call was ending")
		return c.ending.reason, false
	}
	if c.cfg.Resume.Budget < 0 {
		c.log.Error().Err(cause).Msg("call: model connection lost")
		return endModelLost, false
	}
	c.log.Warn().Err(cause).Dur("budget", c.cfg.Resume.Budget).Msg("model: connection lost; reconnecting while the caller hears the filler")
	if old := c.conn; old != nil {
		old.Close()
	}
	c.loseSession(false)
	return c.reconnect(ctx, cause)
}

// reconnect opens a new session for a call whose session is gone (and
// lost), within the budget, while the caller hears the filler.
func (c *callState) reconnect(ctx context.Context, cause error) (reason string, ok bool) {
	budget := max(c.cfg.Resume.Budget, 0)
	start := c.clock.Now()
	deadline := start.Add(budget)
	c.sess.reconnects++
	c.fillerPlaying(true)
	c.rec.Emit("model_lost", record.Event{"error": fmt.Sprint(cause)})
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		conn, err := c.reopen(ctx, deadline)
		if err == nil {
			c.fillerPlaying(false)
			c.useSession(conn)
			c.log.Info().Int("attempts", attempt).Dur("gap", c.clock.Now().Sub(start)).Msg("model: session back, conversation resumed")
			c.cfg.Metrics.Reconnect(true)
			c.rec.Emit("model_back", record.Event{"attempts": attempt, "gap_ms": float64(c.clock.Now().Sub(start)) / 1e6})
			return "", true
		}
		if ctx.Err() != nil {
			return endCallerHungUp, false
		}
		left := deadline.Sub(c.clock.Now())
		c.log.Warn().Err(err).Int("attempt", attempt).Dur("left", left).Msg("model: reconnect failed")
		if left <= backoff {
			break
		}
		if !c.waitWithFiller(ctx, backoff) {
			return endCallerHungUp, false
		}
		backoff = min(2*backoff, 2*time.Second)
	}
	c.cfg.Metrics.Reconnect(false)
	return c.giveUp(ctx, endModelLost, true)
}

// reopen brings a new session, configured, keeping the filler going: the
// replacement a rollover has ready or is opening, else one dialled now.
func (c *callState) reopen(ctx context.Context, deadline time.Time) (liveConn, error) {
	r := &c.sess
	if ready := r.ready; ready != nil {
		r.ready = nil
		c.sessionCreated(r.readyInfo)
		return ready, nil
	}
	res := r.standby
	cancel := func() {}
	if r.dialing {
		// Bounded by the connect timeout it was started with.
		r.dialing, r.standby = false, nil
	} else {
		wait := min(c.b.cfg.ConnectTimeout, deadline.Sub(c.clock.Now()))
		if wait <= 0 {
			return nil, errors.New("no time left")
		}
		update, err := c.sessionUpdate()
		if err != nil {
			return nil, err
		}
		var dctx context.Context
		dctx, cancel = context.WithCancel(ctx)
		ch := make(chan standbyResult, 1)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			ch <- openStandby(dctx, c.b.cfg.Model, c.profile.Model, update, wait)
		}()
		res = ch
	}
	defer cancel()
	tick := c.clock.NewTimer(fillerTick)
	defer tick.Stop()
	for {
		select {
		case r := <-res:
			if r.err == nil {
				c.sessionCreated(r.info)
			}
			return r.conn, r.err
		case <-tick.C():
			c.topUpFiller()
			tick.Reset(fillerTick)
		case <-ctx.Done():
			cancel()
			if r := <-res; r.conn != nil {
				r.conn.Close()
			}
			return nil, ctx.Err()
		}
	}
}

// waitWithFiller waits d, topping up the filler; false if the caller hung up.
func (c *callState) waitWithFiller(ctx context.Context, d time.Duration) bool {
	t := c.clock.NewTimer(d)
	defer t.Stop()
	tick := c.clock.NewTimer(fillerTick)
	defer tick.Stop()
	for {
		select {
		case <-t.C():
			return true
		case <-tick.C():
			c.topUpFiller()
			tick.Reset(fillerTick)
		case <-ctx.Done():
			return false
		}
	}
}

// giveUp ends a call whose model is gone or keeps failing (reason): the
// apology plays, then the caller is transferred to the fallback target
// (with fallback) or hung up on.
func (c *callState) giveUp(ctx context.Context, reason string, fallback bool) (string, bool) {
	c.fillerPlaying(false)
	c.log.Error().Str("why", reason).Msg("call: the model cannot go on; apologising and ending the call")
	if a := c.cfg.Resume.Apology; len(a) > 0 {
		c.enqueueSound(media.ItemRef{ResponseID: "voicebot_apology", ItemID: "voicebot_apology"}, a)
		limit := c.clock.NewTimer(time.Duration(len(a))*time.Second/sound.Rate + time.Second)
		tick := c.clock.NewTimer(fillerTick)
	wait:
		for c.media.QueuedMS() > 0 {
			select {
			case <-tick.C():
				tick.Reset(fillerTick)
			case <-limit.C():
				break wait
			case <-ctx.Done():
				break wait
			}
		}
		limit.Stop()
		tick.Stop()
		if ctx.Err() != nil {
			return endCallerHungUp, false
		}
		c.waitWithFiller(ctx, 2*media.FrameDurationMS*time.Millisecond) // the last packet leaves
	}
	target := c.cfg.Resume.FallbackTarget
	if target == "" || c.call == nil || !fallback {
		return reason, false
	}
	t, ok := c.profile.TransferTargets[target]
	if !ok {
		c.log.Warn().Str("target", target).Msg("call: fallback target is not a transfer target of this agent; hanging up")
		return reason, false
	}
	c.log.Info().Str("target", target).Msg("call: transferring to the fallback target")
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.call.Transfer(tctx, t.URI); err != nil {
		c.log.Warn().Err(err).Str("target", target).Msg("call: fallback transfer failed; hanging up")
		return reason, false
	}
	return endTransferred, false
}

// sessionUpdate is this call's session.update, for a new session.
func (c *callState) sessionUpdate() ([]byte, error) {
	s := c.session
	s.InputFormat, s.OutputFormat = c.format, c.format
	return c.model.Dialect().SessionUpdate(c.nextEventID("session_"), s)
}
