package sip

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// The requests the user agent routes: OPTIONS, INVITE and unknown methods,
// and ACK, BYE, CANCEL and REFER to the call whose dialog they belong to
// (which handles them in dialog.go and midcall.go); and the count of calls
// in progress.

func callID(req *sip.Request) string {
	if h := req.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

// lookup finds the call an in-dialog request belongs to.
func (u *UA) lookup(req *sip.Request) *Call {
	from, to := req.From(), req.To()
	if from == nil || to == nil {
		return nil
	}
	ft, _ := from.Params.Get("tag")
	tt, _ := to.Params.Get("tag")
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.dialogs[dialogKey(callID(req), ft, tt)]
}

// inDialog finds the call of an in-dialog request and checks its sequence
// number, answering 481 or 500 itself when it cannot go on.
func (u *UA) inDialog(req *sip.Request, tx sip.ServerTransaction) *Call {
	c := u.lookup(req)
	if c == nil {
		u.respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return nil
	}
	if d := c.dialog(); d != nil && !d.acceptCSeq(req) {
		u.respond(tx, req, 500, "Server Internal Error (CSeq out of order)", nil, sip.NewHeader("Retry-After", "1"))
		return nil
	}
	return c
}

func (u *UA) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	if u.Draining() {
		u.respond(tx, req, 503, "Service Unavailable (draining)", nil, sip.NewHeader("Retry-After", u.retryAfter()))
		return
	}
	u.respond(tx, req, 200, "OK", nil, sip.NewHeader("Allow", allowMethods), sip.NewHeader("Accept", "application/sdp"),
		sip.NewHeader("Supported", supported))
}

func (u *UA) onOther(req *sip.Request, tx sip.ServerTransaction) {
	m := req.Method.String()
	if knownMethods[m] {
		u.respond(tx, req, 405, "Method Not Allowed", nil, sip.NewHeader("Allow", allowMethods))
		return
	}
	u.respond(tx, req, 501, "Not Implemented", nil, sip.NewHeader("Allow", allowMethods))
}

// onRefer refuses transfers asked of us: voicebot transfers its callers,
// it does not place calls for its peers.
func (u *UA) onRefer(req *sip.Request, tx sip.ServerTransaction) {
	if u.inDialog(req, tx) == nil {
		return
	}
	u.respond(tx, req, 603, "Decline (voicebot does not accept transfers)", nil)
}

func (u *UA) onAck(req *sip.Request, _ sip.ServerTransaction) {
	if c := u.lookup(req); c != nil {
		c.onAck(req)
	}
}

func (u *UA) onBye(req *sip.Request, tx sip.ServerTransaction) {
	c := u.inDialog(req, tx)
	if c == nil {
		return
	}
	u.respond(tx, req, 200, "OK", nil)
	c.end(EndRemoteBye)
}

// onCancel sees only CANCELs that matched no pending INVITE (the
// transaction layer answers the others and we learn of them via OnCancel).
func (u *UA) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	u.respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
}

// unsupportedRequire lists the option tags a request requires that we do
// not support (RFC 3261 §8.2.2.3: 420 Bad Extension).
func unsupportedRequire(req *sip.Request) []string {
	var bad []string
	for _, h := range req.GetHeaders("Require") {
		for _, t := range strings.Split(h.Value(), ",") {
			t = strings.TrimSpace(t)
			if t != "" && !strings.EqualFold(t, "timer") && !strings.EqualFold(t, "replaces") {
				bad = append(bad, t)
			}
		}
	}
	return bad
}

func (u *UA) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	log := u.log.With().Str("call_id", callID(req)).Logger()
	if to := req.To(); to != nil {
		if tag, ok := to.Params.Get("tag"); ok && tag != "" {
			if c := u.inDialog(req, tx); c != nil {
				c.onReinvite(req, tx)
			}
			return
		}
	}
	if req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil || req.Contact() == nil {
		log.Warn().Msg("sip: INVITE missing From/To/Call-ID/CSeq/Contact")
		u.respond(tx, req, 400, "Bad Request (missing From, To, Call-ID, CSeq or Contact)", nil)
		return
	}
	if !u.admit(req, tx, log) {
		return
	}
	if bad := unsupportedRequire(req); len(bad) > 0 {
		u.respond(tx, req, 420, "Bad Extension", nil, sip.NewHeader("Unsupported", strings.Join(bad, ", ")))
		return
	}
	th, err := parseTimerHeaders(req)
	if err != nil {
		u.respond(tx, req, 400, "Bad Request ("+sanitize(err.Error())+")", nil)
		return
	}
	if _, _, err := timerForRequest(th, sessionTimer{}, u.cfg.SessionExpires, u.cfg.MinSE, time.Now()); err != nil {
		u.respond(tx, req, 422, "Session Interval Too Small", nil, sip.NewHeader("Min-SE", fmt.Sprint(int(u.cfg.MinSE/time.Second))))
		return
	}
	if ct := req.ContentType(); ct == nil || len(req.Body()) == 0 {
		u.respond(tx, req, 488, "Not Acceptable Here (an SDP offer is required)", nil)
		return
	} else if !strings.EqualFold(strings.TrimSpace(strings.Split(ct.Value(), ";")[0]), "application/sdp") {
		u.respond(tx, req, 415, "Unsupported Media Type", nil, sip.NewHeader("Accept", "application/sdp"))
		return
	}
	media, err := Negotiate(req.Body(), u.cfg.Codecs, u.cfg.SRTP)
	if err != nil {
		log.Warn().Err(err).Msg("sip: refusing INVITE")
		code, reason := 488, "Not Acceptable Here"
		if errors.Is(err, ErrSDPMalformed) {
			code, reason = 400, "Bad Request"
		}
		u.gate.refused("offer_not_acceptable")
		u.respond(tx, req, code, reason+" ("+sanitize(err.Error())+")", nil, sip.NewHeader("Warning", `399 voicebot "`+sanitize(err.Error())+`"`))
		return
	}
	u.respond(tx, req, 100, "Trying", nil)

	if refused := u.startCall(); refused != "" {
		u.gate.count(refused)
		if refused == RejectOverCapacity {
			log.Warn().Str("reason", refused).Int("max_calls", u.cfg.Admission.MaxCalls).Msg("sip: INVITE refused: at capacity")
			if u.cfg.Admission.OverCapacity == 486 {
				u.respond(tx, req, 486, "Busy Here", nil)
			} else {
				u.respond(tx, req, 503, "Service Unavailable (at capacity)", nil, sip.NewHeader("Retry-After", "5"))
			}
			return
		}
		log.Info().Str("reason", refused).Msg("sip: INVITE refused: shutting down")
		u.respond(tx, req, 503, "Service Unavailable (shutting down)", nil, sip.NewHeader("Retry-After", u.retryAfter()))
		return
	}
	defer u.endCall()
	c := newInboundCall(u, req, tx, media, log)
	u.register(c)
	if !tx.OnCancel(func(*sip.Request) { c.end(EndCancelled) }) {
		c.end(EndCancelled)
	}
	log.Info().Str("from", req.From().Address.String()).Str("to", req.To().Address.String()).
		Str("codec", media.Codec.Name).Str("remote_rtp", media.Remote.String()).Str("transport", req.Transport()).
		Bool("srtp", media.SRTP != nil).Msg("sip: incoming call")
	logQuirk(log, media)
	u.run(c, u.handler)
}

// startCall counts a new call in, unless the UA is stopping.
// It returns why not, or "".
func (u *UA) startCall() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.stopping {
		return RejectShuttingDown
	}
	if max := u.cfg.Admission.MaxCalls; max > 0 && u.active >= max {
		return RejectOverCapacity
	}
	u.active++
	u.calls.Add(1)
	return ""
}

// endCall counts a call out.
func (u *UA) endCall() {
	u.mu.Lock()
	u.active--
	u.mu.Unlock()
	u.calls.Done()
}

// sanitize keeps a reason phrase to one line of printable ASCII.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e || c == '"' {
			b[i] = ' '
		}
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}
