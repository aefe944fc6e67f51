package sip

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/voicebot/voicebot/internal/testpeer"
	"github.com/voicebot/voicebot/outcome"
)

// readSIP reads one SIP message from a stream (headers, then Content-Length bytes).
func readSIP(t *testing.T, r *bufio.Reader) sip.Message {
	t.Helper()
	var head strings.Builder
	length := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v (so far %q)", err, head.String())
		}
		if line == "\r\n" && head.Len() == 0 {
			continue // keep-alive CRLF
		}
		head.WriteString(line)
		if l := strings.ToLower(line); strings.HasPrefix(l, "content-length:") {
			length, _ = strconv.Atoi(strings.TrimSpace(line[len("content-length:"):]))
		}
		if line == "\r\n" {
			break
		}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatal(err)
	}
	msg, err := sip.ParseMessage(append([]byte(head.String()), body...))
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// readResponse reads messages from a stream until a response.
func readResponse(t *testing.T, r *bufio.Reader) *sip.Response {
	t.Helper()
	for {
		if res, ok := readSIP(t, r).(*sip.Response); ok {
			return res
		}
	}
}

// streamRequest is a request over a stream transport (TCP, TLS).
func streamRequest(transport string, target, local net.Addr, method string, cseq int, toTag, body string) string {
	to := fmt.Sprintf("<sip:bot@%s>", target)
	if toTag != "" {
		to += ";tag=" + toTag
	}
	ct := ""
	if body != "" {
		ct = "Content-Type: application/sdp\r\n"
	}
	lower := strings.ToLower(transport)
	// Each request a transaction of its own (the ACK of a 2xx too).
	return fmt.Sprintf("%s sip:bot@%s;transport=%s SIP/2.0\r\nVia: SIP/2.0/%s %s;branch=z9hG4bK-%s-%d-%s\r\nMax-Forwards: 70\r\n"+
		"From: <sip:stream@127.0.0.1>;tag=s1\r\nTo: %s\r\nCall-ID: stream-call-1\r\nCSeq: %d %s\r\nContact: <sip:stream@%s;transport=%s>\r\n%sContent-Length: %d\r\n\r\n%s",
		method, target, lower, transport, local, lower, cseq, strings.ToLower(method), to, cseq, method, local, lower, ct, len(body), body)
}

// A call over SIP/TCP with an external address configured: Contact and SDP
// carry it, Contact with transport=tcp.
func TestCallOverTCPWithExternalAddress(t *testing.T) {
	r := newRig(t, Config{Transports: []string{"udp", "tcp"}, ExternalHost: "198.51.100.7"}, nil)
	conn, err := net.DialTimeout("tcp", r.ua.Addr().String(), wait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wait))
	rd := bufio.NewReader(conn)
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 39000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
	req := func(method string, cseq int, toTag, body string) {
		fmt.Fprint(conn, streamRequest("TCP", conn.RemoteAddr(), conn.LocalAddr(), method, cseq, toTag, body))
	}
	req("OPTIONS", 1, "", "")
	if res := readResponse(t, rd); res.StatusCode != 200 {
		t.Fatalf("OPTIONS over TCP: %d", res.StatusCode)
	}
	req("INVITE", 2, "", sdp)
	var ok *sip.Response
	for ok == nil {
		if res := readResponse(t, rd); res.StatusCode >= 200 {
			ok = res
		}
	}
	if ok.StatusCode != 200 {
		t.Fatalf("INVITE over TCP: %d %s", ok.StatusCode, ok.Reason)
	}
	body := string(ok.Body())
	if !strings.Contains(body, "c=IN IP4 198.51.100.7") || !strings.Contains(body, "RTP/AVP 8") {
		t.Errorf("SDP answer does not carry the external address and PCMA:\n%s", body)
	}
	contact := ok.Contact()
	if contact == nil || contact.Address.Host != "198.51.100.7" || !strings.Contains(contact.Address.String(), "transport=tcp") {
		t.Errorf("Contact %v: want the external address with transport=tcp", contact)
	}
	tag, _ := ok.To().Params.Get("tag")
	req("ACK", 2, tag, "")
	rec := r.call()
	if err := rec.answer(t); err != nil {
		t.Fatalf("Answer: %v", err)
	}
	if rec.call.Transport() != "TCP" {
		t.Errorf("transport %s", rec.call.Transport())
	}
	req("BYE", 3, tag, "")
	if res := readResponse(t, rd); res.StatusCode != 200 {
		t.Fatalf("BYE over TCP: %d", res.StatusCode)
	}
	if why := rec.ended(t); why != EndRemoteBye {
		t.Errorf("ended %q", why)
	}
}

// selfSigned is a TLS certificate for 127.0.0.1.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "voicebot test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// SIP over TLS: served on its own address, which our Contact names.
func TestTLS(t *testing.T) {
	r := newRig(t, Config{TLS: &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}, TLSListen: netip.MustParseAddrPort("127.0.0.1:0")}, nil)
	addr := r.ua.TLSAddr()
	if !addr.IsValid() || addr.Port() == 0 {
		t.Fatalf("TLS address %v", addr)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", addr.String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wait))
	rd := bufio.NewReader(conn)
	fmt.Fprint(conn, streamRequest("TLS", conn.RemoteAddr(), conn.LocalAddr(), "OPTIONS", 1, "", ""))
	if res := readResponse(t, rd); res.StatusCode != 200 {
		t.Fatalf("OPTIONS over TLS: %d", res.StatusCode)
	}
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 39000 RTP/AVP 0\r\n"
	fmt.Fprint(conn, streamRequest("TLS", conn.RemoteAddr(), conn.LocalAddr(), "INVITE", 2, "", sdp))
	var ok *sip.Response
	for ok == nil {
		if res := readResponse(t, rd); res.StatusCode >= 200 {
			ok = res
		}
	}
	if ct := ok.Contact(); ok.StatusCode != 200 || ct == nil || ct.Address.Port != int(addr.Port()) || !strings.Contains(ct.Address.String(), "transport=tls") {
		t.Fatalf("INVITE over TLS: %d, Contact %v", ok.StatusCode, ct)
	}
	tag, _ := ok.To().Params.Get("tag")
	fmt.Fprint(conn, streamRequest("TLS", conn.RemoteAddr(), conn.LocalAddr(), "ACK", 2, tag, ""))
	rec := r.call()
	if err := rec.answer(t); err != nil {
		t.Fatalf("Answer: %v", err)
	}
	fmt.Fprint(conn, streamRequest("TLS", conn.RemoteAddr(), conn.LocalAddr(), "BYE", 3, tag, ""))
	if res := readResponse(t, rd); res.StatusCode != 200 {
		t.Fatalf("BYE over TLS: %d", res.StatusCode)
	}
	rec.ended(t)
}

// The SRTP policy on a running UA: required refuses plain
// RTP, off refuses RTP/SAVP, each with 488 and the reason in a Warning;
// an SRTP answer carries our key.
func TestSRTPPolicyOnTheWire(t *testing.T) {
	savp := func(c *testpeer.Caller) string {
		o := strings.Replace(c.Offer(), "RTP/AVP", "RTP/SAVP", 1)
		return o + "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd\r\n"
	}
	for _, tc := range []struct {
		name   string
		policy SRTPPolicy
		secure bool
		want   int
	}{{"required, plain offer", SRTPRequired, false, 488}, {"off, SRTP offer", SRTPOff, true, 488},
		{"optional, SRTP offer", SRTPOptional, true, 200}, {"required, SRTP offer", SRTPRequired, true, 200}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, Config{SRTP: tc.policy}, nil)
			c := r.caller()
			body := c.Offer()
			if tc.secure {
				body = savp(c)
			}
			res, err := c.Invite(body, wait)
			if err != nil || res.StatusCode != tc.want {
				t.Fatalf("%v %v, want %d", res, err, tc.want)
			}
			if tc.want != 200 {
				if w := header(res, "Warning"); !strings.Contains(w, "srtp") {
					t.Errorf("488 without the reason: %q", w)
				}
				r.noCall()
				return
			}
			rec := r.call()
			key := rec.call.Media().SRTP
			if key == nil || len(key.Local) != 30 || key.Suite != SuiteAES128SHA1_80 {
				t.Fatalf("keying %+v", key)
			}
			if ans := string(res.Body()); !strings.Contains(ans, "RTP/SAVP") || !strings.Contains(ans, "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:") {
				t.Errorf("answer is not SRTP:\n%s", ans)
			}
			// A re-INVITE keeps our key: the encryption does not restart.
			reinvite(t, c, strings.Replace(savp(c), "o=testpeer 1 1", "o=testpeer 1 2", 1))
			if e := rec.event(t); e.Media == nil || e.Media.SRTP == nil || string(e.Media.SRTP.Local) != string(key.Local) {
				t.Errorf("the re-INVITE changed our key: %+v", e.Media)
			}
		})
	}
}

// With SRTP required, our outbound offer is RTP/SAVP with our key; a plain
// answer is unusable: the call is hung up.
func TestOutboundSRTPRequired(t *testing.T) {
	r, p := calling(t, nil, Config{SRTP: SRTPRequired})
	rec := r.place(PlaceRequest{To: "5551234"})
	var ce *CallError
	if err := rec.answer(t); err == nil || !errors.As(err, &ce) || ce.Code != 488 {
		t.Errorf("Answer: %v, want a 488 failure", err)
	}
	inv := p.Invites()[0]
	if body := string(inv.Body()); !strings.Contains(body, "RTP/SAVP") || !strings.Contains(body, "a=crypto:") {
		t.Errorf("offer:\n%s", body)
	}
	requestFrom(t, p.Requests, "BYE", 1)
	if why := rec.ended(t); why != EndRejected || rec.call.Outcome().Outcome != outcome.Rejected || rec.call.Outcome().SIPCode != 488 {
		t.Errorf("ended %q", why)
	}
}
