// Package sip is voicebot's SIP user agent, on emiago/sipgo: it answers
// INVITEs with an SDP answer (pion/sdp), keeps the dialogs, and hands each
// call to a handler with the few operations a call needs (ring, answer, hang
// up). Dialog handling is our own, on sipgo's transaction layer, so that
// every wait has a deadline and a call always ends.
package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// Config configures the user agent.
type Config struct {
	Listen     netip.AddrPort
	Transports []string // udp, tcp
	// ExternalHost is advertised in Contact and SDP when set (NAT).
	ExternalHost string
	// MediaIP is the address RTP sockets are bound on; it is advertised in
	// SDP when ExternalHost is empty.
	MediaIP    netip.Addr
	UserAgent  string
	Codecs     []string
	AckTimeout time.Duration
	Log        zerolog.Logger
}

// Handler runs one inbound call. It is called while the INVITE is pending:
// it must Answer (or Reject) the call and return when the call is over. ctx
// ends when the caller hangs up or cancels, or the UA shuts down.
type Handler func(ctx context.Context, call *Call)

// UA is a SIP user agent serving inbound calls.
type UA struct {
	cfg     Config
	handler Handler
	log     zerolog.Logger

	ua     *sipgo.UserAgent
	server *sipgo.Server
	client *sipgo.Client

	udp *net.UDPConn
	tcp *net.TCPListener

	mu      sync.Mutex
	dialogs map[string]*Call
	calls   sync.WaitGroup
	ctx     context.Context
}

var setSipgoLogger sync.Once

// Allowed methods, advertised in Allow headers.
const allowMethods = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO"

// knownMethods are SIP methods we recognise but do not serve (405, not 501).
var knownMethods = map[string]bool{
	"REGISTER": true, "SUBSCRIBE": true, "NOTIFY": true, "PUBLISH": true, "MESSAGE": true,
	"REFER": true, "UPDATE": true, "PRACK": true,
}

// New binds the configured transports. Serve starts answering.
func New(cfg Config, handler Handler) (*UA, error) {
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 32 * time.Second
	}
	if !cfg.MediaIP.IsValid() {
		cfg.MediaIP = cfg.Listen.Addr()
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "voicebot"
	}
	u := &UA{cfg: cfg, handler: handler, log: cfg.Log, dialogs: map[string]*Call{}}
	// sipgo logs through a process-wide logger that its own goroutines read
	// at any time: set it once, before any of them exists.
	setSipgoLogger.Do(func() { sip.SetDefaultLogger(slog.New(newSlogHandler(cfg.Log))) })

	host := cfg.Listen.Addr().String()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(cfg.UserAgent), sipgo.WithUserAgentHostname(u.advertisedHost()))
	if err != nil {
		return nil, fmt.Errorf("sip: %w", err)
	}
	u.ua = ua
	if u.server, err = sipgo.NewServer(ua); err != nil {
		ua.Close()
		return nil, fmt.Errorf("sip server: %w", err)
	}
	for _, t := range cfg.Transports {
		switch t {
		case "udp":
			u.udp, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(cfg.Listen))
		case "tcp":
			u.tcp, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(cfg.Listen))
		default:
			err = fmt.Errorf("unknown transport %q", t)
		}
		if err != nil {
			u.closeListeners()
			ua.Close()
			return nil, fmt.Errorf("sip listen %s %s: %w", t, cfg.Listen, err)
		}
		if cfg.Listen.Port() == 0 && len(cfg.Transports) > 1 {
			// Let the other transports share the port the first one got.
			cfg.Listen = netip.AddrPortFrom(cfg.Listen.Addr(), u.port())
			u.cfg.Listen = cfg.Listen
		}
	}
	// Requests we send (BYE) leave from the listening socket: peers and NATs
	// expect our SIP port, and sipgo does not reap sockets it opens itself.
	if u.client, err = sipgo.NewClient(ua, sipgo.WithClientHostname(host), sipgo.WithClientConnectionAddr(u.Addr().String())); err != nil {
		u.closeListeners()
		ua.Close()
		return nil, fmt.Errorf("sip client: %w", err)
	}
	u.server.OnInvite(u.onInvite)
	u.server.OnAck(u.onAck)
	u.server.OnBye(u.onBye)
	u.server.OnCancel(u.onCancel)
	u.server.OnOptions(u.onOptions)
	u.server.OnInfo(u.onInfo)
	u.server.OnNoRoute(u.onOther)
	return u, nil
}

func (u *UA) port() uint16 {
	if u.udp != nil {
		return u.udp.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	}
	if u.tcp != nil {
		return u.tcp.Addr().(*net.TCPAddr).AddrPort().Port()
	}
	return u.cfg.Listen.Port()
}

// Addr is the address SIP is served on (its port is known after New even
// when the configured port was 0).
func (u *UA) Addr() netip.AddrPort { return netip.AddrPortFrom(u.cfg.Listen.Addr(), u.port()) }

func (u *UA) advertisedHost() string {
	if u.cfg.ExternalHost != "" {
		return u.cfg.ExternalHost
	}
	return u.cfg.Listen.Addr().String()
}

// hostFor is the host to advertise to a peer at remote: the external
// address when set; for a wildcard bind (0.0.0.0, ::), the local address that
// routes to the peer (0.0.0.0 in SDP would mean "hold"); else bound.
func (u *UA) hostFor(bound netip.Addr, remote string) string {
	if u.cfg.ExternalHost != "" {
		return u.cfg.ExternalHost
	}
	if bound.IsUnspecified() {
		if ip := localIPToward(remote); ip.IsValid() {
			return ip.String()
		}
	}
	return bound.String()
}

// localIPToward asks the routing table which local address reaches remote.
// Connecting a UDP socket sends nothing.
func localIPToward(remote string) netip.Addr {
	c, err := net.Dial("udp", remote)
	if err != nil {
		return netip.Addr{}
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
}

func (u *UA) closeListeners() {
	if u.udp != nil {
		u.udp.Close()
	}
	if u.tcp != nil {
		u.tcp.Close()
	}
}

// Serve answers requests until ctx ends, then ends every call (their
// handlers' contexts are cancelled), waits for them, and closes the sockets.
func (u *UA) Serve(ctx context.Context) error {
	u.mu.Lock()
	u.ctx = ctx
	u.mu.Unlock()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	if u.udp != nil {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- u.server.ServeUDP(u.udp) }()
	}
	if u.tcp != nil {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- u.server.ServeTCP(u.tcp) }()
	}
	u.log.Info().Str("listen", u.Addr().String()).Strs("transports", u.cfg.Transports).Msg("sip: listening")
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
		err = fmt.Errorf("sip serve: %w", err)
	}
	u.calls.Wait()
	// Stop reading, then close sipgo (it terminates its transactions and
	// closes the sockets it pooled). A request read just before the sockets
	// closed may still be in a sipgo goroutine that, finding no socket,
	// opens one to answer from: sweep those up too.
	u.closeListeners()
	wg.Wait()
	u.ua.Close()
	for i := 0; i < 10; i++ {
		time.Sleep(20 * time.Millisecond)
		_ = u.ua.TransportLayer().Close()
	}
	return err
}

// ActiveCalls is the number of calls in progress.
func (u *UA) ActiveCalls() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.dialogs)
}

func (u *UA) baseContext() context.Context {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.ctx == nil {
		return context.Background()
	}
	return u.ctx
}

func (u *UA) contact(req *sip.Request) *sip.ContactHeader {
	host := u.hostFor(u.cfg.Listen.Addr(), req.Source())
	c := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "voicebot", Host: host, Port: int(u.port())}}
	if strings.EqualFold(req.Transport(), "tcp") {
		c.Address.UriParams = sip.NewParams()
		c.Address.UriParams.Add("transport", "tcp")
	}
	return c
}

// respond sends a final or provisional response to req with our headers.
func (u *UA) respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string, body []byte, headers ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, body)
	res.AppendHeader(sip.NewHeader("Server", u.cfg.UserAgent))
	for _, h := range headers {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		u.log.Debug().Err(err).Int("code", code).Str("call_id", callID(req)).Msg("sip: respond failed")
	}
}

func callID(req *sip.Request) string {
	if h := req.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

func dialogKey(callID, remoteTag, localTag string) string {
	return callID + "\x00" + remoteTag + "\x00" + localTag
}

// lookup finds the dialog an in-dialog request belongs to.
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

func (u *UA) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	u.respond(tx, req, 200, "OK", nil, sip.NewHeader("Allow", allowMethods), sip.NewHeader("Accept", "application/sdp"))
}

func (u *UA) onOther(req *sip.Request, tx sip.ServerTransaction) {
	m := req.Method.String()
	if knownMethods[m] {
		u.respond(tx, req, 405, "Method Not Allowed", nil, sip.NewHeader("Allow", allowMethods))
		return
	}
	u.respond(tx, req, 501, "Not Implemented", nil, sip.NewHeader("Allow", allowMethods))
}

func (u *UA) onAck(req *sip.Request, _ sip.ServerTransaction) {
	if c := u.lookup(req); c != nil {
		c.acked()
	}
}

func (u *UA) onBye(req *sip.Request, tx sip.ServerTransaction) {
	c := u.lookup(req)
	if c == nil {
		u.respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	u.respond(tx, req, 200, "OK", nil)
	c.end(EndRemoteBye)
}

// onInfo takes key presses sent as SIP INFO (application/dtmf-relay, or
// application/dtmf) within a call.
func (u *UA) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	c := u.lookup(req)
	if c == nil {
		u.respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
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
	c.keyPressed(digit)
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

// onCancel sees only CANCELs that matched no pending INVITE (the
// transaction layer answers the others and we learn of them via OnCancel).
func (u *UA) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	u.respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
}

func (u *UA) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	log := u.log.With().Str("call_id", callID(req)).Logger()
	if to := req.To(); to != nil {
		if tag, ok := to.Params.Get("tag"); ok && tag != "" {
			u.onReInvite(req, tx)
			return
		}
	}
	if req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil || req.Contact() == nil {
		log.Warn().Msg("sip: INVITE missing From/To/Call-ID/CSeq/Contact")
		u.respond(tx, req, 400, "Bad Request (missing From, To, Call-ID, CSeq or Contact)", nil)
		return
	}
	if ct := req.ContentType(); ct == nil || len(req.Body()) == 0 {
		u.respond(tx, req, 488, "Not Acceptable Here (an SDP offer is required)", nil)
		return
	} else if !strings.EqualFold(strings.TrimSpace(strings.Split(ct.Value(), ";")[0]), "application/sdp") {
		u.respond(tx, req, 415, "Unsupported Media Type", nil, sip.NewHeader("Accept", "application/sdp"))
		return
	}
	media, err := Negotiate(req.Body(), u.cfg.Codecs)
	if err != nil {
		log.Warn().Err(err).Msg("sip: refusing INVITE")
		code, reason := 488, "Not Acceptable Here"
		if errors.Is(err, ErrSDPMalformed) {
			code, reason = 400, "Bad Request"
		}
		u.respond(tx, req, code, reason+" ("+err.Error()+")", nil, sip.NewHeader("Warning", `399 voicebot "`+sanitize(err.Error())+`"`))
		return
	}
	u.respond(tx, req, 100, "Trying", nil)

	c := newCall(u, req, tx, media, log)
	u.mu.Lock()
	u.dialogs[c.key] = c
	u.mu.Unlock()
	u.calls.Add(1)
	defer u.calls.Done()
	defer func() {
		u.mu.Lock()
		delete(u.dialogs, c.key)
		u.mu.Unlock()
	}()
	if !tx.OnCancel(func(*sip.Request) { c.end(EndCancelled) }) {
		c.end(EndCancelled)
	}
	log.Info().Str("from", req.From().Address.String()).Str("to", req.To().Address.String()).
		Str("codec", media.Codec.Name).Str("remote_rtp", media.Remote.String()).Msg("sip: incoming call")

	func() {
		defer func() {
			if p := recover(); p != nil {
				log.Error().Interface("panic", p).Msg("sip: call handler panicked")
				c.end(EndError)
			}
		}()
		u.handler(c.ctx, c)
	}()
	c.finish()
}

// onReInvite keeps an established call alive: session refreshes and
// re-INVITEs get our current answer back. Hold and media changes are not yet
// acted on.
func (u *UA) onReInvite(req *sip.Request, tx sip.ServerTransaction) {
	c := u.lookup(req)
	if c == nil {
		u.respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	sdp := c.answerSDP()
	if sdp == nil {
		u.respond(tx, req, 491, "Request Pending", nil)
		return
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", sdp)
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	res.AppendHeader(u.contact(req))
	res.AppendHeader(sip.NewHeader("Server", u.cfg.UserAgent))
	_ = tx.Respond(res)
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
