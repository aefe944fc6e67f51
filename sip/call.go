package sip

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// EndReason says why a call ended.
type EndReason string

// Why calls end.
const (
	EndRemoteBye  EndReason = "remote_bye"
	EndLocalBye   EndReason = "local_bye"
	EndCancelled  EndReason = "cancelled"
	EndRejected   EndReason = "rejected"
	EndAckTimeout EndReason = "ack_timeout"
	EndShutdown   EndReason = "shutdown"
	EndError      EndReason = "error"
)

// ErrCallEnded is returned by operations on a call that has ended.
var ErrCallEnded = errors.New("sip: call has ended")

// Call is one inbound call, from INVITE to BYE.
type Call struct {
	ua    *UA
	req   *sip.Request
	tx    sip.ServerTransaction
	media Media
	log   zerolog.Logger

	key      string
	localTag string
	ctx      context.Context
	cancel   context.CancelFunc

	mu        sync.Mutex
	responded bool // a final response was sent
	answered  bool
	answer    []byte
	ackCh     chan struct{}
	ackOnce   sync.Once
	reason    EndReason
	cseq      uint32
	sessionID uint64

	keys chan rune
}

func newCall(u *UA, req *sip.Request, tx sip.ServerTransaction, media Media, log zerolog.Logger) *Call {
	var b [16]byte
	_, _ = rand.Read(b[:])
	fromTag, _ := req.From().Params.Get("tag")
	c := &Call{
		ua: u, req: req, tx: tx, media: media,
		localTag:  hex.EncodeToString(b[:8]),
		ackCh:     make(chan struct{}),
		keys:      make(chan rune, 16),
		cseq:      binary.BigEndian.Uint32(b[8:]) & 0x7fffffff,
		sessionID: binary.BigEndian.Uint64(b[8:]) >> 1,
	}
	c.key = dialogKey(callID(req), fromTag, c.localTag)
	c.log = log
	c.ctx, c.cancel = context.WithCancel(u.baseContext())
	return c
}

// Keys delivers the keys the caller pressed as SIP INFO. A burst beyond the
// channel's room is dropped: a flood must not stall the SIP stack.
func (c *Call) Keys() <-chan rune { return c.keys }

func (c *Call) keyPressed(d rune) {
	select {
	case c.keys <- d:
	default:
		c.log.Warn().Str("key", string(d)).Msg("sip: INFO key press dropped (too many queued)")
	}
}

// ID is the SIP Call-ID.
func (c *Call) ID() string { return callID(c.req) }

// From and To are the caller's and callee's URIs.
func (c *Call) From() string { return c.req.From().Address.String() }
func (c *Call) To() string   { return c.req.To().Address.String() }

// FromUser and ToUser are the user parts (numbers) of From and the Request-URI.
func (c *Call) FromUser() string { return c.req.From().Address.User }
func (c *Call) ToUser() string   { return c.req.Recipient.User }

// Media is what was negotiated.
func (c *Call) Media() Media { return c.media }

// Header returns a header of the INVITE ("" if absent).
func (c *Call) Header(name string) string {
	if h := c.req.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// EndReason is why the call ended, or "" while it goes on.
func (c *Call) EndReason() EndReason {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// end records why the call ended (the first reason wins) and ends its context.
func (c *Call) end(r EndReason) {
	c.mu.Lock()
	if c.reason == "" {
		c.reason = r
	}
	c.mu.Unlock()
	c.cancel()
}

func (c *Call) acked() { c.ackOnce.Do(func() { close(c.ackCh) }) }

func (c *Call) response(code int, reason string, body []byte) *sip.Response {
	res := sip.NewResponseFromRequest(c.req, code, reason, body)
	if to := res.To(); to != nil && code != 100 {
		to.Params.Add("tag", c.localTag) // one tag for every response of the dialog
	}
	res.AppendHeader(sip.NewHeader("Server", c.ua.cfg.UserAgent))
	return res
}

// Ringing sends 180 Ringing.
func (c *Call) Ringing() error {
	if c.ctx.Err() != nil {
		return ErrCallEnded
	}
	res := c.response(180, "Ringing", nil)
	res.AppendHeader(c.ua.contact(c.req))
	return c.tx.Respond(res)
}

// Reject ends an unanswered call with a final error response.
func (c *Call) Reject(code int, reason string) error {
	c.mu.Lock()
	if c.responded {
		c.mu.Unlock()
		return nil
	}
	c.responded = true
	c.mu.Unlock()
	c.end(EndRejected)
	if c.tx.Err() != nil { // cancelled: the transaction already answered 487
		return ErrCallEnded
	}
	if err := c.tx.Respond(c.response(code, reason, nil)); err != nil {
		return err
	}
	// Wait for the ACK: until it comes, sipgo retransmits the response (up
	// to Timer H, 32 s), and would go on doing so after the UA has closed.
	select {
	case <-c.tx.Acks():
	case <-c.tx.Done():
	case <-c.ua.baseContext().Done():
		c.tx.Terminate()
	}
	return nil
}

// Answer sends 200 OK with our SDP (RTP at localPort) and waits for the
// ACK, retransmitting the 200 over UDP as RFC 3261 asks. It gives up after
// the configured ACK timeout and ends the call with a BYE.
func (c *Call) Answer(ctx context.Context, localPort int) error {
	if c.ctx.Err() != nil {
		return ErrCallEnded
	}
	sdp, err := Answer(c.media, c.ua.hostFor(c.ua.cfg.MediaIP, c.req.Source()), localPort, c.sessionID, 1)
	if err != nil {
		return fmt.Errorf("sdp answer: %w", err)
	}
	res := c.response(200, "OK", sdp)
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	res.AppendHeader(c.ua.contact(c.req))
	res.AppendHeader(sip.NewHeader("Allow", allowMethods))
	c.mu.Lock()
	c.responded, c.answered, c.answer = true, true, sdp
	c.mu.Unlock()
	if err := c.tx.Respond(res); err != nil {
		c.end(EndError)
		return fmt.Errorf("sip answer: %w", err)
	}
	reliable := sip.IsReliable(c.req.Transport())
	interval := sip.T1
	retransmit := time.NewTimer(interval)
	defer retransmit.Stop()
	deadline := time.NewTimer(c.ua.cfg.AckTimeout)
	defer deadline.Stop()
	for {
		select {
		case <-c.ackCh:
			return nil
		case <-c.ctx.Done():
			return ErrCallEnded
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			c.log.Warn().Dur("timeout", c.ua.cfg.AckTimeout).Msg("sip: no ACK for 200 OK, hanging up")
			c.end(EndAckTimeout)
			c.sendBye()
			return fmt.Errorf("sip: no ACK within %s", c.ua.cfg.AckTimeout)
		case <-retransmit.C:
			if !reliable {
				_ = c.tx.Respond(res)
			}
			interval = min(2*interval, sip.T2)
			retransmit.Reset(interval)
		}
	}
}

func (c *Call) answerSDP() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answer
}

// Hangup ends the call from our side: BYE when answered, 480 when not.
func (c *Call) Hangup() error {
	c.mu.Lock()
	answered, responded := c.answered, c.responded
	c.mu.Unlock()
	if !answered {
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

// finish runs when the handler returns: whatever state the call is in, it ends.
func (c *Call) finish() {
	c.mu.Lock()
	answered, responded, reason := c.answered, c.responded, c.reason
	c.mu.Unlock()
	switch {
	case !responded && reason == "" && c.ctx.Err() != nil:
		_ = c.Reject(503, "Service Unavailable") // shutting down before answer
	case !responded && reason == "":
		c.log.Warn().Msg("sip: handler returned without answering; rejecting")
		_ = c.Reject(500, "Server Internal Error")
	case answered && reason == "":
		// Nobody ended the call yet: the handler is done, or the UA is stopping.
		r := EndLocalBye
		if c.ctx.Err() != nil {
			r = EndShutdown
		}
		c.end(r)
		_ = c.sendBye()
	}
	c.cancel()
}

// sendBye sends BYE in the dialog and waits (bounded) for its answer.
func (c *Call) sendBye() error {
	c.mu.Lock()
	c.cseq++
	cseq := c.cseq
	c.mu.Unlock()

	target := c.req.Contact().Address.Clone()
	bye := sip.NewRequest(sip.BYE, *target)
	from := c.req.To().AsFrom()
	from.Params = from.Params.Clone()
	from.Params.Add("tag", c.localTag)
	to := c.req.From().AsTo()
	bye.AppendHeader(&from)
	bye.AppendHeader(&to)
	bye.AppendHeader(sip.HeaderClone(c.req.CallID()))
	bye.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.BYE})
	maxFwd := sip.MaxForwardsHeader(70)
	bye.AppendHeader(&maxFwd)
	bye.AppendHeader(sip.NewHeader("User-Agent", c.ua.cfg.UserAgent))
	// A UAS's route set is the Record-Route of the INVITE in order.
	rrs := c.req.GetHeaders("Record-Route")
	for _, rr := range rrs {
		bye.AppendHeader(sip.NewHeader("Route", rr.Value()))
	}
	bye.SetTransport(c.req.Transport())
	if route := bye.Route(); route != nil {
		bye.SetDestination(route.Address.HostPort())
	} else {
		// Reply where the INVITE came from: a Contact behind NAT is often
		// unreachable, the source address is not.
		bye.SetDestination(c.req.Source())
	}
	bye.SetBody(nil)

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	res, err := c.ua.client.Do(ctx, bye, sipgo.ClientRequestAddVia)
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

// RemoteSource is the address the INVITE came from.
func (c *Call) RemoteSource() netip.AddrPort {
	ap, _ := netip.ParseAddrPort(c.req.Source())
	return ap
}

// Transport is the SIP transport the call arrived on (UDP, TCP).
func (c *Call) Transport() string { return strings.ToUpper(c.req.Transport()) }
