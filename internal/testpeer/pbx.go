package testpeer

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/pion/rtp"

	"github.com/voicebot/voicebot/media"
)

// PBX is a small upstream server for tests of voicebot's client side: a
// registrar that challenges with digest, and a callee that answers (or
// refuses) the INVITEs voicebot places, with RTP. It writes SIP by hand on
// loopback UDP and checks digest credentials itself.
type PBX struct {
	SIP *net.UDPConn
	RTP *net.UDPConn

	User, Password, Realm string

	mu sync.Mutex
	// Registrar behaviour: grant this lifetime (0: what was asked); fail
	// the next FailRegisters with FailCode (and Retry-After 1).
	Grant         time.Duration
	FailRegisters int
	FailCode      int
	// Callee behaviour: challenge INVITEs with 401 or 407 (0: none); ring
	// this long, with 183 early media when EarlyMedia; then answer Final
	// (0: never, let it ring).
	Challenge  int
	Ring       time.Duration
	EarlyMedia bool
	Final      int
	// MinSE, when set, refuses INVITEs asking for a shorter session timer
	// with 422.
	MinSE int

	registers []Register
	invites   []*sip.Request
	requests  []*sip.Request // in-dialog requests from voicebot (ACK, BYE…)
	received  []Packet
	remoteRTP netip.AddrPort
	dialog    struct{ callID, fromTag, toTag, contact string }
	cseq      int
	done      chan struct{}
	wg        sync.WaitGroup
}

// Register is one REGISTER the registrar accepted.
type Register struct {
	At      time.Time
	Expires int
	Contact string
	Authed  bool
}

// NewPBX opens the PBX's sockets on 127.0.0.1.
func NewPBX(user, password string) (*PBX, error) {
	s, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	r, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		s.Close()
		return nil, err
	}
	p := &PBX{SIP: s, RTP: r, User: user, Password: password, Realm: "testpbx", Final: 200, cseq: 100, done: make(chan struct{})}
	p.wg.Add(2)
	go p.readSIP()
	go p.readRTP()
	return p, nil
}

// Addr is the PBX's SIP address.
func (p *PBX) Addr() netip.AddrPort { return p.SIP.LocalAddr().(*net.UDPAddr).AddrPort() }

// Close stops the PBX.
func (p *PBX) Close() {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	p.SIP.Close()
	p.RTP.Close()
	p.wg.Wait()
}

// Set changes the PBX's behaviour under its lock.
func (p *PBX) Set(f func(p *PBX)) {
	p.mu.Lock()
	f(p)
	p.mu.Unlock()
}

// Registers returns the accepted REGISTERs.
func (p *PBX) Registers() []Register {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Register(nil), p.registers...)
}

// Invites returns the INVITEs received (challenged ones included).
func (p *PBX) Invites() []*sip.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*sip.Request(nil), p.invites...)
}

// Requests returns the in-dialog requests received, by method.
func (p *PBX) Requests(method string) []*sip.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*sip.Request
	for _, r := range p.requests {
		if string(r.Method) == method {
			out = append(out, r)
		}
	}
	return out
}

// Received returns the RTP packets received.
func (p *PBX) Received() []Packet {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Packet(nil), p.received...)
}

// RemoteRTP is where voicebot receives the call's RTP.
func (p *PBX) RemoteRTP() netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.remoteRTP
}

func (p *PBX) write(b string, to netip.AddrPort) {
	if os.Getenv("VBTEST_PBX_TRACE") != "" {
		fmt.Fprintf(os.Stderr, "PBX -> %s\n%s\n", to, b)
	}
	_, _ = p.SIP.WriteToUDPAddrPort([]byte(b), to)
}

func (p *PBX) readSIP() {
	defer p.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := p.SIP.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		msg, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
		if os.Getenv("VBTEST_PBX_TRACE") != "" {
			fmt.Fprintf(os.Stderr, "PBX <- %s (%v)\n%s\n", from, err, buf[:n])
		}
		if err != nil {
			continue
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			continue // answers to our BYE
		}
		switch req.Method {
		case sip.REGISTER:
			p.onRegister(req, from)
		case sip.INVITE:
			if to := req.To(); to != nil {
				if _, ok := to.Params.Get("tag"); ok {
					p.record(req)
					p.write(p.response(req, 200, "OK", "", p.sdp()), from)
					continue
				}
			}
			p.onInvite(req, from)
		case sip.ACK:
			p.record(req)
		case sip.CANCEL:
			p.record(req)
			p.write(p.response(req, 200, "OK", "", ""), from)
			p.mu.Lock()
			var inv *sip.Request
			if n := len(p.invites); n > 0 && p.invites[n-1].CallID().Value() == req.CallID().Value() {
				inv = p.invites[n-1]
			}
			tag := p.dialog.toTag
			p.mu.Unlock()
			if inv != nil {
				p.write(p.responseTag(inv, 487, "Request Terminated", tag, "", ""), from)
			}
		default:
			p.record(req)
			p.write(p.response(req, 200, "OK", "", ""), from)
		}
	}
}

func (p *PBX) record(req *sip.Request) {
	p.mu.Lock()
	p.requests = append(p.requests, req)
	p.mu.Unlock()
}

// challenged checks req's credentials; without good ones it answers the
// challenge (code 401 or 407) itself and returns false.
func (p *PBX) challenged(req *sip.Request, from netip.AddrPort, code int) bool {
	header, challenge := "Authorization", "WWW-Authenticate"
	if code == 407 {
		header, challenge = "Proxy-Authorization", "Proxy-Authenticate"
	}
	if h := req.GetHeader(header); h != nil {
		if cred, err := digest.ParseCredentials(h.Value()); err == nil && cred.Username == p.User {
			want, err := digest.Digest(&digest.Challenge{Realm: cred.Realm, Nonce: cred.Nonce, Algorithm: cred.Algorithm, QOP: []string{"auth"}},
				digest.Options{Method: string(req.Method), URI: cred.URI, Username: p.User, Password: p.Password, Cnonce: cred.Cnonce, Count: cred.Nc})
			if err == nil && want.Response == cred.Response && cred.URI == req.Recipient.String() {
				return true
			}
		}
		p.write(p.response(req, 403, "Forbidden", "", ""), from)
		return false
	}
	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce)
	hdr := fmt.Sprintf(`%s: Digest realm="%s", nonce="%s", algorithm=MD5, qop="auth"`, challenge, p.Realm, hex.EncodeToString(nonce))
	reason := "Unauthorized"
	if code == 407 {
		reason = "Proxy Authentication Required"
	}
	p.write(p.response(req, code, reason, hdr, ""), from)
	return false
}

func (p *PBX) onRegister(req *sip.Request, from netip.AddrPort) {
	p.mu.Lock()
	fail, failCode, grant := p.FailRegisters, p.FailCode, p.Grant
	if fail > 0 {
		p.FailRegisters--
	}
	p.mu.Unlock()
	if fail > 0 {
		p.write(p.response(req, failCode, "Service Unavailable", "Retry-After: 1", ""), from)
		return
	}
	if !p.challenged(req, from, 401) {
		return
	}
	expires, _ := strconv.Atoi(headerValue(req, "Expires"))
	contact := headerValue(req, "Contact")
	if expires > 0 && grant > 0 {
		expires = int(grant / time.Second)
	}
	p.mu.Lock()
	p.registers = append(p.registers, Register{At: time.Now(), Expires: expires, Contact: contact, Authed: true})
	p.mu.Unlock()
	p.write(p.response(req, 200, "OK", fmt.Sprintf("Contact: %s;expires=%d", contact, expires), ""), from)
}

func (p *PBX) onInvite(req *sip.Request, from netip.AddrPort) {
	p.mu.Lock()
	p.invites = append(p.invites, req)
	challenge, ring, early, final, minSE := p.Challenge, p.Ring, p.EarlyMedia, p.Final, p.MinSE
	p.mu.Unlock()
	if challenge != 0 && !p.challenged(req, from, challenge) {
		return
	}
	if se, _ := strconv.Atoi(strings.Split(headerValue(req, "Session-Expires"), ";")[0]); minSE > 0 && se < minSE {
		p.write(p.response(req, 422, "Session Interval Too Small", fmt.Sprintf("Min-SE: %d", minSE), ""), from)
		return
	}
	if a, err := parseAnswer(req.Body()); err == nil {
		p.mu.Lock()
		p.remoteRTP = a.addr
		p.mu.Unlock()
	}
	tag := token()[:8]
	p.mu.Lock()
	p.dialog.callID = req.CallID().Value()
	p.dialog.fromTag, _ = req.From().Params.Get("tag")
	p.dialog.toTag = tag
	p.dialog.contact = headerValue(req, "Contact")
	p.mu.Unlock()
	p.write(p.responseTag(req, 180, "Ringing", tag, "", ""), from)
	go func() {
		if early {
			p.write(p.responseTag(req, 183, "Session Progress", tag, "", p.sdp()), from)
		}
		select {
		case <-time.After(ring):
		case <-p.done:
			return
		}
		if final == 0 {
			return
		}
		reason := "OK"
		body := p.sdp()
		if final != 200 {
			reason, body = "Busy Here", ""
		}
		p.write(p.responseTag(req, final, reason, tag, "", body), from)
	}()
}

func (p *PBX) sdp() string {
	a := p.RTP.LocalAddr().(*net.UDPAddr).AddrPort()
	return fmt.Sprintf("v=0\r\no=pbx 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n", a.Addr(), a.Addr(), a.Port())
}

func (p *PBX) response(req *sip.Request, code int, reason, extra, body string) string {
	return p.responseTag(req, code, reason, "", extra, body)
}

// responseTag writes a response to req, adding tag to To when set.
func (p *PBX) responseTag(req *sip.Request, code int, reason, tag, extra, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, reason)
	for _, v := range req.GetHeaders("Via") {
		fmt.Fprintf(&b, "Via: %s\r\n", v.Value())
	}
	to := req.To().Value()
	if tag != "" && !strings.Contains(to, "tag=") {
		to += ";tag=" + tag
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\n", req.From().Value(), to, req.CallID().Value(), req.CSeq().Value())
	fmt.Fprintf(&b, "Contact: <sip:pbx@%s>\r\n", p.Addr())
	if extra != "" {
		b.WriteString(extra + "\r\n")
	}
	if body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.String()
}

// Bye hangs up the call voicebot placed, from the callee's side.
func (p *PBX) Bye(to netip.AddrPort) {
	p.mu.Lock()
	d := p.dialog
	p.cseq++
	cseq := p.cseq
	p.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "BYE %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\r\nMax-Forwards: 70\r\n",
		strings.Trim(d.contact, "<>"), p.Addr(), token()[:12])
	fmt.Fprintf(&b, "From: <sip:callee@%s>;tag=%s\r\nTo: <sip:voicebot@%s>;tag=%s\r\nCall-ID: %s\r\nCSeq: %d BYE\r\nContent-Length: 0\r\n\r\n",
		p.Addr(), d.toTag, to, d.fromTag, d.callID, cseq)
	p.write(b.String(), to)
}

func (p *PBX) readRTP() {
	defer p.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, _, err := p.RTP.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		var pk rtp.Packet
		if pk.Unmarshal(buf[:n]) != nil {
			continue
		}
		pkt := Packet{At: time.Now(), Header: pk.Header.Clone(), Audio: media.PCMU.Decode(nil, pk.Payload), Payload: append([]byte(nil), pk.Payload...)}
		p.mu.Lock()
		p.received = append(p.received, pkt)
		p.mu.Unlock()
	}
}

// PressKey sends a key to voicebot as RFC 4733 events, as Caller.PressKey.
func (p *PBX) PressKey(digit rune, seq uint16, ts uint32) {
	c := &Caller{RTP: p.RTP, RemoteRTP: p.RemoteRTP()}
	c.PressKey(digit, 101, seq, ts, 0xB0B)
}

func headerValue(m interface{ GetHeader(string) sip.Header }, name string) string {
	if h := m.GetHeader(name); h != nil {
		return strings.TrimSpace(h.Value())
	}
	return ""
}
