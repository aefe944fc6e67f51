// Package testpeer is a deliberately simple SIP caller for tests: it writes
// SIP messages by hand over loopback UDP (so it can also send broken ones),
// parses answers with sipgo's parser, and sends and records G.711 RTP.
package testpeer

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/voicebot/voicebot/media"
)

// Caller is one SIP UAC with one RTP socket.
type Caller struct {
	SIP    *net.UDPConn
	RTP    *net.UDPConn
	Target netip.AddrPort // the UA under test

	CallID, FromTag, ToTag string
	// FromUser is who calls: the user of the From URI (default "tester").
	FromUser      string
	RemoteContact string
	RemoteRTP     netip.AddrPort
	Codec         media.Codec
	encoders      map[streamKey]media.Encoder // SendAudio's, by stream (test goroutine)
	cseq          int

	// Answer, when set, decides how requests from the UA are answered
	// (default: 200 OK). It runs on the caller's reader goroutine.
	Answer func(req *sip.Request) (code int, headers []string, body string)

	mu       sync.Mutex
	requests []*sip.Request // requests the UA sent us (BYE…)
	resps    chan *sip.Response
	received []Packet
	done     chan struct{}
	wg       sync.WaitGroup
}

// Packet is one RTP packet the caller received, with its arrival time.
type Packet struct {
	At      time.Time
	Header  rtp.Header
	Audio   []int16 // decoded payload
	Payload []byte  // as received
}

// New opens the caller's SIP and RTP sockets on 127.0.0.1.
func New(target netip.AddrPort) (*Caller, error) {
	sipConn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	rtpConn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		sipConn.Close()
		return nil, err
	}
	c := &Caller{SIP: sipConn, RTP: rtpConn, Target: target, CallID: token() + "@testpeer", FromTag: token()[:10],
		cseq: 1, resps: make(chan *sip.Response, 256), done: make(chan struct{}), Codec: media.PCMU}
	c.wg.Add(2)
	go c.readSIP()
	go c.readRTP()
	return c, nil
}

func token() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Close stops the caller's goroutines and closes its sockets.
func (c *Caller) Close() {
	select {
	case <-c.done:
	default:
		close(c.done)
	}
	c.SIP.Close()
	c.RTP.Close()
	c.wg.Wait()
}

func (c *Caller) sipAddr() netip.AddrPort { return c.SIP.LocalAddr().(*net.UDPAddr).AddrPort() }
func (c *Caller) rtpAddr() netip.AddrPort { return c.RTP.LocalAddr().(*net.UDPAddr).AddrPort() }

// SendRaw writes one datagram to the UA's SIP port.
func (c *Caller) SendRaw(msg []byte) error {
	_, err := c.SIP.WriteToUDPAddrPort(msg, c.Target)
	return err
}

func (c *Caller) readSIP() {
	defer c.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := c.SIP.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		msg, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			continue
		}
		switch m := msg.(type) {
		case *sip.Response:
			if m.StatusCode >= 300 && m.CSeq() != nil && m.CSeq().MethodName == sip.INVITE {
				// A UAC acknowledges a failure itself, in the INVITE's
				// transaction: same branch and CSeq (RFC 3261 17.1.1.3).
				_, _ = c.SIP.WriteToUDPAddrPort(ackFailure(m), from)
			}
			select {
			case c.resps <- m:
			default:
			}
		case *sip.Request:
			c.mu.Lock()
			c.requests = append(c.requests, m)
			answer := c.Answer
			c.mu.Unlock()
			if !m.IsAck() {
				code, headers, body := 200, []string(nil), ""
				if answer != nil {
					code, headers, body = answer(m)
				}
				res := sip.NewResponseFromRequest(m, code, reasonFor(code), []byte(body))
				for _, h := range headers {
					name, value, _ := strings.Cut(h, ":")
					res.AppendHeader(sip.NewHeader(strings.TrimSpace(name), strings.TrimSpace(value)))
				}
				_, _ = c.SIP.WriteToUDPAddrPort([]byte(res.String()), from)
			}
		}
	}
}

func (c *Caller) readRTP() {
	defer c.wg.Done()
	buf := make([]byte, 1500)
	decoders := map[streamKey]media.Decoder{}
	for {
		n, _, err := c.RTP.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		var p rtp.Packet
		if p.Unmarshal(buf[:n]) != nil {
			continue
		}
		// By payload type: Codec belongs to the test goroutine. A stream
		// is decoded by one decoder (G.722 carries state), anew when its
		// source changes.
		codec := media.PCMU
		for _, c := range media.Codecs() {
			if c.PayloadType == p.PayloadType {
				codec = c
			}
		}
		key := streamKey{p.SSRC, p.PayloadType}
		dec, ok := decoders[key]
		if !ok {
			dec = codec.NewDecoder()
			decoders[key] = dec
		}
		pkt := Packet{At: time.Now(), Header: p.Header.Clone(), Audio: dec.Decode(nil, p.Payload), Payload: append([]byte(nil), p.Payload...)}
		c.mu.Lock()
		c.received = append(c.received, pkt)
		c.mu.Unlock()
	}
}

// streamKey names a received stream: a source in one codec.
type streamKey struct {
	ssrc uint32
	pt   uint8
}

func reasonFor(code int) string {
	switch code {
	case 200:
		return "OK"
	case 202:
		return "Accepted"
	case 481:
		return "Call/Transaction Does Not Exist"
	case 603:
		return "Decline"
	}
	return "Whatever"
}

// SetAnswer sets how requests from the UA are answered.
func (c *Caller) SetAnswer(f func(req *sip.Request) (int, []string, string)) {
	c.mu.Lock()
	c.Answer = f
	c.mu.Unlock()
}

// RequestsOf returns the requests of one method the UA sent the caller.
func (c *Caller) RequestsOf(method string) []*sip.Request {
	var out []*sip.Request
	for _, r := range c.Requests() {
		if string(r.Method) == method {
			out = append(out, r)
		}
	}
	return out
}

// Received returns the RTP packets received so far.
func (c *Caller) Received() []Packet {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Packet(nil), c.received...)
}

// Requests returns the requests the UA sent to the caller.
func (c *Caller) Requests() []*sip.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*sip.Request(nil), c.requests...)
}

// Offer is the default SDP offer: PCMU, PCMA, telephone-event.
func (c *Caller) Offer() string { return c.OfferAt(c.rtpAddr(), "sendrecv", 1) }

// OfferCodecs is an offer of the given rtpmap lines' codecs ("9 G722/8000")
// and telephone-event/8000 as 101, in that order.
func (c *Caller) OfferCodecs(version int, rtpmaps ...string) string {
	a := c.rtpAddr()
	var pts, maps []string
	for _, m := range append(rtpmaps, "101 telephone-event/8000") {
		pt, _, _ := strings.Cut(m, " ")
		pts = append(pts, pt)
		maps = append(maps, "a=rtpmap:"+m+"\r\n")
	}
	return fmt.Sprintf("v=0\r\no=testpeer 1 %d IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP %s\r\n%sa=sendrecv\r\n",
		version, a.Addr(), a.Addr(), a.Port(), strings.Join(pts, " "), strings.Join(maps, ""))
}

// OfferAt is an offer with RTP at addr, a direction and an SDP version.
func (c *Caller) OfferAt(a netip.AddrPort, direction string, version int) string {
	return fmt.Sprintf("v=0\r\no=testpeer 1 %d IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=%s\r\n",
		version, a.Addr(), a.Addr(), a.Port(), direction)
}

// RTPAddr is where the caller receives RTP.
func (c *Caller) RTPAddr() netip.AddrPort { return c.rtpAddr() }

// Request builds a request of this call's dialog.
func (c *Caller) Request(method, contentType, body string, extra ...string) []byte {
	a := c.sipAddr()
	to := fmt.Sprintf("<sip:bot@%s>", c.Target)
	if c.ToTag != "" {
		to += ";tag=" + c.ToTag
	}
	cseq := c.cseq
	if method != "ACK" && method != "CANCEL" {
		c.cseq++
		cseq = c.cseq
	}
	branch := "z9hG4bK" + token()[:16]
	var b strings.Builder
	fmt.Fprintf(&b, "%s sip:bot@%s SIP/2.0\r\n", method, c.Target)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=%s;rport\r\n", a, branch)
	from := c.FromUser
	if from == "" {
		from = "tester"
	}
	fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: <sip:%s@%s>;tag=%s\r\nTo: %s\r\n", from, a.Addr(), c.FromTag, to)
	fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d %s\r\nContact: <sip:tester@%s>\r\n", c.CallID, cseq, method, a)
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	if contentType != "" {
		fmt.Fprintf(&b, "Content-Type: %s\r\n", contentType)
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return []byte(b.String())
}

// Final waits for the next final response, skipping provisional ones.
func (c *Caller) Final(timeout time.Duration) (*sip.Response, error) { return c.FinalFor("", timeout) }

// FinalFor waits for the next final response to a request of method (any
// method when ""), skipping provisional ones and answers to other requests
// (a 200 OK to the INVITE retransmitted because the ACK crossed it).
func (c *Caller) FinalFor(method string, timeout time.Duration) (*sip.Response, error) {
	deadline := time.After(timeout)
	for {
		select {
		case r := <-c.resps:
			if r.IsProvisional() {
				continue
			}
			if cs := r.CSeq(); method != "" && (cs == nil || string(cs.MethodName) != method) {
				continue
			}
			return r, nil
		case <-deadline:
			return nil, errors.New("testpeer: no final response")
		}
	}
}

// Invite sends an INVITE with body (the default offer when empty) and
// returns the final answer; on 2xx it records the dialog and the bot's RTP
// address and sends the ACK. A re-INVITE is the same within the dialog.
func (c *Caller) Invite(body string, timeout time.Duration, extra ...string) (*sip.Response, error) {
	if body == "" {
		body = c.Offer()
	}
	if err := c.SendRaw(c.Request("INVITE", "application/sdp", body, extra...)); err != nil {
		return nil, err
	}
	res, err := c.FinalFor("INVITE", timeout)
	if err != nil || !res.IsSuccess() {
		return res, err
	}
	c.ToTag, _ = res.To().Params.Get("tag")
	if ct := res.Contact(); ct != nil {
		c.RemoteContact = ct.Address.String()
	}
	m, err := parseAnswer(res.Body())
	if err != nil {
		return res, err
	}
	c.RemoteRTP = m.addr
	c.Codec = m.codec
	return res, c.SendRaw(c.Request("ACK", "", ""))
}

// Bye ends the call and returns the UA's answer code.
func (c *Caller) Bye(timeout time.Duration) (int, error) {
	if err := c.SendRaw(c.Request("BYE", "", "")); err != nil {
		return 0, err
	}
	res, err := c.FinalFor("BYE", timeout)
	if err != nil {
		return 0, err
	}
	return res.StatusCode, nil
}

// SendAudio sends pcm as 20 ms RTP packets paced in real time, starting with
// sequence seq and timestamp ts; it returns the next seq and ts.
// pcm is at the codec's rate; a stream (an ssrc) is coded by one encoder.
func (c *Caller) SendAudio(pcm []int16, seq uint16, ts uint32, ssrc uint32) (uint16, uint32) {
	start := time.Now()
	n := c.Codec.FrameSamples
	key := streamKey{ssrc, c.Codec.PayloadType}
	if c.encoders == nil {
		c.encoders = map[streamKey]media.Encoder{}
	}
	enc, ok := c.encoders[key]
	if !ok {
		enc = c.Codec.NewEncoder()
		c.encoders[key] = enc
	}
	for i := 0; i*n < len(pcm); i++ {
		frame := pcm[i*n : min(len(pcm), (i+1)*n)]
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: c.Codec.PayloadType, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc, Marker: i == 0},
			Payload: enc.Encode(nil, frame)}
		b, _ := p.Marshal()
		_, _ = c.RTP.WriteToUDPAddrPort(b, c.RemoteRTP)
		seq++
		ts += c.Codec.FrameTimestamp()
		if (i+1)*n < len(pcm) {
			// Paced between packets only: it returns as the last one
			// leaves, so a caller timing what follows starts there.
			time.Sleep(time.Until(start.Add(time.Duration(i+1) * 20 * time.Millisecond)))
		}
	}
	return seq, ts
}

// ackFailure builds the ACK for a non-2xx final answer to an INVITE.
func ackFailure(res *sip.Response) []byte {
	via, from, to := res.Via(), res.From(), res.To()
	var b strings.Builder
	fmt.Fprintf(&b, "ACK %s SIP/2.0\r\n", "sip:bot@"+res.Source())
	fmt.Fprintf(&b, "Via: %s\r\nMax-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\n", via.Value(), from.Value(), to.Value())
	fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d ACK\r\nContent-Length: 0\r\n\r\n", res.CallID().Value(), res.CSeq().SeqNo)
	return []byte(b.String())
}

// PressKey sends one key as RFC 4733 telephone-events on payload type pt:
// a start, updates every 20 ms for 100 ms, and the end packet three times,
// as phones do.
func (c *Caller) PressKey(digit rune, pt uint8, seq uint16, ts uint32, ssrc uint32) uint16 {
	event := byte(strings.IndexRune("0123456789*#ABCD", digit))
	for i := 0; i <= 5; i++ {
		end := i == 5
		dur := uint16(160 * (i + 1))
		repeats := 1
		if end {
			repeats = 3
		}
		flags := byte(10)
		if end {
			flags |= 0x80
		}
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc, Marker: i == 0},
			Payload: []byte{event, flags, byte(dur >> 8), byte(dur)}}
		b, _ := p.Marshal()
		for r := 0; r < repeats; r++ {
			_, _ = c.RTP.WriteToUDPAddrPort(b, c.RemoteRTP)
		}
		seq++
		time.Sleep(20 * time.Millisecond)
	}
	return seq
}

// Send sends an in-dialog request and returns its final answer.
func (c *Caller) Send(method, contentType, body string, timeout time.Duration, extra ...string) (*sip.Response, error) {
	if err := c.SendRaw(c.Request(method, contentType, body, extra...)); err != nil {
		return nil, err
	}
	return c.FinalFor(method, timeout)
}

// Info sends an in-dialog INFO and returns the answer's status code.
func (c *Caller) Info(contentType, body string, timeout time.Duration) (int, error) {
	if err := c.SendRaw(c.Request("INFO", contentType, body)); err != nil {
		return 0, err
	}
	res, err := c.FinalFor("INFO", timeout)
	if err != nil {
		return 0, err
	}
	return res.StatusCode, nil
}

type answer struct {
	addr  netip.AddrPort
	codec media.Codec
}

func parseAnswer(body []byte) (answer, error) {
	var a answer
	var host string
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "c=IN IP4 "):
			host = strings.TrimPrefix(line, "c=IN IP4 ")
		case strings.HasPrefix(line, "m=audio "):
			f := strings.Fields(line)
			if len(f) < 4 {
				return a, errors.New("bad m= line")
			}
			var port int
			fmt.Sscan(f[1], &port)
			a.addr = netip.AddrPortFrom(netip.MustParseAddr(host), uint16(port))
			a.codec = media.PCMU
			for _, c := range media.Codecs() {
				if f[3] == fmt.Sprint(c.PayloadType) {
					a.codec = c
				}
			}
		}
	}
	if !a.addr.IsValid() {
		return a, errors.New("no audio in answer")
	}
	return a, nil
}
