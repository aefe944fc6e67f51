package server

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/internal/testpeer"
)

// call places a call from c and fails the test unless it is answered.
func call(t *testing.T, c *testpeer.Caller, extra ...string) *sip.Response {
	t.Helper()
	res, err := c.Invite("", 5*time.Second, extra...)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	return res
}

// packetsBetween counts the RTP packets that arrived in [from, to).
func packetsBetween(pkts []testpeer.Packet, from, to time.Time) int {
	n := 0
	for _, p := range pkts {
		if !p.At.Before(from) && p.At.Before(to) {
			n++
		}
	}
	return n
}

// A re-INVITE with sendonly puts the call on hold: voicebot answers
// recvonly and sends nothing, and what the caller sends (music on hold)
// does not reach the model; a re-INVITE with sendrecv resumes, with the
// stream's sequence numbers carrying on.
func TestHoldAndResume(t *testing.T) {
	r := startRig(t, func(c *config.Config) { c.Agent.Greeting = false }, nil)
	c := r.caller()
	call(t, c)
	waitFor(t, "RTP", 3*time.Second, func() bool { return len(c.Received()) > 10 })
	sess := r.server.Sessions()[0]

	res, err := c.Invite(c.OfferAt(c.RTPAddr(), "sendonly", 2), 5*time.Second)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("hold re-INVITE: %v %v", res, err)
	}
	if !strings.Contains(string(res.Body()), "a=recvonly") {
		t.Errorf("hold answered without recvonly:\n%s", res.Body())
	}
	held := time.Now()
	appends := sess.Appends()
	c.SendAudio(testpeer.Speech(1.0, 1), 1, 0, 7) // music on hold, or anything
	time.Sleep(300 * time.Millisecond)
	if n := packetsBetween(c.Received(), held.Add(100*time.Millisecond), time.Now()); n != 0 {
		t.Errorf("%d RTP packets sent while on hold", n)
	}
	if sess.Appends() != appends || sess.SpeechStarts() != 0 {
		t.Errorf("caller audio on hold reached the model (%d appends)", sess.Appends()-appends)
	}
	before := c.Received()
	res, err = c.Invite(c.OfferAt(c.RTPAddr(), "sendrecv", 3), 5*time.Second)
	if err != nil || res.StatusCode != 200 || !strings.Contains(string(res.Body()), "a=sendrecv") {
		t.Fatalf("resume re-INVITE: %v %v", res, err)
	}
	waitFor(t, "RTP after resume", 3*time.Second, func() bool { return len(c.Received()) > len(before)+10 })
	pkts := c.Received()
	last, next := before[len(before)-1].Header, pkts[len(before)].Header
	if next.SequenceNumber != last.SequenceNumber+1 || next.SSRC != last.SSRC {
		t.Errorf("the stream did not carry on after hold: seq %d→%d", last.SequenceNumber, next.SequenceNumber)
	}
	if next.Timestamp-last.Timestamp < 8000 {
		t.Errorf("timestamps do not show the hold: +%d", next.Timestamp-last.Timestamp)
	}
	_, _ = c.Bye(5 * time.Second)
	waitFor(t, "hold logs", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), "call: off hold") })
}

// A re-INVITE with a new address moves the stream there.
func TestReinviteMovesMedia(t *testing.T) {
	r := startRig(t, func(c *config.Config) { c.Agent.Greeting = false }, nil)
	c := r.caller()
	call(t, c)
	moved, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer moved.Close()
	res, err := c.Invite(c.OfferAt(moved.LocalAddr().(*net.UDPAddr).AddrPort(), "sendrecv", 2), 5*time.Second)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("re-INVITE: %v %v", res, err)
	}
	_ = moved.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1500)
	if n, _, err := moved.ReadFromUDP(buf); err != nil || n < 12 {
		t.Fatalf("no RTP at the new address: %v", err)
	}
	_, _ = c.Bye(5 * time.Second)
}

// Session timers, the peer refreshing: the 2xx names the caller refresher,
// a refresh (UPDATE) keeps the call, and when refreshes stop voicebot hangs
// up before the interval runs out.
func TestSessionTimerPeerRefreshes(t *testing.T) {
	r := startRig(t, func(c *config.Config) {
		c.Agent.Greeting = false
		c.SIP.MinSE = config.Duration(3 * time.Second)
		c.SIP.SessionExpires = config.Duration(3 * time.Second)
	}, nil)
	c := r.caller()
	res := call(t, c, "Supported: timer", "Session-Expires: 3;refresher=uac")
	if se := res.GetHeader("Session-Expires"); se == nil || se.Value() != "3;refresher=uac" {
		t.Fatalf("200 OK Session-Expires %v", se)
	}
	if rq := res.GetHeader("Require"); rq == nil || rq.Value() != "timer" {
		t.Errorf("200 OK without Require: timer")
	}
	time.Sleep(1500 * time.Millisecond)
	up, err := c.Send("UPDATE", "", "", 3*time.Second, "Supported: timer", "Session-Expires: 3;refresher=uac")
	if err != nil || up.StatusCode != 200 || up.GetHeader("Session-Expires") == nil {
		t.Fatalf("refresh UPDATE: %v %v", up, err)
	}
	refreshed := time.Now()
	time.Sleep(1500 * time.Millisecond)
	if len(c.RequestsOf("BYE")) != 0 {
		t.Fatal("hung up although the session was refreshed")
	}
	waitForBye(t, c, 5*time.Second)
	// Due 3 s - min(32 s, 3 s/3) = 2 s after the refresh (the fake-clock
	// tests pin that down): here, not early, and not much after the 3 s.
	if after := time.Since(refreshed); after < 1800*time.Millisecond || after > 4*time.Second {
		t.Errorf("hung up %v after the last refresh, want about 2 s", after)
	}
	waitFor(t, "log", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), "session expired") })
}

// Session timers, voicebot refreshing: it sends UPDATE (the caller allows
// it) every half interval, and hangs up when a refresh is answered 481.
func TestSessionTimerWeRefresh(t *testing.T) {
	r := startRig(t, func(c *config.Config) {
		c.Agent.Greeting = false
		c.SIP.MinSE = config.Duration(2 * time.Second)
	}, nil)
	c := r.caller()
	res := call(t, c, "Supported: timer", "Session-Expires: 2;refresher=uas", "Allow: INVITE, ACK, BYE, CANCEL, UPDATE")
	if se := res.GetHeader("Session-Expires"); se == nil || se.Value() != "2;refresher=uas" {
		t.Fatalf("200 OK Session-Expires %v", se)
	}
	waitFor(t, "two refreshes", 4*time.Second, func() bool { return len(c.RequestsOf("UPDATE")) >= 2 })
	up := c.RequestsOf("UPDATE")[0]
	if se := up.GetHeader("Session-Expires"); se == nil || !strings.HasPrefix(se.Value(), "2") {
		t.Errorf("refresh without Session-Expires: %v", up)
	}
	c.SetAnswer(func(req *sip.Request) (int, []string, string) {
		if req.Method == sip.UPDATE {
			return 481, nil, ""
		}
		return 200, nil, ""
	})
	waitForBye(t, c, 4*time.Second)
}

// Bad session-timer and extension requests get their SIP answers.
func TestSessionTimerAndExtensionRefusals(t *testing.T) {
	r := startRig(t, func(c *config.Config) { c.Agent.Greeting = false }, nil)
	c := r.caller()
	res, err := c.Invite("", 5*time.Second, "Supported: timer", "Session-Expires: 30")
	if err != nil || res.StatusCode != 422 || res.GetHeader("Min-SE") == nil || res.GetHeader("Min-SE").Value() != "90" {
		t.Errorf("Session-Expires below Min-SE: %v %v", res, err)
	}
	c2 := r.caller()
	res, err = c2.Invite("", 5*time.Second, "Require: 100rel")
	if err != nil || res.StatusCode != 420 || res.GetHeader("Unsupported") == nil {
		t.Errorf("Require: 100rel: %v %v", res, err)
	}
	// In-dialog requests of a dialog voicebot does not have: 481.
	c3 := r.caller()
	c3.ToTag = "no-such-dialog"
	for _, m := range []string{"INVITE", "UPDATE", "INFO", "NOTIFY", "BYE"} {
		body, ct := "", ""
		if m == "INVITE" {
			body, ct = c3.Offer(), "application/sdp"
		}
		res, err := c3.Send(m, ct, body, 3*time.Second)
		if err != nil || res.StatusCode != 481 {
			t.Errorf("%s in an unknown dialog: %v %v", m, res, err)
		}
	}
}

// A caller behind NAT: its SDP names an address that is not where its SIP
// comes from (here another loopback address, standing for a private one),
// its RTP comes from the SIP address. voicebot latches onto that source and
// sends its RTP there.
func TestNATedCallerIsLatched(t *testing.T) {
	r := startRig(t, nil, nil)
	c := r.caller()
	private := netip.MustParseAddrPort("127.0.0.5:4000")
	res, err := c.Invite(c.OfferAt(private, "sendrecv", 1), 5*time.Second)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	if len(c.Received()) != 0 {
		t.Fatal("RTP arrived before the caller sent any")
	}
	c.SendAudio(testpeer.Silence(0.1), 1, 0, 5) // from 127.0.0.1, its real port
	waitFor(t, "RTP at the latched address", 3*time.Second, func() bool { return len(c.Received()) > 5 })
	_, _ = c.Bye(5 * time.Second)
}

// A caller that does not allow UPDATE is refreshed with re-INVITEs carrying
// voicebot's unchanged SDP, each acknowledged.
func TestSessionTimerRefreshByReinvite(t *testing.T) {
	r := startRig(t, func(c *config.Config) {
		c.Agent.Greeting = false
		c.SIP.MinSE = config.Duration(2 * time.Second)
	}, nil)
	c := r.caller()
	res := call(t, c, "Supported: timer", "Session-Expires: 2;refresher=uas", "Allow: INVITE, ACK, BYE, CANCEL")
	answer := string(res.Body())
	waitFor(t, "a re-INVITE refresh and its ACK", 4*time.Second, func() bool {
		invites, acks := c.RequestsOf("INVITE"), c.RequestsOf("ACK")
		return len(invites) >= 1 && len(acks) >= 1 && acks[0].CSeq().SeqNo == invites[0].CSeq().SeqNo
	})
	inv := c.RequestsOf("INVITE")[0]
	if string(inv.Body()) != answer {
		t.Errorf("the refresh re-INVITE changed the SDP:\n%s\nwas\n%s", inv.Body(), answer)
	}
	if len(c.RequestsOf("UPDATE")) != 0 {
		t.Error("UPDATE sent to a caller that does not allow it")
	}
	_, _ = c.Bye(5 * time.Second)
}

// Bad mid-call requests get their answers and the call goes on: an offer
// without a usable codec (488), a REFER asked of voicebot (603), a NOTIFY
// of another event package (489), a NOTIFY without a status line (200,
// ignored), an UPDATE with garbage SDP (400/488).
func TestBadMidCallRequests(t *testing.T) {
	r := startRig(t, func(c *config.Config) { c.Agent.Greeting = false }, nil)
	c := r.caller()
	call(t, c)
	g729 := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"
	if res, err := c.Invite(g729, 3*time.Second); err != nil || res.StatusCode != 488 {
		t.Errorf("re-INVITE without a common codec: %v %v", res, err)
	}
	for _, tc := range []struct {
		method, ct, body string
		extra            []string
		code             int
	}{
		{"REFER", "", "", []string{"Refer-To: <sip:elsewhere@127.0.0.1>"}, 603},
		{"NOTIFY", "text/plain", "x", []string{"Event: presence"}, 489},
		{"NOTIFY", "message/sipfrag", "garbage", []string{"Event: refer"}, 200},
		{"UPDATE", "application/sdp", "not sdp at all", nil, 488},
	} {
		res, err := c.Send(tc.method, tc.ct, tc.body, 3*time.Second, tc.extra...)
		if err != nil || res.StatusCode != tc.code {
			t.Errorf("%s %v: %v %v, want %d", tc.method, tc.extra, res, err, tc.code)
		}
	}
	before := len(c.Received())
	time.Sleep(300 * time.Millisecond)
	if len(c.Received()) <= before {
		t.Error("the call's RTP stopped after the bad requests")
	}
	if code, err := c.Bye(5 * time.Second); err != nil || code != 200 {
		t.Errorf("BYE: %d %v", code, err)
	}
}

// A re-INVITE without an offer gets voicebot's offer in the 200 OK; the
// answer comes in the ACK, here moving the stream to a new address.
func TestOfferlessReinvite(t *testing.T) {
	r := startRig(t, func(c *config.Config) { c.Agent.Greeting = false }, nil)
	c := r.caller()
	call(t, c)
	res, err := c.Send("INVITE", "", "", 3*time.Second)
	if err != nil || res.StatusCode != 200 || !strings.Contains(string(res.Body()), "m=audio") {
		t.Fatalf("offerless re-INVITE: %v %v", res, err)
	}
	moved, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer moved.Close()
	_ = c.SendRaw(c.Request("ACK", "application/sdp", c.OfferAt(moved.LocalAddr().(*net.UDPAddr).AddrPort(), "sendrecv", 2)))
	_ = moved.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1500)
	if _, _, err := moved.ReadFromUDP(buf); err != nil {
		t.Fatalf("no RTP at the address the ACK's answer gave: %v", err)
	}
	_, _ = c.Bye(5 * time.Second)
}
