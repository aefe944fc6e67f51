package server

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// torture is one message of the set, in the spirit of RFC 4475: what it
// is, the bytes, and what a healthy UA does with it.
type torture struct {
	name string
	msg  string
	// want: "refuse" (a 4xx/5xx/6xx, or dropped: an unparseable message
	// has nowhere to send an answer), "ok" (a valid if unusual message:
	// 2xx), "drop" (no answer at all).
	want string
}

func tortures(target string) []torture {
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	hdr := func(method, callID string, extra ...string) string {
		return fmt.Sprintf("%s sip:bot@%s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-%s;rport\r\nFrom: <sip:t@127.0.0.1>;tag=f-%s\r\n"+
			"To: <sip:bot@%s>\r\nCall-ID: %s\r\nCSeq: 1 %s\r\nContact: <sip:t@127.0.0.1:5999>\r\nMax-Forwards: 70\r\n%s",
			method, target, callID, callID, target, callID, method, strings.Join(extra, ""))
	}
	body := func(h, b string) string {
		return h + "Content-Type: application/sdp\r\nContent-Length: " + strconv.Itoa(len(b)) + "\r\n\r\n" + b
	}
	return []torture{
		{"garbage", "\x00\x01\x02 not SIP at all \xff\xfe\r\n\r\n", "drop"},
		{"keepalive CRLF", "\r\n\r\n", "drop"},
		{"empty", "", "drop"},
		{"unknown SIP version", strings.Replace(hdr("OPTIONS", "v7"), "SIP/2.0\r\nVia", "SIP/7.0\r\nVia", 1) + "Content-Length: 0\r\n\r\n", "refuse"},
		{"no Call-ID", strings.Replace(body(hdr("INVITE", "nocallid"), sdp), "Call-ID: nocallid\r\n", "", 1), "refuse"},
		{"no CSeq", strings.Replace(body(hdr("INVITE", "nocseq"), sdp), "CSeq: 1 INVITE\r\n", "", 1), "refuse"},
		{"no Via", strings.Replace(body(hdr("INVITE", "novia"), sdp), "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-novia;rport\r\n", "", 1), "refuse"},
		{"CSeq method mismatch", strings.Replace(body(hdr("INVITE", "mismatch"), sdp), "CSeq: 1 INVITE", "CSeq: 1 BYE", 1), "refuse"},
		{"CSeq not a number", strings.Replace(body(hdr("INVITE", "cseqnan"), sdp), "CSeq: 1 INVITE", "CSeq: 1x INVITE", 1), "refuse"},
		// RFC 3261 §18.3: over UDP a body shorter than Content-Length is a
		// truncated message, discarded (sipgo cannot parse either).
		{"Content-Length longer than the body", hdr("INVITE", "longcl") + "Content-Type: application/sdp\r\nContent-Length: 9999\r\n\r\n" + sdp, "drop"},
		{"negative Content-Length", hdr("INVITE", "negcl") + "Content-Type: application/sdp\r\nContent-Length: -5\r\n\r\n" + sdp, "drop"},
		// Max-Forwards is a proxy's business (§16.3); a UAS may answer.
		{"Max-Forwards 0", strings.Replace(hdr("OPTIONS", "mf0"), "Max-Forwards: 70", "Max-Forwards: 0", 1) + "Content-Length: 0\r\n\r\n", "any"},
		{"unknown method", hdr("FROBNICATE", "frob") + "Content-Length: 0\r\n\r\n", "refuse"},
		{"BYE for no dialog", strings.Replace(hdr("BYE", "nodialog"), "To: <sip:bot@"+target+">", "To: <sip:bot@"+target+">;tag=nosuch", 1) + "Content-Length: 0\r\n\r\n", "refuse"},
		{"INVITE without a body", hdr("INVITE", "nobody") + "Content-Length: 0\r\n\r\n", "refuse"},
		{"INVITE with a non-SDP body", hdr("INVITE", "textbody") + "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello", "refuse"},
		{"SDP that is garbage", body(hdr("INVITE", "badsdp"), "this is not SDP\r\n"), "refuse"},
		{"SDP with only video", body(hdr("INVITE", "video"), strings.Replace(sdp, "m=audio 4000 RTP/AVP 0", "m=video 4000 RTP/AVP 96", 1)), "refuse"},
		{"SDP with 500 streams", body(hdr("INVITE", "manystreams"), sdp+strings.Repeat("m=audio 0 RTP/AVP 0\r\n", 500)), "refuse-or-ok"},
		{"SDP with a hostname", body(hdr("INVITE", "sdphost"), strings.Replace(sdp, "c=IN IP4 127.0.0.1", "c=IN IP4 pbx.example.com", 1)), "refuse"},
		{"SDP port out of range", body(hdr("INVITE", "sdpport"), strings.Replace(sdp, "4000", "99999", 1)), "refuse"},
		{"Require an extension we lack", body(hdr("INVITE", "require", "Require: nosuchext\r\n"), sdp), "refuse"},
		{"Session-Expires garbage", body(hdr("INVITE", "sebad", "Session-Expires: soon\r\n"), sdp), "refuse"},
		{"Session-Expires below Min-SE", body(hdr("INVITE", "selow", "Session-Expires: 10\r\n"), sdp), "refuse"},
		{"huge header", hdr("OPTIONS", "huge", "X-Filler: "+strings.Repeat("a", 60000)+"\r\n") + "Content-Length: 0\r\n\r\n", "refuse-or-drop"},
		{"NUL in a header", hdr("OPTIONS", "nul", "X-Nul: a\x00b\r\n") + "Content-Length: 0\r\n\r\n", "any"},
		{"INFO with a flood of digits", strings.Replace(hdr("INFO", "info"), "To: <sip:bot@"+target+">", "To: <sip:bot@"+target+">;tag=nosuch", 1) +
			"Content-Type: application/dtmf-relay\r\nContent-Length: 20\r\n\r\nSignal=1\r\nDuration=\r\n", "refuse"},
		// Valid but unusual: a UA must take these.
		{"folded header and odd whitespace", strings.Replace(hdr("OPTIONS", "fold"), "Max-Forwards: 70", "Max-Forwards:\r\n   70", 1) + "Subject  :   hi\r\nContent-Length: 0\r\n\r\n", "ok"},
		{"compact header names", fmt.Sprintf("OPTIONS sip:bot@%s SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-compact\r\nf: <sip:t@127.0.0.1>;tag=c1\r\nt: <sip:bot@%s>\r\n"+
			"i: compact\r\nCSeq: 1 OPTIONS\r\nm: <sip:t@127.0.0.1:5999>\r\nMax-Forwards: 70\r\nl: 0\r\n\r\n", target, target), "ok"},
		{"lower-case method in CSeq value and mixed-case headers", strings.Replace(hdr("OPTIONS", "case"), "Call-ID", "cAlL-iD", 1) + "Content-Length: 0\r\n\r\n", "ok"},
	}
}

// The torture set, each message on its own: every one is answered
// sensibly or dropped, none is taken as a call (no model session), and
// afterwards voicebot still answers a normal call and leaks nothing.
func TestTortureMessages(t *testing.T) {
	r := startRig(t, nil, nil)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5999})
	if err != nil {
		conn, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
	}
	defer conn.Close()
	target := r.sip.String()
	dst := net.UDPAddrFromAddrPort(r.sip)
	for _, tc := range tortures(target) {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := conn.WriteToUDP([]byte(tc.msg), dst); err != nil {
				t.Fatal(err)
			}
			// Every answer within the window counts: a refusal followed by
			// a 200 would be a call taken after all.
			var codes []int
			buf := make([]byte, 65536)
			deadline := time.Now().Add(400 * time.Millisecond)
			for {
				conn.SetReadDeadline(deadline)
				n, _, err := conn.ReadFromUDP(buf)
				if err != nil {
					break
				}
				f := strings.Fields(string(buf[:min(n, 64)]))
				if len(f) < 2 || !strings.HasPrefix(f[0], "SIP/2.0") {
					continue
				}
				if id := callIDOf(tc.msg); id != "" && callIDOf(string(buf[:n])) != id {
					continue // a late answer to an earlier message
				}
				c, _ := strconv.Atoi(f[1])
				if os.Getenv("TORTURE_DEBUG") != "" {
					t.Logf("response:\n%s", buf[:n])
				}
				if c < 200 {
					continue
				}
				codes = append(codes, c)
				if strings.HasPrefix(tc.msg, "INVITE") && len(codes) == 1 {
					// ACK the final answer, as a UAC must.
					ack := strings.Replace(strings.SplitN(tc.msg, "\r\n\r\n", 2)[0], "INVITE sip:", "ACK sip:", 1)
					ack = strings.Replace(strings.Replace(ack, "CSeq: 1 INVITE", "CSeq: 1 ACK", 1), "CSeq: 1 BYE", "CSeq: 1 ACK", 1)
					conn.WriteToUDP([]byte(ack+"\r\nContent-Length: 0\r\n\r\n"), dst)
				}
			}
			code := 0
			for _, c := range codes {
				if c < 300 || code == 0 {
					code = c // a 2xx among them is what matters
				}
			}
			if len(codes) > 1 && codes[0] != codes[len(codes)-1] {
				t.Errorf("answered %v: different finals to one request", codes)
			}
			switch ok := code >= 400; tc.want {
			case "refuse":
				if !ok && code != 0 {
					t.Errorf("answered %d, want a refusal", code)
				}
				if code == 0 && strings.HasPrefix(tc.msg, "INVITE") && strings.Contains(tc.msg, "Via:") && strings.Contains(tc.msg, "Call-ID:") && strings.Contains(tc.msg, "CSeq: 1 INVITE") {
					t.Errorf("a well-addressed INVITE got no answer")
				}
			case "refuse-or-ok":
				if code != 0 && code < 400 && code != 200 {
					t.Errorf("answered %d", code)
				}
			case "refuse-or-drop":
				if code != 0 && !ok {
					t.Errorf("answered %d", code)
				}
			case "drop":
				if code != 0 {
					t.Errorf("answered %d, want nothing", code)
				}
			case "ok":
				if code < 200 || code >= 300 {
					t.Errorf("a valid message got %d, want 2xx", code)
				}
			}
			t.Logf("answered %d", code)
		})
	}
	// A call now goes through as ever.
	c := r.caller()
	res, err := c.Invite("", 5*time.Second)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("a normal call after the torture set: %v %v", res, err)
	}
	waitFor(t, "greeting", 5*time.Second, func() bool { return rmsOf(audible(c.Received())) > 100 })
	if code, err := c.Bye(5 * time.Second); err != nil || code != 200 {
		t.Fatalf("BYE: %d %v", code, err)
	}
	if n := len(r.server.Sessions()); n > 2 {
		t.Errorf("%d model sessions: torture INVITEs reached the model", n)
	}
	if strings.Contains(r.logs.String(), "panic") {
		t.Error("a panic in the log")
	}
}

// callIDOf is a message's Call-ID value, "" if it has none.
func callIDOf(msg string) string {
	for _, line := range strings.Split(msg, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && (strings.EqualFold(strings.TrimSpace(k), "call-id") || strings.TrimSpace(k) == "i") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
