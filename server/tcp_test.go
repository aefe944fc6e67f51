package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/voicebot/voicebot/config"
)

// readSIP reads one SIP message from a stream (headers, then Content-Length bytes).
func readSIP(t *testing.T, r *bufio.Reader) *sip.Response {
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
	res, ok := msg.(*sip.Response)
	if !ok {
		t.Fatalf("expected a response, got %T", msg)
	}
	return res
}

// A call over SIP/TCP, with an external address configured: Contact and SDP
// must carry it.
func TestCallOverTCPWithExternalAddress(t *testing.T) {
	r := startRig(t, func(c *config.Config) { c.SIP.ExternalAddress = "198.51.100.7"; c.Agent.Greeting = false }, nil)
	conn, err := net.DialTimeout("tcp", r.sip.String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	rd := bufio.NewReader(conn)
	local := conn.LocalAddr().String()
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 39000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
	msg := func(method string, cseq int, toTag, body string) string {
		to := fmt.Sprintf("<sip:bot@%s>", r.sip)
		if toTag != "" {
			to += ";tag=" + toTag
		}
		ct := ""
		if body != "" {
			ct = "Content-Type: application/sdp\r\n"
		}
		return fmt.Sprintf("%s sip:bot@%s;transport=tcp SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-tcp-%d\r\nMax-Forwards: 70\r\n"+
			"From: <sip:tcp@127.0.0.1>;tag=tcp1\r\nTo: %s\r\nCall-ID: tcp-call-1\r\nCSeq: %d %s\r\nContact: <sip:tcp@%s;transport=tcp>\r\n%sContent-Length: %d\r\n\r\n%s",
			method, r.sip, local, cseq, to, cseq, method, local, ct, len(body), body)
	}
	fmt.Fprint(conn, msg("OPTIONS", 1, "", ""))
	if res := readSIP(t, rd); res.StatusCode != 200 {
		t.Fatalf("OPTIONS over TCP: %d", res.StatusCode)
	}
	fmt.Fprint(conn, msg("INVITE", 2, "", sdp))
	var ok *sip.Response
	for ok == nil {
		res := readSIP(t, rd)
		if res.StatusCode >= 200 {
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
	fmt.Fprint(conn, msg("ACK", 2, tag, ""))
	fmt.Fprint(conn, msg("BYE", 3, tag, ""))
	if res := readSIP(t, rd); res.StatusCode != 200 {
		t.Fatalf("BYE over TCP: %d", res.StatusCode)
	}
}
