package sip

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/voicebot/voicebot/outcome"
)

// PlaceRequest is an outbound call to place.
type PlaceRequest struct {
	// To is a number or user at the trunk, or a full sip: URI.
	To string
	// From is the caller ID (a user part); default: the trunk's FromUser.
	From string
	// Trunk names the trunk to call through; default: the first one. With
	// no trunk configured, To must be a sip: URI, which is called directly.
	Trunk string
	// RingTimeout is how long the callee may ring (default 30 s).
	RingTimeout time.Duration
	// Headers are sent on the INVITE: context for the far end (a CRM id,
	// User-to-User). Only X- headers and User-to-User (CheckHeader).
	Headers map[string]string

	trunk *Trunk
	dest  string // where the INVITE goes (host:port)
}

// ErrShuttingDown refuses new calls while the UA stops.
var ErrShuttingDown = errors.New("sip: shutting down")

// ErrAtCapacity is returned by Place when admission.max_calls are up.
var ErrAtCapacity = errors.New("sip: at capacity (admission.max_calls)")

// Place starts an outbound call and runs handler with it in a goroutine of
// the UA's, as for an inbound call: handler's Answer places the INVITE and
// returns once the callee answers. It returns the call at once, or an error
// when the request cannot be placed.
func (u *UA) Place(r PlaceRequest, handler Handler) (*Call, error) {
	if u.baseContext().Err() != nil {
		return nil, ErrShuttingDown
	}
	invite, err := u.buildInvite(&r)
	if err != nil {
		return nil, err
	}
	log := u.log.With().Str("call_id", callID(invite)).Logger()
	c := newCall(u, Outbound, log)
	c.invite, c.outbound = invite, &r
	switch u.startCall() {
	case RejectShuttingDown:
		return nil, ErrShuttingDown
	case RejectOverCapacity:
		return nil, ErrAtCapacity
	}
	log.Info().Str("to", invite.Recipient.String()).Str("trunk", r.Trunk).Msg("sip: placing call")
	go func() {
		defer u.endCall()
		u.run(c, handler)
	}()
	return c, nil
}

// run gives a call to its handler, and ends the call when the handler
// returns.
func (u *UA) run(c *Call, handler Handler) {
	panicked := false
	func() {
		defer func() {
			if p := recover(); p != nil {
				c.log.Error().Interface("panic", p).Msg("sip: call handler panicked")
				panicked = true
			}
		}()
		handler(c.ctx, c)
	}()
	c.finish(panicked)
}

// buildInvite makes the INVITE of r (without its SDP offer, which needs the
// call's RTP port) and picks its trunk and destination.
func (u *UA) buildInvite(r *PlaceRequest) (*sip.Request, error) {
	if r.RingTimeout <= 0 {
		r.RingTimeout = 30 * time.Second
	}
	for i := range u.cfg.Trunks {
		if r.Trunk == "" || u.cfg.Trunks[i].Name == r.Trunk {
			r.trunk = &u.cfg.Trunks[i]
			r.Trunk = r.trunk.Name
			break
		}
	}
	if r.Trunk != "" && r.trunk == nil {
		return nil, fmt.Errorf("sip: no trunk named %q", r.Trunk)
	}
	var to sip.Uri
	fromUser, fromHost := "voicebot", u.advertisedHost()
	switch {
	case r.trunk != nil:
		var err error
		if to, err = r.trunk.uri(r.To); err != nil {
			return nil, fmt.Errorf("sip: %w", err)
		}
		r.dest = r.trunk.Address
		fromUser, fromHost = r.trunk.FromUser, r.trunk.aor().Host
		if fromUser == "" {
			fromUser = "voicebot"
		}
	case strings.HasPrefix(strings.ToLower(r.To), "sip:"):
		if err := sip.ParseUri(r.To, &to); err != nil || to.Host == "" {
			return nil, fmt.Errorf("sip: bad SIP URI %q", r.To)
		}
		port := to.Port
		if port == 0 {
			port = 5060
		}
		r.dest = net.JoinHostPort(to.Host, fmt.Sprint(port))
	default:
		return nil, errors.New("sip: no trunk configured: call a sip: URI")
	}
	if r.From != "" {
		if strings.ContainsAny(r.From, " <>@;:\"\r\n") {
			return nil, fmt.Errorf("sip: bad caller ID %q", r.From)
		}
		fromUser = r.From
	}
	transport := "udp"
	if r.trunk != nil {
		transport = r.trunk.Transport
	}
	if tp, ok := to.UriParams.Get("transport"); ok && tp != "" {
		transport = strings.ToLower(tp)
	}

	var b [16]byte
	_, _ = rand.Read(b[:])
	req := sip.NewRequest(sip.INVITE, to)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: fromUser, Host: fromHost}, Params: sip.NewParams()}
	from.Params.Add("tag", hex.EncodeToString(b[:6]))
	toHdr := &sip.ToHeader{Address: sip.Uri{Scheme: to.Scheme, User: to.User, Host: to.Host, Port: to.Port}}
	req.AppendHeader(from)
	req.AppendHeader(toHdr)
	cid := sip.CallIDHeader(hex.EncodeToString(b[6:]) + "@voicebot")
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: binary.BigEndian.Uint32(b[12:]) & 0x7fff, MethodName: sip.INVITE})
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxFwd)
	req.AppendHeader(u.contactFor(fromUser, transport, r.dest))
	req.AppendHeader(sip.NewHeader("User-Agent", u.cfg.UserAgent))
	req.AppendHeader(sip.NewHeader("Allow", allowMethods))
	req.AppendHeader(sip.NewHeader("Supported", supported))
	if u.cfg.SessionExpires > 0 {
		req.AppendHeader(sip.NewHeader("Session-Expires", fmt.Sprint(int(u.cfg.SessionExpires/time.Second))))
		req.AppendHeader(sip.NewHeader("Min-SE", fmt.Sprint(int(u.cfg.MinSE/time.Second))))
	}
	names := make([]string, 0, len(r.Headers))
	for name := range r.Headers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := CheckHeader(name, r.Headers[name]); err != nil {
			return nil, err
		}
		req.AppendHeader(sip.NewHeader(name, r.Headers[name]))
	}
	req.SetTransport(strings.ToUpper(transport))
	req.SetDestination(r.dest)
	return req, nil
}

// CheckHeader says whether a header may be sent on a call voicebot places:
// context for the far end, X- headers and User-to-User only (nothing that
// would change how SIP routes or authenticates the call), a token for a
// name and a value of printable text.
func CheckHeader(name, value string) error {
	lower := strings.ToLower(name)
	if !strings.HasPrefix(lower, "x-") && lower != "user-to-user" {
		return fmt.Errorf("sip: header %q may not be set: only X- headers and User-to-User", name)
	}
	if len(name) > 64 || len(name) < 3 {
		return fmt.Errorf("sip: header name %q: 3 to 64 characters", name)
	}
	for _, c := range []byte(name) {
		if !tokenChar(c) {
			return fmt.Errorf("sip: header name %q: not a SIP token", name)
		}
	}
	if len(value) > 1024 {
		return fmt.Errorf("sip: header %s: the value is over 1024 bytes", name)
	}
	if hasControl(value) {
		return fmt.Errorf("sip: header %s: the value has a control character", name)
	}
	return nil
}

// tokenChar is a character of an RFC 3261 token.
func tokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-.!%*_+`'~", c) >= 0
}

// answerOutbound sends the INVITE with our offer (RTP at localPort) and
// waits for the callee: provisional answers with SDP are early media (an
// Event with Early set), a 401/407 is answered with the trunk's credentials,
// a 2xx is acknowledged and establishes the call. The call is cancelled when
// ctx or the call ends, or the callee rings longer than the ring timeout.
// A failure is a *CallError.
func (c *Call) answerOutbound(ctx context.Context, localPort int) error {
	o := c.outbound
	c.mu.Lock()
	c.localPort = localPort
	c.sdpVersion = 1
	host := c.ua.hostFor(c.ua.cfg.MediaIP, o.dest)
	var key []byte
	if c.ua.cfg.SRTP == SRTPRequired {
		key = c.srtpKey
	}
	offer, err := Offer(host, localPort, c.ua.cfg.Codecs, c.sessionID, c.sdpVersion, "sendrecv", key)
	c.localSDP = offer
	c.mu.Unlock()
	if err != nil {
		return c.fail(EndFailed, 0, "no SDP offer: "+err.Error())
	}
	req := c.invite
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)

	ring := time.NewTimer(o.RingTimeout)
	defer ring.Stop()
	tx, err := c.ua.transaction(c.ctx, req)
	if err != nil {
		return c.fail(EndUnreachable, 0, "cannot send the INVITE to "+o.dest+": "+err.Error())
	}
	// heard: anything at all came back (100 Trying included). A trunk
	// that never says a word is unreachable, not a callee who did not
	// answer.
	provisional, heard, auths, intervalRetried := false, false, 0, false
	for {
		select {
		case res := <-tx.Responses():
			heard = true
			switch {
			case res.IsProvisional():
				if res.StatusCode > 100 && !provisional {
					provisional = true
					c.mu.Lock()
					c.ringing = true
					c.mu.Unlock()
					c.log.Info().Int("code", res.StatusCode).Msg("sip: ringing")
				}
				c.earlyMedia(res)
			case res.IsSuccess():
				return c.established(tx, req, res)
			case (res.StatusCode == 401 || res.StatusCode == 407) && o.trunk != nil && o.trunk.Password != "" && auths < 2:
				auths++
				tx.Terminate()
				if err := o.trunk.authorize(req, res); err != nil {
					return c.fail(EndFailed, res.StatusCode, "authentication: "+err.Error())
				}
				req.CSeq().SeqNo++
				req.RemoveHeader("Via")
				if tx, err = c.ua.transaction(c.ctx, req); err != nil {
					return c.fail(EndUnreachable, 0, "cannot send the INVITE to "+o.dest+": "+err.Error())
				}
			case res.StatusCode == 422 && !intervalRetried:
				// The callee's side wants a longer session timer: ask for its Min-SE.
				intervalRetried = true
				th, err := parseTimerHeaders(res)
				if err != nil || th.minSE <= 0 || th.minSE > 24*time.Hour {
					return c.fail(endReasonFor(422), 422, res.Reason)
				}
				tx.Terminate()
				req.RemoveHeader("Session-Expires")
				req.AppendHeader(sip.NewHeader("Session-Expires", fmt.Sprint(int(th.minSE/time.Second))))
				req.CSeq().SeqNo++
				req.RemoveHeader("Via")
				if tx, err = c.ua.transaction(c.ctx, req); err != nil {
					return c.fail(EndUnreachable, 0, "cannot send the INVITE to "+o.dest+": "+err.Error())
				}
			default:
				return c.fail(endReasonFor(res.StatusCode), res.StatusCode, res.Reason)
			}
		case <-tx.Done():
			// The transaction ended without a final answer: Timer B (no
			// response at all) or a transport error.
			why := "no response from " + o.dest
			if err := tx.Err(); err != nil {
				why += ": " + sanitize(err.Error())
			}
			if heard {
				return c.fail(EndNoAnswer, 408, why)
			}
			return c.fail(EndUnreachable, 0, why)
		case <-ring.C:
			c.cancelInvite(tx, req, provisional)
			if !heard {
				return c.fail(EndUnreachable, 0, "no response from "+o.dest+" within "+o.RingTimeout.String())
			}
			return c.fail(EndNoAnswer, 408, "no answer within "+o.RingTimeout.String())
		case <-ctx.Done():
			c.cancelInvite(tx, req, provisional)
			return c.fail(EndCancelled, 487, "cancelled")
		case <-c.ctx.Done():
			c.cancelInvite(tx, req, provisional)
			return c.fail(EndCancelled, 487, "cancelled")
		}
	}
}

// endReasonFor is why a call ends that the callee's side answered with a
// final failure code (outcome.ForSIPFailure).
func endReasonFor(code int) EndReason {
	switch outcome.ForSIPFailure(code) {
	case outcome.Busy:
		return EndBusy
	case outcome.NoAnswer:
		return EndNoAnswer
	case outcome.Declined:
		return EndDeclined
	}
	return EndFailed
}

// fail records why an outbound call did not connect and ends it.
func (c *Call) fail(r EndReason, code int, reason string) error {
	e := &CallError{Code: code, Reason: reason}
	c.mu.Lock()
	if c.failure == nil {
		c.failure = e
	}
	c.responded = true
	e = c.failure
	c.mu.Unlock()
	c.end(r)
	c.log.Info().Int("code", e.Code).Str("reason", e.Reason).Str("end", string(r)).Msg("sip: call not connected")
	return e
}

// earlyMedia takes the SDP of a provisional answer: the callee side's
// ringback or announcement.
func (c *Call) earlyMedia(res *sip.Response) {
	if len(res.Body()) == 0 {
		return
	}
	c.mu.Lock()
	c.answerFrom = res.Source()
	c.mu.Unlock()
	m, err := Negotiate(res.Body(), c.ua.cfg.Codecs, c.ua.cfg.SRTP)
	if err != nil {
		c.log.Debug().Err(err).Msg("sip: unusable early media SDP")
		return
	}
	m = c.keyed(m)
	c.mu.Lock()
	c.media = m
	c.mu.Unlock()
	c.emit(Event{Media: &m, Early: true})
}

// established completes an answered outbound call: the dialog, the ACK
// (and again for each retransmitted 2xx), the negotiated media and the
// session timer.
func (c *Call) established(tx sip.ClientTransaction, req *sip.Request, res *sip.Response) error {
	dest := res.Source()
	if dest == "" {
		dest = c.outbound.dest
	}
	if c.outbound.trunk != nil {
		// In-dialog requests go through the trunk, which the callee's
		// Contact may not be reachable without.
		dest = c.outbound.trunk.Address
	}
	d := outboundDialog(req, res, dest)
	c.mu.Lock()
	c.dlg = d
	c.answerFrom = res.Source()
	c.mu.Unlock()
	c.ua.register(c)
	c.ackInDialog(req, res)
	tx.OnRetransmission(func(r *sip.Response) {
		if r.IsSuccess() {
			c.ackInDialog(req, r)
		}
	})
	m, err := Negotiate(res.Body(), c.ua.cfg.Codecs, c.ua.cfg.SRTP)
	m = c.keyed(m)
	if err != nil {
		c.log.Warn().Err(err).Msg("sip: the callee's answer is unusable, hanging up")
		c.mu.Lock()
		c.answered = true
		c.mu.Unlock()
		err := c.fail(EndRejected, 488, "unusable SDP answer: "+sanitize(err.Error()))
		_ = c.sendBye()
		return err
	}
	th, _ := parseTimerHeaders(res)
	c.mu.Lock()
	c.media = m
	c.answered, c.responded, c.answeredAt = true, true, time.Now()
	c.timer = timerForResponse(th, sessionTimer{}, c.ua.cfg.Clock.Now())
	if h := res.GetHeader("Allow"); h != nil {
		c.peerAllow = h.Value()
	}
	c.mu.Unlock()
	c.log.Info().Str("codec", m.Codec.Name).Str("remote_rtp", m.Remote.String()).Msg("sip: call answered")
	logQuirk(c.log, m)
	c.emit(Event{Media: &m})
	c.startSessionTimer()
	return nil
}

// cancelInvite cancels our pending INVITE (RFC 3261 §9.1). CANCEL may only
// follow a provisional answer, so without one it waits briefly for it. A
// 2xx racing the CANCEL is acknowledged and hung up.
func (c *Call) cancelInvite(tx sip.ClientTransaction, req *sip.Request, provisional bool) {
	defer tx.Terminate()
	if !provisional {
		wait, done := context.WithTimeout(context.Background(), 2*time.Second)
		provisional = c.drainInvite(wait, tx, req, true)
		done()
		if !provisional {
			return // a final answer ended it, or nothing came back to cancel
		}
	}
	cancel := sip.NewRequest(sip.CANCEL, *req.Recipient.Clone())
	cancel.AppendHeader(sip.HeaderClone(req.Via()))
	cancel.AppendHeader(sip.HeaderClone(req.From()))
	cancel.AppendHeader(sip.HeaderClone(req.To()))
	cancel.AppendHeader(sip.HeaderClone(req.CallID()))
	cancel.AppendHeader(&sip.CSeqHeader{SeqNo: req.CSeq().SeqNo, MethodName: sip.CANCEL})
	maxFwd := sip.MaxForwardsHeader(70)
	cancel.AppendHeader(&maxFwd)
	for _, r := range req.GetHeaders("Route") {
		cancel.AppendHeader(sip.HeaderClone(r))
	}
	cancel.SetTransport(req.Transport())
	cancel.SetDestination(req.Destination())
	cancel.SetBody(nil)
	ctx, done := context.WithTimeout(context.Background(), 4*time.Second)
	defer done()
	_, err := c.ua.client.Do(ctx, cancel, func(_ *sipgo.Client, r *sip.Request) error {
		if strings.EqualFold(r.Transport(), "udp") {
			r.Laddr = req.Laddr
		}
		return nil
	})
	if err != nil {
		c.log.Debug().Err(err).Msg("sip: CANCEL got no answer")
	}
	// The INVITE's final answer (487) follows; a 2xx may have crossed.
	c.drainInvite(ctx, tx, req, false)
}

// drainInvite reads the INVITE's answers until a final one (a 2xx is
// acknowledged and hung up), the transaction's end or ctx. With
// untilProvisional it also stops at a provisional answer, and reports it.
func (c *Call) drainInvite(ctx context.Context, tx sip.ClientTransaction, req *sip.Request, untilProvisional bool) bool {
	for {
		select {
		case res := <-tx.Responses():
			switch {
			case res.IsSuccess():
				c.hangUpRace(tx, req, res)
				return false
			case !res.IsProvisional():
				return false
			case untilProvisional:
				return true
			}
		case <-tx.Done():
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// hangUpRace ends a call the callee answered as we cancelled it.
func (c *Call) hangUpRace(tx sip.ClientTransaction, req *sip.Request, res *sip.Response) {
	d := outboundDialog(req, res, c.outbound.dest)
	c.mu.Lock()
	c.dlg = d
	c.mu.Unlock()
	c.ackInDialog(req, res)
	_ = c.sendBye()
}
