package sip

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Mid-call requests: re-INVITE and UPDATE (hold, resume, a new media
// address or codec, session refreshes), INFO (keys), NOTIFY (the progress
// of our REFER).

// renegotiate answers a new offer within the call, keeping the codec in use
// when the offer still has it. Caller holds mu.
func (c *Call) renegotiateLocked(offer []byte) (Media, error) {
	prefs := make([]Codec, 0, len(c.ua.cfg.Codecs)+1)
	for _, k := range c.ua.cfg.Codecs {
		if k.Name == c.media.Codec.Name {
			prefs = append(prefs, k)
		}
	}
	prefs = append(prefs, c.ua.cfg.Codecs...)
	m, err := Negotiate(offer, prefs, c.ua.cfg.SRTP)
	return c.keyed(m), err
}

// refreshed takes the session timer a refresh (theirs or ours) set.
func (c *Call) refreshed(t sessionTimer) {
	c.mu.Lock()
	c.timer = t
	c.mu.Unlock()
	select {
	case c.timerKick <- struct{}{}:
	default:
	}
}

// inDialogAnswer is what a re-INVITE or UPDATE negotiated: our 2xx, and
// what to apply once it is sent.
type inDialogAnswer struct {
	res     *sip.Response
	timer   sessionTimer
	media   Media
	offered bool
}

// answerInDialog negotiates a re-INVITE or UPDATE: its required extensions,
// the session timer, and its offer when it has one. It builds the 2xx, with
// our SDP when there was an offer or withSDP (a re-INVITE without an offer
// gets ours). A request it cannot take it answers itself; ok is then false
// and the call goes on as it was.
func (c *Call) answerInDialog(req *sip.Request, tx sip.ServerTransaction, withSDP bool) (a inDialogAnswer, ok bool) {
	if bad := unsupportedRequire(req); len(bad) > 0 {
		c.ua.respond(tx, req, 420, "Bad Extension", nil, sip.NewHeader("Unsupported", strings.Join(bad, ", ")))
		return a, false
	}
	th, err := parseTimerHeaders(req)
	if err != nil {
		c.ua.respond(tx, req, 400, "Bad Request ("+sanitize(err.Error())+")", nil)
		return a, false
	}
	c.mu.Lock()
	timer, refresher, err := timerForRequest(th, c.timer, c.ua.cfg.SessionExpires, c.ua.cfg.MinSE, c.ua.cfg.Clock.Now())
	if err != nil {
		c.mu.Unlock()
		c.ua.respond(tx, req, 422, "Session Interval Too Small", nil, sip.NewHeader("Min-SE", strconv.Itoa(int(c.ua.cfg.MinSE/time.Second))))
		return a, false
	}
	a.timer, a.media, a.offered = timer, c.media, len(req.Body()) > 0
	if a.offered {
		if a.media, err = c.renegotiateLocked(req.Body()); err != nil {
			c.mu.Unlock()
			c.log.Warn().Err(err).Str("method", string(req.Method)).Msg("sip: refusing an offer; the call goes on as it was")
			c.ua.respond(tx, req, 488, "Not Acceptable Here ("+sanitize(err.Error())+")", nil)
			return a, false
		}
	}
	var body []byte
	if a.offered || withSDP {
		body, err = c.localSDPLocked(a.media)
	}
	c.mu.Unlock()
	if err != nil {
		c.ua.respond(tx, req, 500, "Server Internal Error", nil)
		return a, false
	}
	a.res = c.response(req, 200, "OK", body)
	if body != nil {
		a.res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	a.res.AppendHeader(c.ua.contact(req.Transport(), req.Source()))
	a.res.AppendHeader(sip.NewHeader("Allow", allowMethods))
	a.res.AppendHeader(sip.NewHeader("Supported", supported))
	timer.addTo(a.res, th, refresher)
	return a, true
}

// taken applies what a sent 2xx agreed.
func (c *Call) taken(a inDialogAnswer) {
	c.refreshed(a.timer)
	if a.offered {
		c.apply(a.media)
	}
}

// onReinvite handles a re-INVITE: a new offer (hold, resume, a move), an
// offerless one (we offer in the 2xx, the answer comes in the ACK), or a
// session refresh. Glare with our own re-INVITE gets 491.
func (c *Call) onReinvite(req *sip.Request, tx sip.ServerTransaction) {
	c.mu.Lock()
	if !c.answered || c.reinviting || c.ctx.Err() != nil {
		c.mu.Unlock()
		c.ua.respond(tx, req, 491, "Request Pending", nil, sip.NewHeader("Retry-After", "2"))
		return
	}
	c.reinviting = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.reinviting = false
		c.mu.Unlock()
	}()
	a, ok := c.answerInDialog(req, tx, true)
	if !ok {
		return
	}
	ack := c.expectAck(req.CSeq().SeqNo)
	c.ua.sent(a.res.StatusCode)
	if err := tx.Respond(a.res); err != nil {
		c.log.Debug().Err(err).Msg("sip: re-INVITE answer not sent")
		return
	}
	c.taken(a)
	// The 2xx is retransmitted until its ACK comes; this request's goroutine
	// (sipgo runs each in its own) waits for it, as the transaction must
	// live until then.
	ackBody, err := c.awaitAck(c.ctx, tx, a.res, ack)
	switch {
	case errors.Is(err, errNoAck):
		c.log.Warn().Msg("sip: no ACK for the re-INVITE's 200 OK, hanging up")
		c.end(EndAckTimeout)
		_ = c.sendBye()
	case err == nil && !a.offered && len(ackBody) > 0:
		c.mu.Lock()
		m, err := c.renegotiateLocked(ackBody)
		c.mu.Unlock()
		if err != nil {
			c.log.Warn().Err(err).Msg("sip: the answer in the ACK is unusable, hanging up")
			c.end(EndError)
			_ = c.sendBye()
			return
		}
		c.apply(m)
	}
}

// onUpdate handles UPDATE (RFC 3311): a new offer answered in the 2xx, or,
// without a body, a session refresh.
func (u *UA) onUpdate(req *sip.Request, tx sip.ServerTransaction) {
	c := u.inDialog(req, tx)
	if c == nil {
		return
	}
	c.mu.Lock()
	glare := c.reinviting && len(req.Body()) > 0
	c.mu.Unlock()
	if glare {
		u.respond(tx, req, 491, "Request Pending", nil, sip.NewHeader("Retry-After", "2"))
		return
	}
	a, ok := c.answerInDialog(req, tx, false)
	if ok {
		u.sent(a.res.StatusCode)
	}
	if !ok || tx.Respond(a.res) != nil {
		return
	}
	c.taken(a)
}

// apply records renegotiated media and tells the handler.
func (c *Call) apply(m Media) {
	c.mu.Lock()
	old := c.media
	c.media = m
	c.mu.Unlock()
	if old.OnHold() != m.OnHold() {
		if m.OnHold() {
			c.log.Info().Str("direction", m.Direction).Msg("sip: the peer put the call on hold")
		} else {
			c.log.Info().Msg("sip: the peer took the call off hold")
		}
	}
	if old.Remote != m.Remote || old.Codec != m.Codec {
		c.log.Info().Str("remote_rtp", m.Remote.String()).Str("codec", m.Codec.Name).Msg("sip: media renegotiated")
	}
	if m.Quirk != old.Quirk {
		logQuirk(c.log, m)
	}
	c.emit(Event{Media: &m})
}

// onInfo takes key presses sent as SIP INFO (application/dtmf-relay, or
// application/dtmf) within a call.
func (u *UA) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	c := u.inDialog(req, tx)
	if c == nil {
		return
	}
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = strings.ToLower(strings.TrimSpace(strings.Split(h.Value(), ";")[0]))
	}
	if len(req.Body()) == 0 {
		u.respond(tx, req, 200, "OK", nil) // an empty INFO is a keep-alive
		return
	}
	digit, ok := rune(0), false
	switch ct {
	case "application/dtmf-relay":
		digit, ok = parseDTMFRelay(string(req.Body()))
	case "application/dtmf":
		digit, ok = parseDTMFDigit(strings.TrimSpace(string(req.Body())))
	default:
		u.respond(tx, req, 415, "Unsupported Media Type", nil, sip.NewHeader("Accept", "application/dtmf-relay, application/dtmf"))
		return
	}
	if !ok {
		u.respond(tx, req, 400, "Bad Request (no DTMF signal in body)", nil)
		return
	}
	u.respond(tx, req, 200, "OK", nil)
	c.emit(Event{Key: digit})
}

// parseDTMFRelay reads the "Signal=5\r\nDuration=160" body of
// application/dtmf-relay.
func parseDTMFRelay(body string) (rune, bool) {
	for _, line := range strings.Split(body, "\n") {
		k, v, found := strings.Cut(line, "=")
		if found && strings.EqualFold(strings.TrimSpace(k), "signal") {
			return parseDTMFDigit(strings.TrimSpace(v))
		}
	}
	return 0, false
}

// parseDTMFDigit accepts one key: 0-9, *, #, A-D, or the event codes 10-15.
func parseDTMFDigit(s string) (rune, bool) {
	switch {
	case len(s) == 1 && strings.ContainsRune("0123456789*#ABCDabcd", rune(s[0])):
		return []rune(strings.ToUpper(s))[0], true
	case s == "10":
		return '*', true
	case s == "11":
		return '#', true
	case len(s) == 2 && s[0] == '1' && s[1] >= '2' && s[1] <= '5':
		return rune('A' + s[1] - '2'), true
	}
	return 0, false
}

// startSessionTimer runs the call's session timer once it is established.
func (c *Call) startSessionTimer() {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		current := func() sessionTimer {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.timer
		}
		runSessionTimer(c.ctx, c.ua.cfg.Clock, current, c.timerKick, c.refresh, func(reason string) {
			c.log.Warn().Str("reason", reason).Msg("sip: session expired, hanging up")
			c.end(EndSessionExpired)
			_ = c.sendBye()
		})
	}()
}

// refresh sends our session refresh: UPDATE without a body when the peer
// allows UPDATE, else a re-INVITE with our current SDP (unchanged, so the
// same version: RFC 3264 §8).
func (c *Call) refresh(ctx context.Context) error {
	d := c.dialog()
	c.mu.Lock()
	if c.reinviting {
		c.mu.Unlock()
		return errors.New("an INVITE transaction is in progress")
	}
	method := sip.INVITE
	if allows(c.peerAllow, "UPDATE") {
		method = sip.UPDATE
	}
	if method == sip.INVITE {
		c.reinviting = true
	}
	t := c.timer
	sdp := c.localSDP
	c.mu.Unlock()
	defer func() {
		if method == sip.INVITE {
			c.mu.Lock()
			c.reinviting = false
			c.mu.Unlock()
		}
	}()
	req := d.request(method, c.ua.cfg.UserAgent, c.ua.contact(d.transport, d.dest))
	req.AppendHeader(t.header("uac"))
	req.AppendHeader(sip.NewHeader("Supported", supported))
	if method == sip.INVITE {
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(sdp)
	}
	rctx, cancel := context.WithTimeout(ctx, 32*time.Second)
	defer cancel()
	var res *sip.Response
	var err error
	if method == sip.INVITE {
		res, err = c.inviteInDialog(rctx, req)
	} else {
		res, err = c.ua.do(rctx, req)
	}
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return errRefreshFatal{code: 408}
		}
		return fmt.Errorf("session refresh: %w", err)
	}
	switch {
	case res.StatusCode == 408 || res.StatusCode == 481:
		return errRefreshFatal{code: res.StatusCode}
	case res.StatusCode == 422:
		// The peer wants a longer interval: take its Min-SE and try again.
		if h, err := parseTimerHeaders(res); err == nil && h.minSE > 0 {
			c.mu.Lock()
			c.timer.interval = max(c.timer.interval, h.minSE)
			c.mu.Unlock()
		}
		return fmt.Errorf("session refresh: 422")
	case res.StatusCode >= 300:
		return fmt.Errorf("session refresh: %d %s", res.StatusCode, res.Reason)
	}
	if h := res.GetHeader("Allow"); h != nil {
		c.mu.Lock()
		c.peerAllow = h.Value()
		c.mu.Unlock()
	}
	th, _ := parseTimerHeaders(res)
	c.refreshed(timerForResponse(th, t, c.ua.cfg.Clock.Now()))
	c.log.Debug().Str("method", string(method)).Msg("sip: session refreshed")
	return nil
}

// inviteInDialog sends a re-INVITE and returns its final response; a 2xx
// is acknowledged, and so are its retransmissions for as long as they come
// (the transaction lives on for that until sipgo's Timer M ends it).
func (c *Call) inviteInDialog(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	tx, err := c.ua.transaction(ctx, req)
	if err != nil {
		return nil, err
	}
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			if !res.IsSuccess() {
				tx.Terminate()
				return res, nil
			}
			c.ackInDialog(req, res)
			tx.OnRetransmission(func(r *sip.Response) {
				if r.IsSuccess() {
					c.ackInDialog(req, r)
				}
			})
			return res, nil
		case <-tx.Done():
			return nil, fmt.Errorf("re-INVITE: %w", tx.Err())
		case <-ctx.Done():
			tx.Terminate()
			return nil, ctx.Err()
		}
	}
}

// ackInDialog acknowledges a 2xx to our INVITE: a request of its own
// (RFC 3261 §13.2.2.4), same CSeq number, to the dialog's destination.
func (c *Call) ackInDialog(invite *sip.Request, res *sip.Response) {
	d := c.dialog()
	if d == nil {
		return
	}
	ack := sip.NewRequest(sip.ACK, *d.target.Clone())
	ack.AppendHeader(sip.HeaderClone(invite.From()))
	to := res.To()
	ack.AppendHeader(sip.HeaderClone(to))
	cid := sip.CallIDHeader(d.callID)
	ack.AppendHeader(&cid)
	ack.AppendHeader(&sip.CSeqHeader{SeqNo: invite.CSeq().SeqNo, MethodName: sip.ACK})
	maxFwd := sip.MaxForwardsHeader(70)
	ack.AppendHeader(&maxFwd)
	for _, r := range d.routes {
		ack.AppendHeader(sip.NewHeader("Route", r))
	}
	ack.SetTransport(d.transport)
	ack.SetDestination(d.dest)
	ack.SetBody(nil)
	if err := c.ua.client.WriteRequest(ack, c.ua.prepare); err != nil {
		c.log.Debug().Err(err).Msg("sip: ACK not sent")
	}
}

// allows reports whether an Allow header value lists method.
func allows(allow, method string) bool {
	for _, m := range strings.Split(allow, ",") {
		if strings.EqualFold(strings.TrimSpace(m), method) {
			return true
		}
	}
	return false
}
