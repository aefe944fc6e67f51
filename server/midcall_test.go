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
