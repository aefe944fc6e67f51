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

	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/outcome"
)

// ErrCallEnded is returned by operations on a call that has ended.
var ErrCallEnded = errors.New("sip: call has ended")

// Direction says who placed a call.
type Direction int

const (
	// Inbound calls were placed by the peer: we answer them.
	Inbound Direction = iota
	// Outbound calls are ours: the peer answers.
	Outbound
)

func (d Direction) String() string {
	if d == Outbound {
		return "outbound"
	}
	return "inbound"
}

// Event is something that happens in a call's signalling after it was
// offered: keys sent as SIP INFO, and media renegotiated by a re-INVITE or
// UPDATE (hold, resume, a new address or codec), or learnt from an outbound
// call's early media or answer.
type Event struct {
	// Key is a key the peer pressed (SIP INFO), 0 otherwise.
	Key rune
	// Media is the call's media as now negotiated, nil otherwise.
	Media *Media
	// Early marks Media from a provisional answer: the callee has not
	// answered, what it sends is ringback or an announcement.
	Early bool
}

// Call is one call, inbound or outbound, from INVITE to BYE. Its handler
// owns it; the UA ends it when the handler returns.
type Call struct {
	ua     *UA
	log    zerolog.Logger
	dir    Direction
	invite *sip.Request          // the call's INVITE: theirs, or our latest
	tx     sip.ServerTransaction // inbound: the INVITE's transaction
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the call's own goroutines

	localTag  string
	sessionID uint64
	outbound  *PlaceRequest // the request, for outbound calls

	mu         sync.Mutex
	dlg        *dialog // nil until the dialog exists
	responded  bool    // a final response was sent (inbound) or received (outbound)
	answered   bool
	ringing    bool // a provisional answer was sent (inbound) or received (outbound)
	answeredAt time.Time
	reason     EndReason
	media      Media
	localPort  int
	sdpVersion uint64
	localSDP   []byte
	onEvent    func(Event)
	acks       map[uint32]chan []byte // our 2xx to INVITEs awaiting the ACK, by CSeq
	srtpKey    []byte                 // our SRTP master key and salt, for SDES
	reinviting bool                   // an INVITE transaction of the dialog is in progress
	peerAllow  string                 // the peer's Allow header
	timer      sessionTimer
	timerKick  chan struct{}
	refer      chan sipfrag // progress of our REFER, from the peer's NOTIFYs
	failure    *CallError
	hungUpAs   *outcome.End // set by HangupAs: why our hang-up ends the call
	answerFrom string       // outbound: where the callee's answer came from
}

func newCall(u *UA, dir Direction, log zerolog.Logger) *Call {
	var b [16]byte
	_, _ = rand.Read(b[:])
	c := &Call{
		ua: u, dir: dir, log: log,
		localTag:  hex.EncodeToString(b[:8]),
		sessionID: binary.BigEndian.Uint64(b[8:]) >> 1,
		acks:      map[uint32]chan []byte{},
		timerKick: make(chan struct{}, 1),
		srtpKey:   NewSRTPKey(),
	}
	c.ctx, c.cancel = context.WithCancel(u.baseContext())
	return c
}

// keyed gives negotiated SRTP media our key: the same one for the whole
// call, so a re-INVITE does not restart the encryption.
func (c *Call) keyed(m Media) Media {
	if m.SRTP != nil {
		k := *m.SRTP
		k.Local = c.srtpKey
		m.SRTP = &k
	}
	return m
}

// newInboundCall is the call a peer's INVITE offers.
func newInboundCall(u *UA, req *sip.Request, tx sip.ServerTransaction, media Media, log zerolog.Logger) *Call {
	c := newCall(u, Inbound, log)
	c.invite, c.tx, c.media = req, tx, c.keyed(media)
	var b [4]byte
	_, _ = rand.Read(b[:])
	c.dlg = inboundDialog(req, c.localTag, binary.BigEndian.Uint32(b[:])&0x7fffffff)
	if h := req.GetHeader("Allow"); h != nil {
		c.peerAllow = h.Value()
	}
	return c
}

// OnEvent sets the function that receives the call's events. It is called
// from SIP goroutines, one event at a time, and must not block for long.
// Set it before Answer.
func (c *Call) OnEvent(fn func(Event)) {
	c.mu.Lock()
	c.onEvent = fn
	c.mu.Unlock()
}

func (c *Call) emit(e Event) {
	c.mu.Lock()
	fn := c.onEvent
	c.mu.Unlock()
	if fn != nil {
		fn(e)
	}
}

// ID is the SIP Call-ID.
func (c *Call) ID() string { return callID(c.invite) }

// Direction says who placed the call.
func (c *Call) Direction() Direction { return c.dir }

// From and To are the caller's and callee's URIs.
func (c *Call) From() string { return c.invite.From().Address.String() }
func (c *Call) To() string   { return c.invite.To().Address.String() }

// FromUser and ToUser are the user parts (numbers) of From and of the
// Request-URI, or To when the Request-URI has none (a call that arrived
// through a registration carries our Contact there).
func (c *Call) FromUser() string { return c.invite.From().Address.User }
func (c *Call) ToUser() string {
	if u := c.invite.Recipient.User; u != "" {
		return u
	}
	return c.invite.To().Address.User
}

// ToHeaderUser is the user part of the To header.
func (c *Call) ToHeaderUser() string { return c.invite.To().Address.User }

// Media is what is negotiated now.
func (c *Call) Media() Media {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.media
}

// Header returns a header of the INVITE ("" if absent).
func (c *Call) Header(name string) string {
	if h := c.invite.GetHeader(name); h != nil {
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

// State is where the call stands: dialing (an outbound INVITE not yet
// answered by anything), ringing, answered, or ended.
func (c *Call) State() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.reason != "":
		return "ended"
	case c.answered:
		return "answered"
	case c.ringing || c.dir == Inbound:
		return "ringing"
	}
	return "dialing"
}

// AnsweredAt is when the call was answered (zero if it was not).
func (c *Call) AnsweredAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answeredAt
}

// Context ends when the call does.
func (c *Call) Context() context.Context { return c.ctx }

// end records why the call ended (the first reason wins) and ends its context.
func (c *Call) end(r EndReason) {
	c.mu.Lock()
	if c.reason == "" {
		c.reason = r
	}
	c.mu.Unlock()
	c.cancel()
}

// RemoteSource is the address the peer's signalling comes from.
func (c *Call) RemoteSource() netip.AddrPort {
	src := c.invite.Source()
	if c.dir == Outbound {
		c.mu.Lock()
		src = c.answerFrom
		c.mu.Unlock()
		if src == "" {
			src = c.outbound.dest
		}
	}
	ap, err := netip.ParseAddrPort(src)
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// Transport is the SIP transport of the call (UDP, TCP).
func (c *Call) Transport() string { return strings.ToUpper(c.invite.Transport()) }

func (c *Call) dialog() *dialog {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dlg
}

// response builds a response to an in-dialog or initial request of the
// call, with our tag on To.
func (c *Call) response(req *sip.Request, code int, reason string, body []byte) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, reason, body)
	if to := res.To(); to != nil && code != 100 {
		// sipgo invents a tag per response: the dialog has one, ours.
		to.Params.Add("tag", c.localTag)
	}
	res.AppendHeader(sip.NewHeader("Server", c.ua.cfg.UserAgent))
	return res
}

// Ringing sends 180 Ringing (inbound calls; nothing for outbound ones).
func (c *Call) Ringing() error {
	if c.dir == Outbound {
		return nil
	}
	if c.ctx.Err() != nil {
		return ErrCallEnded
	}
	res := c.response(c.invite, 180, "Ringing", nil)
	res.AppendHeader(c.ua.contact(c.invite.Transport(), c.invite.Source()))
	c.ua.sent(res.StatusCode)
	return c.tx.Respond(res)
}

// Reject ends a call that is not connected: an inbound one with a final
// error response, an outbound one by cancelling the INVITE.
func (c *Call) Reject(code int, reason string) error {
	if c.dir == Outbound {
		c.end(EndCancelled)
		return nil
	}
	c.mu.Lock()
	if c.responded {
		c.mu.Unlock()
		return nil
	}
	c.responded = true
	if c.failure == nil {
		c.failure = &CallError{Code: code, Reason: reason}
	}
	c.mu.Unlock()
	c.end(EndRejected)
	if c.tx.Err() != nil { // cancelled: the transaction already answered 487
		return ErrCallEnded
	}
	c.ua.sent(code)
	if err := c.tx.Respond(c.response(c.invite, code, reason, nil)); err != nil {
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

// Answer connects the call with our RTP at localPort. An inbound call is
// answered: 200 OK with our SDP, retransmitted until the ACK comes (RFC
// 3261 §13.3.1.4), or a BYE after the ACK timeout. An outbound call sends
// its INVITE and waits for the callee to answer (see answerOutbound).
func (c *Call) Answer(ctx context.Context, localPort int) error {
	if c.dir == Outbound {
		return c.answerOutbound(ctx, localPort)
	}
	if c.ctx.Err() != nil {
		return ErrCallEnded
	}
	th, err := parseTimerHeaders(c.invite)
	if err != nil {
		th = timerHeaders{} // already checked when the INVITE came in
	}
	timer, refresher, _ := timerForRequest(th, sessionTimer{}, c.ua.cfg.SessionExpires, c.ua.cfg.MinSE, c.ua.cfg.Clock.Now())
	c.mu.Lock()
	c.localPort = localPort
	sdp, err := c.localSDPLocked(c.media)
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("sdp answer: %w", err)
	}
	res := c.response(c.invite, 200, "OK", sdp)
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	res.AppendHeader(c.ua.contact(c.invite.Transport(), c.invite.Source()))
	res.AppendHeader(sip.NewHeader("Allow", allowMethods))
	res.AppendHeader(sip.NewHeader("Supported", supported))
	timer.addTo(res, th, refresher)
	ack := c.expectAck(c.invite.CSeq().SeqNo)
	c.mu.Lock()
	c.responded, c.answered, c.answeredAt = true, true, time.Now()
	c.timer = timer
	c.mu.Unlock()
	c.ua.sent(res.StatusCode)
	if err := c.tx.Respond(res); err != nil {
		c.end(EndError)
		return fmt.Errorf("sip answer: %w", err)
	}
	body, err := c.awaitAck(ctx, c.tx, res, ack)
	if err != nil {
		if errors.Is(err, errNoAck) {
			c.log.Warn().Dur("timeout", c.ua.cfg.AckTimeout).Msg("sip: no ACK for 200 OK, hanging up")
			c.end(EndAckTimeout)
			_ = c.sendBye()
		}
		return err
	}
	_ = body // an answer in the ACK only follows an INVITE without an offer, which we refuse
	c.startSessionTimer()
	return nil
}

var errNoAck = errors.New("sip: no ACK for 200 OK")

// expectAck registers interest in the ACK of our 2xx to the INVITE with cseq.
func (c *Call) expectAck(cseq uint32) chan []byte {
	ch := make(chan []byte, 1)
	c.mu.Lock()
	c.acks[cseq] = ch
	c.mu.Unlock()
	return ch
}

// onAck delivers an ACK to the 2xx waiting for it.
func (c *Call) onAck(req *sip.Request) {
	cs := req.CSeq()
	if cs == nil {
		return
	}
	c.mu.Lock()
	ch := c.acks[cs.SeqNo]
	delete(c.acks, cs.SeqNo)
	c.mu.Unlock()
	if ch != nil {
		ch <- append([]byte(nil), req.Body()...)
	}
}

// awaitAck retransmits res over UDP (T1 doubling to T2) until the ACK
// arrives on ack, and returns the ACK's body. It gives up after the ACK
// timeout with errNoAck.
func (c *Call) awaitAck(ctx context.Context, tx sip.ServerTransaction, res *sip.Response, ack <-chan []byte) ([]byte, error) {
	reliable := sip.IsReliable(res.Transport())
	interval := sip.T1
	retransmit := time.NewTimer(interval)
	defer retransmit.Stop()
	deadline := time.NewTimer(c.ua.cfg.AckTimeout)
	defer deadline.Stop()
	for {
		select {
		case body := <-ack:
			return body, nil
		case <-c.ctx.Done():
			return nil, ErrCallEnded
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, errNoAck
		case <-retransmit.C:
			if !reliable {
				_ = tx.Respond(res)
			}
			interval = min(2*interval, sip.T2)
			retransmit.Reset(interval)
		}
	}
}

// localSDPLocked builds our SDP for media; the version goes up whenever
// the content changes (RFC 3264 §8). Caller holds mu.
func (c *Call) localSDPLocked(m Media) ([]byte, error) {
	host := c.ua.hostFor(c.ua.cfg.MediaIP, c.signallingPeer())
	if c.sdpVersion == 0 {
		c.sdpVersion = 1
	}
	sdp, err := Answer(m, host, c.localPort, c.sessionID, c.sdpVersion)
	if err != nil {
		return nil, err
	}
	if c.localSDP != nil && !sameSDP(c.localSDP, sdp) {
		c.sdpVersion++
		if sdp, err = Answer(m, host, c.localPort, c.sessionID, c.sdpVersion); err != nil {
			return nil, err
		}
	}
	c.localSDP = sdp
	return sdp, nil
}

// signallingPeer is where the peer's signalling is, to pick the local
// address that routes to it.
func (c *Call) signallingPeer() string {
	if c.dir == Outbound && c.outbound != nil {
		return c.outbound.dest
	}
	return c.invite.Source()
}

// sameSDP compares two of our SDP bodies ignoring the o= line.
func sameSDP(a, b []byte) bool {
	strip := func(s []byte) string {
		var out []string
		for _, l := range strings.Split(string(s), "\n") {
			if !strings.HasPrefix(l, "o=") {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	return strip(a) == strip(b)
}
