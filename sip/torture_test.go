package sip

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// torture is one message of the set, in the spirit of RFC 4475: what it
// is, the bytes, and what a healthy UA does with it.
type torture struct {
	name string
	msg  string
	// want: "refuse" (a 4xx/5xx/6xx, or dropped: an unparseable message
	// has nowhere to send an answer), "ok" (a valid if unusual message:
	// 2xx), "drop" (no answer at all), "any".
	want string
}

func tortures(target, from string) []torture {
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	hdr := func(method, callID string, extra ...string) string {
		return fmt.Sprintf("%s sip:bot@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s;rport\r\nFrom: <sip:t@127.0.0.1>;tag=f-%s\r\n"+
			"To: <sip:bot@%s>\r\nCall-ID: %s\r\nCSeq: 1 %s\r\nContact: <sip:t@%s>\r\nMax-Forwards: 70\r\n%s",
			method, target, from, callID, callID, target, callID, method, from, strings.Join(extra, ""))
	}
	body := func(h, b string) string {
		return h + "Content-Type: application/sdp\r\nContent-Length: " + strconv.Itoa(len(b)) + "\r\n\r\n" + b
	}
	return []torture{
		{"garbage", "\x00\x01\x02 not SIP at all \xff\xfe\r\n\r\n", "drop"},
		{"keepalive CRLF", "\r\n\r\n", "drop"},
		{"empty", "", "drop"},
		{"unknown SIP version", strings.Replace(hdr("OPTIONS", "v7"), "SIP/2.0\r\nVia", "SIP/7.0\r\nVia", 1) + "Content-Length: 0\r\n\r\n", "refuse"},
		{"lower-case SIP version (RFC 3261 §7.1: case-insensitive)", strings.Replace(hdr("OPTIONS", "vlower"), "SIP/2.0\r\nVia", "sip/2.0\r\nVia", 1) + "Content-Length: 0\r\n\r\n", "ok"},
		{"no Call-ID", strings.Replace(body(hdr("INVITE", "nocallid"), sdp), "Call-ID: nocallid\r\n", "", 1), "refuse"},
		{"no CSeq", strings.Replace(body(hdr("INVITE", "nocseq"), sdp), "CSeq: 1 INVITE\r\n", "", 1), "refuse"},
		{"no Via", strings.Replace(body(hdr("INVITE", "novia"), sdp), "Via: SIP/2.0/UDP "+from+";branch=z9hG4bK-novia;rport\r\n", "", 1), "refuse"},
		{"no Contact", strings.Replace(body(hdr("INVITE", "nocontact"), sdp), "Contact: <sip:t@"+from+">\r\n", "", 1), "refuse"},
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
		{"SDP with 500 streams", body(hdr("INVITE", "manystreams"), sdp+strings.Repeat("m=audio 0 RTP/AVP 0\r\n", 500)), "any"},
		{"SDP with a hostname", body(hdr("INVITE", "sdphost"), strings.Replace(sdp, "c=IN IP4 127.0.0.1", "c=IN IP4 pbx.example.com", 1)), "refuse"},
		{"SDP port out of range", body(hdr("INVITE", "sdpport"), strings.Replace(sdp, "4000", "99999", 1)), "refuse"},
		{"Require an extension we lack", body(hdr("INVITE", "require", "Require: nosuchext\r\n"), sdp), "refuse"},
		{"Session-Expires garbage", body(hdr("INVITE", "sebad", "Session-Expires: soon\r\n"), sdp), "refuse"},
		{"Session-Expires below Min-SE", body(hdr("INVITE", "selow", "Session-Expires: 10\r\n"), sdp), "refuse"},
		{"huge header", hdr("OPTIONS", "huge", "X-Filler: "+strings.Repeat("a", 60000)+"\r\n") + "Content-Length: 0\r\n\r\n", "refuse-or-drop"},
		{"NUL in a header", hdr("OPTIONS", "nul", "X-Nul: a\x00b\r\n") + "Content-Length: 0\r\n\r\n", "refuse"},
		{"INFO for no dialog", strings.Replace(hdr("INFO", "info"), "To: <sip:bot@"+target+">", "To: <sip:bot@"+target+">;tag=nosuch", 1) +
			"Content-Type: application/dtmf-relay\r\nContent-Length: 20\r\n\r\nSignal=1\r\nDuration=\r\n", "refuse"},
		{"ACK for nothing", hdr("ACK", "strayack") + "Content-Length: 0\r\n\r\n", "drop"},
		// Valid but unusual: a UA must take these.
		{"folded header and odd whitespace", strings.Replace(hdr("OPTIONS", "fold"), "Max-Forwards: 70", "Max-Forwards:\r\n   70", 1) + "Subject  :   hi\r\nContent-Length: 0\r\n\r\n", "ok"},
		{"compact header names", fmt.Sprintf("OPTIONS sip:bot@%s SIP/2.0\r\nv: SIP/2.0/UDP %s;branch=z9hG4bK-compact\r\nf: <sip:t@127.0.0.1>;tag=c1\r\nt: <sip:bot@%s>\r\n"+
			"i: compact\r\nCSeq: 1 OPTIONS\r\nm: <sip:t@%s>\r\nMax-Forwards: 70\r\nl: 0\r\n\r\n", target, from, target, from), "ok"},
		{"mixed-case header names", strings.Replace(hdr("OPTIONS", "case"), "Call-ID", "cAlL-iD", 1) + "Content-Length: 0\r\n\r\n", "ok"},
	}
}

// The torture set, each message on its own: every one is answered
// sensibly or dropped, none reaches the handler, and afterwards the UA still
// answers a normal call.
func TestTortureMessages(t *testing.T) {
	r := newRig(t, Config{}, func(ctx context.Context, c *Call, rec *callRecord) {
		if c.FromUser() == "tester" { // the normal call at the end
			answerAndHold(ctx, c, rec)
			return
		}
		_ = c.Reject(606, "Not Acceptable (reached the handler)")
	})
	p := r.raw()
	for _, tc := range tortures(r.ua.Addr().String(), p.addr().String()) {
		t.Run(tc.name, func(t *testing.T) {
			p.t = t
			p.send(tc.msg)
			// Every answer within the window counts: a refusal followed by
			// a 200 would be a call taken after all.
			var codes []int
			id := callIDOf(tc.msg)
			// Wait for the answer a well-formed request must get; where none
			// may come, a while; after a final answer, a little for more.
			deadline := time.Now().Add(300 * time.Millisecond)
			if tc.want == "ok" || (tc.want == "refuse" && wellFormed.MatchString(tc.msg)) {
				deadline = time.Now().Add(wait)
			}
			for {
				m := p.read(time.Until(deadline))
				if m == nil {
					break
				}
				res, ok := m.(*sip.Response)
				if !ok || (id != "" && (res.CallID() == nil || res.CallID().Value() != id)) {
					continue // a late answer to an earlier message
				}
				if res.StatusCode < 200 {
					continue
				}
				if os.Getenv("TORTURE_DEBUG") != "" {
					t.Logf("response:\n%s", res)
				}
				codes = append(codes, res.StatusCode)
				if res.CSeq() != nil && res.CSeq().MethodName == sip.INVITE && res.CallID() != nil && res.Via() != nil && len(codes) == 1 {
					p.ackFailure(res)
				}
				deadline = time.Now().Add(100 * time.Millisecond)
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
			switch refused := code >= 400; tc.want {
			case "refuse":
				if !refused && code != 0 {
					t.Errorf("answered %d, want a refusal", code)
				}
				if code == 0 && strings.HasPrefix(tc.msg, "INVITE") && strings.Contains(tc.msg, "Via:") && strings.Contains(tc.msg, "Call-ID:") && strings.Contains(tc.msg, "CSeq: 1 INVITE") {
					t.Errorf("a well-addressed INVITE got no answer")
				}
				if code == 606 {
					t.Errorf("it reached the handler")
				}
			case "refuse-or-drop":
				if code != 0 && !refused {
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
			t.Logf("answered %v", codes)
		})
	}
	p.t = t
	// At most the SDP with 500 streams (a valid offer) reached the handler.
	for len(r.calls) > 0 {
		if rec := <-r.calls; rec.call.ID() != "manystreams" {
			t.Errorf("%s reached the handler", rec.call.ID())
		}
	}
	c := r.caller()
	_, rec := r.established(c)
	if code, err := c.Bye(wait); err != nil || code != 200 {
		t.Fatalf("BYE: %d %v", code, err)
	}
	rec.ended(t)
	if strings.Contains(r.logs.String(), "panic") {
		t.Error("a panic in the log")
	}
}

// wellFormed matches a request with what an answer needs: a Via, a Call-ID
// and a CSeq.
var wellFormed = regexp.MustCompile(`(?s)^[A-Z]+ sip:\S+ SIP/2\.0\r\n.*Via: .*Call-ID: .*CSeq: \d+ [A-Z]+\r\n`)

// callIDOf is a message's Call-ID value, "" if it has none.
func callIDOf(msg string) string {
	for _, line := range strings.Split(msg, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && (strings.EqualFold(strings.TrimSpace(k), "call-id") || strings.TrimSpace(k) == "i") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
