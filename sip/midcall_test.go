package sip

import (
	"context"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/voicebot/voicebot/internal/testpeer"
)

// sdpVersion is the version of an SDP body's o= line.
func sdpVersion(t *testing.T, body []byte) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^o=\S+ \d+ (\d+) `).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no o= line in\n%s", body)
	}
	return string(m[1])
}

// reinvite sends a re-INVITE from c and waits for its 200 (c acknowledges
// it). A 491 is tried again, as a phone would: the UA handles each request
// in a goroutine of its own, so the previous re-INVITE's ACK, although sent
// first, may not have been taken yet.
func reinvite(t *testing.T, c *testpeer.Caller, body string, extra ...string) *sip.Response {
	t.Helper()
	var res *sip.Response
	waitFor(t, "a re-INVITE taken", func() bool {
		var err error
		res, err = c.Invite(body, wait, extra...)
		if err != nil || (res.StatusCode != 200 && res.StatusCode != 491) {
			t.Fatalf("re-INVITE: %v %v", res, err)
		}
		return res.StatusCode == 200
	})
	return res
}

// Hold, resume and a move by re-INVITE: each answer says what we do now,
// the handler is told of the new media, and our SDP version goes up only
// when our SDP changes.
func TestReinviteHoldResumeAndMove(t *testing.T) {
	r := newRig(t, Config{}, nil)
	c := r.caller()
	res, rec := r.established(c)
	if v := sdpVersion(t, res.Body()); v != "1" {
		t.Errorf("first answer's version %s", v)
	}

	res = reinvite(t, c, c.OfferAt(c.RTPAddr(), "sendonly", 2))
	if !strings.Contains(string(res.Body()), "a=recvonly") || sdpVersion(t, res.Body()) != "2" {
		t.Errorf("hold answered:\n%s", res.Body())
	}
	if ct := res.Contact(); ct == nil || header(res, "Allow") != allowMethods {
		t.Errorf("re-INVITE 200 without Contact or Allow")
	}
	if e := rec.event(t); e.Media == nil || !e.Media.OnHold() || e.Media.Direction != "recvonly" || e.Early {
		t.Errorf("hold event %+v", e)
	}
	if !rec.call.Media().OnHold() {
		t.Error("the call's media is not on hold")
	}

	// The same offer again (a refresh): same answer, same version.
	res = reinvite(t, c, c.OfferAt(c.RTPAddr(), "sendonly", 2))
	if sdpVersion(t, res.Body()) != "2" {
		t.Errorf("an unchanged answer's version went up:\n%s", res.Body())
	}
	rec.event(t)

	res = reinvite(t, c, c.OfferAt(c.RTPAddr(), "sendrecv", 3))
	if !strings.Contains(string(res.Body()), "a=sendrecv") || sdpVersion(t, res.Body()) != "3" {
		t.Errorf("resume answered:\n%s", res.Body())
	}
	if e := rec.event(t); e.Media == nil || e.Media.OnHold() {
		t.Errorf("resume event %+v", e)
	}

	moved := netip.MustParseAddrPort("127.0.0.1:41000")
	reinvite(t, c, offer(moved, "sendrecv", 4))
	if e := rec.event(t); e.Media == nil || e.Media.Remote != moved || e.Media.Codec.Name != "PCMU" {
		t.Errorf("move event %+v", e)
	}
	if got := rec.call.Media().Remote; got != moved {
		t.Errorf("the call's media is at %v", got)
	}
	// The old RFC 2543 hold: c=0.0.0.0.
	reinvite(t, c, offer(netip.MustParseAddrPort("0.0.0.0:41000"), "sendrecv", 5))
	if e := rec.event(t); e.Media == nil || !e.Media.OnHold() || e.Media.Direction != "inactive" {
		t.Errorf("c=0.0.0.0 hold event %+v", e)
	}
}

// The codec in use is kept when a new offer still has it, even if the
// offer prefers another.
func TestReinviteKeepsTheCodec(t *testing.T) {
	r := newRig(t, Config{Codecs: []Codec{pcma, pcmu}}, nil)
	c := r.caller()
	_, rec := r.established(c)
	if got := rec.call.Media().Codec.Name; got != "PCMA" {
		t.Fatalf("codec %s, want PCMA (ours first)", got)
	}
	a := c.RTPAddr()
	both := "v=0\r\no=p 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio " + strconv.Itoa(int(a.Port())) +
		" RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
	res := reinvite(t, c, both)
	if !strings.Contains(string(res.Body()), "RTP/AVP 8") {
		t.Errorf("codec changed mid-call:\n%s", res.Body())
	}
	rec.event(t)
}

// UPDATE with an offer is answered in its 2xx; without a body it is a
// refresh answered without SDP.
func TestUpdate(t *testing.T) {
	r := newRig(t, Config{}, nil)
	c := r.caller()
	_, rec := r.established(c)
	res, err := c.Send("UPDATE", "application/sdp", c.OfferAt(c.RTPAddr(), "inactive", 2), wait)
	if err != nil || res.StatusCode != 200 || header(res, "Content-Type") != "application/sdp" || !strings.Contains(string(res.Body()), "a=inactive") {
		t.Fatalf("UPDATE with an offer: %v %v", res, err)
	}
	if e := rec.event(t); e.Media == nil || e.Media.Direction != "inactive" {
		t.Errorf("event %+v", e)
	}
	res, err = c.Send("UPDATE", "", "", wait)
	if err != nil || res.StatusCode != 200 || len(res.Body()) != 0 || res.Contact() == nil {
		t.Fatalf("UPDATE without a body: %v %v", res, err)
	}
	select {
	case e := <-rec.events:
		t.Errorf("an UPDATE without an offer told the handler %+v", e)
	default:
	}
}

// A re-INVITE without an offer gets our offer in the 200 OK; the answer in
// the ACK moves the media. An unusable answer there ends the call.
func TestOfferlessReinvite(t *testing.T) {
	r := newRig(t, Config{}, nil)
	c := r.caller()
	_, rec := r.established(c)
	res := send(t, c, "INVITE", "", "")
	if res.StatusCode != 200 || !strings.Contains(string(res.Body()), "m=audio 40000 RTP/AVP") {
		t.Fatalf("offerless re-INVITE: %v", res)
	}
	moved := netip.MustParseAddrPort("127.0.0.1:41002")
	if err := c.SendRaw(c.Request("ACK", "application/sdp", offer(moved, "sendrecv", 2))); err != nil {
		t.Fatal(err)
	}
	if e := rec.event(t); e.Media == nil || e.Media.Remote != moved {
		t.Errorf("event %+v, want the media at %v", e, moved)
	}

	if res := sendTaken(t, c, "INVITE", "", ""); res.StatusCode != 200 {
		t.Fatalf("second offerless re-INVITE: %v", res)
	}
	if err := c.SendRaw(c.Request("ACK", "application/sdp", "v=0\r\nnot an answer\r\n")); err != nil {
		t.Fatal(err)
	}
	requestFrom(t, c.RequestsOf, "BYE", 1)
	if why := rec.ended(t); why != EndError {
		t.Errorf("ended %q, want %q", why, EndError)
	}
}

// Mid-call requests the UA cannot take get their answers, and the call goes
// on as it was.
func TestBadMidCallRequests(t *testing.T) {
	r := newRig(t, Config{}, nil)
	c := r.caller()
	_, rec := r.established(c)
	before := rec.call.Media()
	g729 := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"
	for _, tc := range []struct {
		name, method, ct, body string
		extra                  []string
		code                   int
		header, value          string
	}{
		{"re-INVITE without a common codec", "INVITE", "application/sdp", g729, nil, 488, "", ""},
		{"re-INVITE requiring 100rel", "INVITE", "application/sdp", "offer", []string{"Require: 100rel"}, 420, "Unsupported", "100rel"},
		{"re-INVITE with a short session", "INVITE", "application/sdp", "offer", []string{"Supported: timer", "Session-Expires: 30"}, 422, "Min-SE", "90"},
		{"UPDATE with a bad Session-Expires", "UPDATE", "", "", []string{"Session-Expires: 90;refresher=both"}, 400, "", ""},
		{"UPDATE with garbage SDP", "UPDATE", "application/sdp", "not sdp at all", nil, 488, "", ""},
		{"REFER asked of us", "REFER", "", "", []string{"Refer-To: <sip:elsewhere@127.0.0.1>"}, 603, "", ""},
		{"NOTIFY of another package", "NOTIFY", "text/plain", "x", []string{"Event: presence"}, 489, "Allow-Events", "refer"},
		{"NOTIFY without a status line", "NOTIFY", "message/sipfrag", "garbage", []string{"Event: refer"}, 200, "", ""},
		{"INFO of another type", "INFO", "text/plain", "5", nil, 415, "Accept", "application/dtmf-relay"},
		{"INFO without a key", "INFO", "application/dtmf-relay", "Duration=160", nil, 400, "", ""},
	} {
		body := tc.body
		if body == "offer" {
			body = c.Offer()
		}
		res := sendTaken(t, c, tc.method, tc.ct, body, tc.extra...)
		if res.StatusCode != tc.code {
			t.Errorf("%s: %v, want %d", tc.name, res, tc.code)
			continue
		}
		if tc.header != "" && !strings.Contains(header(res, tc.header), tc.value) {
			t.Errorf("%s: %s %q", tc.name, tc.header, header(res, tc.header))
		}
	}
	select {
	case e := <-rec.events:
		t.Errorf("the handler was told %+v", e)
	default:
	}
	if rec.call.Media() != before || rec.call.EndReason() != "" {
		t.Errorf("the call changed: %+v %q", rec.call.Media(), rec.call.EndReason())
	}
	if code, err := c.Bye(wait); err != nil || code != 200 {
		t.Errorf("BYE: %d %v", code, err)
	}
}

// Keys sent as SIP INFO reach the handler, in either body format; an empty
// INFO is a keep-alive.
func TestInfoKeys(t *testing.T) {
	r := newRig(t, Config{}, nil)
	c := r.caller()
	_, rec := r.established(c)
	for _, tc := range []struct {
		ct, body string
		key      rune
	}{
		{"application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", '5'},
		{"application/dtmf-relay; charset=x", "Signal=11\r\nDuration=160\r\n", '#'},
		{"application/dtmf", "*", '*'},
		{"", "", 0},
	} {
		if code, err := c.Info(tc.ct, tc.body, wait); err != nil || code != 200 {
			t.Fatalf("INFO %q: %d %v", tc.body, code, err)
		}
		if tc.key == 0 {
			continue
		}
		if e := rec.event(t); e.Key != tc.key || e.Media != nil {
			t.Errorf("INFO %q: event %+v, want key %q", tc.body, e, tc.key)
		}
	}
	select {
	case e := <-rec.events:
		t.Errorf("a keep-alive INFO told the handler %+v", e)
	default:
	}
}

// A re-INVITE while another is in progress (its 200 not yet acknowledged)
// gets 491, and so does an UPDATE with an offer; an UPDATE without one is
// a refresh and goes through.
func TestReinviteGlare(t *testing.T) {
	r := newRig(t, Config{}, nil)
	c := r.caller()
	r.established(c)
	first := string(c.Request("INVITE", "application/sdp", c.OfferAt(c.RTPAddr(), "sendonly", 2)))
	if err := c.SendRaw([]byte(first)); err != nil {
		t.Fatal(err)
	}
	if res, err := c.FinalFor("INVITE", wait); err != nil || res.StatusCode != 200 {
		t.Fatalf("first re-INVITE: %v %v", res, err)
	}
	if res := send(t, c, "INVITE", "application/sdp", c.OfferAt(c.RTPAddr(), "sendrecv", 3)); res.StatusCode != 491 || header(res, "Retry-After") == "" {
		t.Errorf("re-INVITE during a re-INVITE: %v, want 491 with Retry-After", res)
	}
	if res := send(t, c, "UPDATE", "application/sdp", c.OfferAt(c.RTPAddr(), "sendrecv", 3)); res.StatusCode != 491 {
		t.Errorf("UPDATE with an offer during a re-INVITE: %v, want 491", res)
	}
	if res := send(t, c, "UPDATE", "", ""); res.StatusCode != 200 {
		t.Errorf("UPDATE without an offer during a re-INVITE: %v, want 200", res)
	}
	// The first re-INVITE's ACK, at last: the next one goes through.
	cseq := regexp.MustCompile(`CSeq: (\d+) INVITE`).FindStringSubmatch(first)[1]
	ack := regexp.MustCompile(`CSeq: \d+ ACK`).ReplaceAllString(string(c.Request("ACK", "", "")), "CSeq: "+cseq+" ACK")
	if err := c.SendRaw([]byte(ack)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the re-INVITE over", func() bool {
		res := send(t, c, "INVITE", "application/sdp", c.OfferAt(c.RTPAddr(), "sendrecv", 4))
		if res.StatusCode != 200 && res.StatusCode != 491 {
			t.Fatalf("re-INVITE after the ACK: %v", res)
		}
		if res.StatusCode == 200 {
			_ = c.SendRaw(c.Request("ACK", "", ""))
		}
		return res.StatusCode == 200
	})
}

// A re-INVITE's 200 OK that is never acknowledged ends the call.
func TestReinviteWithoutAck(t *testing.T) {
	r := newRig(t, Config{AckTimeout: 500 * time.Millisecond}, nil)
	c := r.caller()
	_, rec := r.established(c)
	if err := c.SendRaw(c.Request("INVITE", "application/sdp", c.Offer())); err != nil {
		t.Fatal(err)
	}
	requestFrom(t, c.RequestsOf, "BYE", 1)
	if why := rec.ended(t); why != EndAckTimeout {
		t.Errorf("ended %q", why)
	}
}

// A dialog set up through a proxy that Record-Routes: our requests go to
// the proxy with the route set, addressed to the caller's Contact.
func TestRecordRouteIsFollowed(t *testing.T) {
	hangup := make(chan struct{})
	r := newRig(t, Config{}, func(ctx context.Context, c *Call, rec *callRecord) {
		rec.answered <- c.Answer(ctx, fakeRTPPort)
		select {
		case <-hangup:
			_ = c.Hangup()
		case <-ctx.Done():
		}
	})
	proxy := r.caller() // a peer that answers whatever it is sent
	route := "<sip:proxy@" + proxy.SIP.LocalAddr().String() + ";lr>"
	c := r.caller()
	r.established(c, "Record-Route: "+route)
	close(hangup)
	bye := requestFrom(t, proxy.RequestsOf, "BYE", 1)
	if got := header(bye, "Route"); got != route {
		t.Errorf("BYE Route %q, want %q", got, route)
	}
	if bye.Recipient.User != "tester" || bye.Recipient.HostPort() != c.SIP.LocalAddr().String() {
		t.Errorf("BYE Request-URI %s, want the caller's Contact", bye.Recipient.String())
	}
	if n := len(c.RequestsOf("BYE")); n != 0 {
		t.Errorf("%d BYEs went around the proxy", n)
	}
}
