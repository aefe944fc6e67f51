// Package sip is voicebot's SIP user agent, on emiago/sipgo: it answers
// INVITEs with an SDP answer (pion/sdp) and places calls through trunks,
// keeps the dialogs (re-INVITE and UPDATE for hold, new media and session
// timers, INFO keys, REFER transfers), registers to upstream registrars, and
// hands each call to a handler with the few operations a call needs.
// Dialog handling is our own, on sipgo's transaction layer, so that every
// wait has a deadline and a call always ends.
package sip

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/clock"
)

// Config configures the user agent.
type Config struct {
	Listen     netip.AddrPort
	Transports []string // udp, tcp
	// ExternalHost is advertised in Contact, Via and SDP when set (NAT).
	ExternalHost string
	// MediaIP is the address RTP sockets are bound on; it is advertised in
	// SDP when ExternalHost is empty.
	MediaIP   netip.Addr
	UserAgent string
	// Codecs are the codecs voicebot speaks, in order of preference.
	Codecs     []Codec
	AckTimeout time.Duration
	// SessionExpires is the session-timer interval we ask for (RFC 4028),
	// 0 for none unless the peer asks; MinSE the shortest we accept.
	SessionExpires time.Duration
	MinSE          time.Duration
	// Trunks are the upstream servers calls are placed through and
	// registered with.
	Trunks []Trunk
	// RetryAfter is sent with the 503 new INVITEs get while draining
	// (default 30 s).
	RetryAfter time.Duration
	// Admission decides who may call.
	Admission Admission
	// SRTP is when media is encrypted (SDES).
	SRTP SRTPPolicy
	// OnResponse, if set, is told the code of every response voicebot
	// sends (not retransmissions), for the metrics.
	OnResponse func(code int)
	// OnRefused, if set, is told of every INVITE refused before it became
	// a call (admission, capacity, shutting down, an offer voicebot cannot
	// take; not digest challenges, which a caller answers), with the
	// reason, for the metrics.
	OnRefused func(reason string)
	// TLS, with TLSListen, serves SIP over TLS (transport=tls).
	TLS       *tls.Config
	TLSListen netip.AddrPort
	Clock     clock.Clock
	Log       zerolog.Logger
}

// Handler runs one call. For an inbound call it is called while the INVITE
// is pending: it must Answer (or Reject) the call. It returns when the call
// is over. ctx ends when the peer hangs up or cancels, or the UA shuts down.
type Handler func(ctx context.Context, call *Call)

// UA is a SIP user agent.
type UA struct {
	cfg     Config
	handler Handler
	log     zerolog.Logger

	ua     *sipgo.UserAgent
	server *sipgo.Server
	client *sipgo.Client

	udp *net.UDPConn
	tcp *net.TCPListener
	tls net.Listener

	mu            sync.Mutex
	dialogs       map[string]*Call
	calls         sync.WaitGroup
	ctx           context.Context
	registrations []*registration
	ready         chan struct{} // closed once requests can be sent and received
	stopping      bool          // draining, or Serve is waiting for the calls: no new ones
	active        int           // calls counted in by startCall
	gate          *gate
	stopRegs      context.CancelFunc
}

var setSipgoLogger sync.Once

// Allowed methods, advertised in Allow headers.
const allowMethods = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY"

// supported lists the option tags we support (Supported header).
const supported = "timer, replaces"

// knownMethods are SIP methods we recognise but do not serve (405, not 501).
var knownMethods = map[string]bool{
	"REGISTER": true, "SUBSCRIBE": true, "PUBLISH": true, "MESSAGE": true, "PRACK": true,
}

// New binds the configured transports. Serve starts answering.
func New(cfg Config, handler Handler) (*UA, error) {
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 32 * time.Second
	}
	if cfg.MinSE <= 0 {
		cfg.MinSE = 90 * time.Second
	}
	if !cfg.MediaIP.IsValid() {
		cfg.MediaIP = cfg.Listen.Addr()
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "voicebot"
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	for i := range cfg.Trunks {
		if err := cfg.Trunks[i].normalize(); err != nil {
			return nil, fmt.Errorf("sip trunk %q: %w", cfg.Trunks[i].Name, err)
		}
	}
	u := &UA{cfg: cfg, handler: handler, log: cfg.Log, dialogs: map[string]*Call{}, ready: make(chan struct{})}
	u.gate = newGate(cfg.Admission, time.Now)
	u.gate.onRefused = cfg.OnRefused
	// sipgo logs through a process-wide logger that its own goroutines read
	// at any time: set it once, before any of them exists.
	setSipgoLogger.Do(func() { sip.SetDefaultLogger(slog.New(newSlogHandler(cfg.Log))) })

	ua, err := sipgo.NewUA(sipgo.WithUserAgent(cfg.UserAgent), sipgo.WithUserAgentHostname(u.advertisedHost()))
	if err != nil {
		return nil, fmt.Errorf("sip: %w", err)
	}
	u.ua = ua
	if u.server, err = sipgo.NewServer(ua); err != nil {
		ua.Close()
		return nil, fmt.Errorf("sip server: %w", err)
	}
	listen, err := listenRetrying(cfg.Listen.Port() == 0, func() (netip.AddrPort, error) {
		return u.listen(cfg.Listen, cfg.Transports)
	})
	if err != nil {
		ua.Close()
		return nil, err
	}
	cfg.Listen, u.cfg.Listen = listen, listen
	if cfg.TLS != nil {
		if u.tls, err = tls.Listen("tcp", cfg.TLSListen.String(), cfg.TLS); err != nil {
			u.closeListeners()
			ua.Close()
			return nil, fmt.Errorf("sip listen tls %s: %w", cfg.TLSListen, err)
		}
	}
	if u.client, err = sipgo.NewClient(ua, sipgo.WithClientHostname(cfg.Listen.Addr().String())); err != nil {
		u.closeListeners()
		ua.Close()
		return nil, fmt.Errorf("sip client: %w", err)
	}
	u.server.OnInvite(u.wellFormed(u.onInvite))
	u.server.OnAck(u.wellFormed(u.onAck))
	u.server.OnBye(u.wellFormed(u.onBye))
	u.server.OnCancel(u.wellFormed(u.onCancel))
	u.server.OnOptions(u.wellFormed(u.onOptions))
	u.server.OnInfo(u.wellFormed(u.onInfo))
	u.server.OnUpdate(u.wellFormed(u.onUpdate))
	u.server.OnNotify(u.wellFormed(u.onNotify))
	u.server.OnRefer(u.wellFormed(u.onRefer))
	u.server.OnNoRoute(u.wellFormed(u.onOther))
	return u, nil
}

// Serve answers requests and keeps the registrations until ctx ends, then
// ends every call (their handlers' contexts are cancelled), un-registers,
// waits for the calls, and closes the sockets.
func (u *UA) Serve(ctx context.Context) error {
	u.mu.Lock()
	u.ctx = ctx
	u.mu.Unlock()
	var wg sync.WaitGroup
	errs := make(chan error, 3) // one per listener: each Serve returns once
	if u.udp != nil {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- u.server.ServeUDP(u.udp) }()
	}
	if u.tcp != nil {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- u.server.ServeTCP(u.tcp) }()
	}
	if u.tls != nil {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- u.server.ServeTLS(u.tls) }()
		u.log.Info().Str("listen", u.TLSAddr().String()).Msg("sip: listening on TLS")
	}
	u.awaitListening()
	close(u.ready)
	u.log.Info().Str("listen", u.Addr().String()).Strs("transports", u.cfg.Transports).Msg("sip: listening")
	var regs sync.WaitGroup
	regCtx, stopRegs := context.WithCancel(ctx)
	defer stopRegs()
	u.mu.Lock()
	u.stopRegs = stopRegs
	draining := u.stopping
	u.mu.Unlock()
	if draining {
		stopRegs()
	}
	for _, t := range u.cfg.Trunks {
		if !t.Register {
			continue
		}
		r := newRegistration(u, t)
		u.mu.Lock()
		u.registrations = append(u.registrations, r)
		u.mu.Unlock()
		regs.Add(1)
		go func() { defer regs.Done(); r.run(regCtx) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
		err = fmt.Errorf("sip serve: %w", err)
	}
	// No call may start once we wait for the calls (a WaitGroup must not
	// grow during Wait): INVITEs from here on are refused.
	u.mu.Lock()
	u.stopping = true
	u.mu.Unlock()
	u.calls.Wait()
	regs.Wait() // un-REGISTERs, bounded
	// Stop reading, then close sipgo (it terminates its transactions and
	// closes the sockets it pooled). A request read just before the sockets
	// closed may still be in a sipgo goroutine that, finding no socket,
	// opens one to answer from: sweep those up too.
	u.closeListeners()
	wg.Wait()
	refused := zerolog.Dict()
	for reason, n := range u.Rejections() {
		refused = refused.Uint64(reason, n)
	}
	u.log.Info().Dict("refused", refused).Msg("sip: stopped")
	u.ua.Close()
	for i := 0; i < 10; i++ {
		time.Sleep(20 * time.Millisecond)
		_ = u.ua.TransportLayer().Close()
	}
	return err
}

// wellFormed refuses requests sipgo parsed but RFC 3261 does not allow,
// before any handler sees them: a CSeq whose method is not the request's
// (§8.1.1.5) would otherwise start a call under another request's
// transaction rules. An ACK is never answered.
func (u *UA) wellFormed(h func(*sip.Request, sip.ServerTransaction)) func(*sip.Request, sip.ServerTransaction) {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		// RFC 3261 §7.1: the version is case-insensitive ("sip/2.0" is 2.0).
		if !strings.EqualFold(req.SipVersion, "SIP/2.0") {
			u.log.Debug().Str("call_id", callID(req)).Str("version", req.SipVersion).Msg("sip: request refused: not SIP/2.0")
			if req.Method != sip.ACK {
				u.respond(tx, req, 505, "Version Not Supported", nil)
			}
			return
		}
		if name, bad := controlInHeader(req); bad {
			u.log.Debug().Str("call_id", callID(req)).Str("header", name).Msg("sip: request refused: control character in a header")
			if req.Method != sip.ACK {
				u.respond(tx, req, 400, "Bad Request (control character in "+name+")", nil)
			}
			return
		}
		if cs := req.CSeq(); cs != nil && cs.MethodName != req.Method {
			u.log.Debug().Str("call_id", callID(req)).Str("method", string(req.Method)).Str("cseq_method", string(cs.MethodName)).
				Msg("sip: request refused: CSeq method does not match")
			if req.Method != sip.ACK {
				u.respond(tx, req, 400, "Bad Request (CSeq method does not match the request)", nil)
			}
			return
		}
		h(req, tx)
	}
}

// controlInHeader finds a header whose value holds a control character
// (hasControl).
func controlInHeader(req *sip.Request) (string, bool) {
	for _, h := range req.Headers() {
		if hasControl(h.Value()) {
			return h.Name(), true
		}
	}
	return "", false
}

// hasControl reports whether a header value holds a NUL or another control
// character than tab (RFC 3261 §25.1: header values are text; a NUL is a
// smuggling attempt or a broken peer), whether we receive it or send it.
func hasControl(value string) bool {
	for _, c := range []byte(value) {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

// Drain stops taking calls while those in progress go on: new INVITEs
// (and API calls) are refused with 503 and Retry-After, OPTIONS probes are
// answered 503 so a proxy sends calls elsewhere, and registrations are
// removed. Serve still runs until its context ends.
func (u *UA) Drain() {
	u.mu.Lock()
	already := u.stopping
	u.stopping = true
	stop := u.stopRegs
	u.mu.Unlock()
	if already {
		return
	}
	u.log.Info().Int("calls", u.ActiveCalls()).Msg("sip: draining: no new calls, registrations removed")
	if stop != nil {
		stop()
	}
}

// Draining reports whether Drain was called (or Serve is stopping).
func (u *UA) Draining() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.stopping
}

func (u *UA) retryAfter() string {
	d := u.cfg.RetryAfter
	if d <= 0 {
		d = 30 * time.Second
	}
	return strconv.Itoa(int((d + time.Second - 1) / time.Second))
}

// awaitListening waits (briefly) until sipgo has taken the UDP socket into
// its pool: before that, a request of ours would find no socket to leave
// from, and sipgo would try to open another on our port.
func (u *UA) awaitListening() {
	if u.udp == nil {
		return
	}
	addr := u.udp.LocalAddr().String()
	for i := 0; i < 2000; i++ {
		if c, err := u.ua.TransportLayer().GetConnection("udp", addr); err == nil && c != nil {
			return
		}
		time.Sleep(time.Millisecond)
	}
	u.log.Warn().Msg("sip: the UDP socket is not serving after 2 s")
}

// Ready is closed once Serve is answering and calls can be placed.
func (u *UA) Ready() <-chan struct{} { return u.ready }

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

// register makes a call's dialog reachable by in-dialog requests.
func (u *UA) register(c *Call) {
	d := c.dialog()
	u.mu.Lock()
	u.dialogs[d.key()] = c
	u.mu.Unlock()
}

func (u *UA) unregister(c *Call) {
	d := c.dialog()
	if d == nil {
		return
	}
	u.mu.Lock()
	if u.dialogs[d.key()] == c {
		delete(u.dialogs, d.key())
	}
	u.mu.Unlock()
}

// contact is our Contact toward a peer at dest over transport.
func (u *UA) contact(transport, dest string) *sip.ContactHeader {
	return u.contactFor("voicebot", transport, dest)
}

func (u *UA) contactFor(user, transport, dest string) *sip.ContactHeader {
	host := u.hostFor(u.cfg.Listen.Addr(), dest)
	c := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: host, Port: int(u.portFor(transport))}}
	if t := strings.ToLower(transport); t == "tcp" || t == "tls" {
		c.Address.UriParams = sip.NewParams()
		c.Address.UriParams.Add("transport", t)
	}
	return c
}

// do sends a request of ours and waits for its final response. It leaves
// from our listening socket (peers and NATs expect our SIP port, and sipgo
// does not reap sockets it opens itself), with a Via of the advertised
// address and rport (RFC 3581), so answers find us behind NAT.
func (u *UA) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	return u.client.Do(ctx, req, u.prepare)
}

// transaction sends a request of ours and returns its client transaction.
func (u *UA) transaction(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	return u.client.TransactionRequest(ctx, req, u.prepare)
}

// prepare is the sipgo request option that adds our Via and picks the socket.
func (u *UA) prepare(_ *sipgo.Client, req *sip.Request) error {
	via := &sip.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: strings.ToUpper(req.Transport()),
		Host: u.hostFor(u.cfg.Listen.Addr(), req.Destination()), Port: int(u.portFor(req.Transport())),
		Params: sip.NewParams(),
	}
	via.Params.Add("branch", sip.GenerateBranch())
	via.Params.Add("rport", "")
	req.PrependHeader(via)
	if strings.EqualFold(req.Transport(), "udp") {
		req.Laddr = sip.Addr{IP: net.IP(u.cfg.Listen.Addr().AsSlice()), Port: int(u.port())}
	}
	if req.ContentLength() == nil {
		req.SetBody(req.Body())
	}
	return nil
}

// respond sends a response to a request outside any call.
func (u *UA) respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string, body []byte, headers ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, body)
	res.AppendHeader(sip.NewHeader("Server", u.cfg.UserAgent))
	for _, h := range headers {
		res.AppendHeader(h)
	}
	u.sent(code)
	if err := tx.Respond(res); err != nil {
		u.log.Debug().Err(err).Int("code", code).Str("call_id", callID(req)).Msg("sip: respond failed")
	}
}

// sent reports a response to the metrics.
func (u *UA) sent(code int) {
	if u.cfg.OnResponse != nil {
		u.cfg.OnResponse(code)
	}
}
