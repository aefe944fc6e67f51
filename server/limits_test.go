package server

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/internal/testpeer"
)

var mAudio = regexp.MustCompile(`m=audio (\d+) `)

// A caller that vanishes (no RTP, no BYE: a phone out of coverage, a
// crashed softphone) is hung up on after the RTP timeout, and everything
// the call held is freed: its RTP port and its goroutines.
func TestVanishedCallerIsTornDown(t *testing.T) {
	r := startRig(t, func(c *config.Config) { c.Calls.RTPTimeout = config.Duration(2 * time.Second) }, nil)
	idle := goleak.IgnoreCurrent() // voicebot serving, no call
	c := r.caller()
	res, err := c.Invite("", 5*time.Second)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	m := mAudio.FindStringSubmatch(string(res.Body()))
	if m == nil {
		t.Fatalf("no m=audio in the answer:\n%s", res.Body())
	}
	port, _ := strconv.Atoi(m[1])
	c.SendAudio(testpeer.Speech(0.5, 1), 1, 160, 0xBEEF)
	sentAt := time.Now()
	waitForBye(t, c, 8*time.Second)
	// voicebot times the silence from the packet's arrival, a hair after
	// sentAt was read: a few ms of slack, not the timeout's whole.
	if gone := time.Since(sentAt); gone < 2*time.Second-10*time.Millisecond {
		t.Errorf("hung up %v after the last packet, before the 2 s timeout", gone)
	}
	waitFor(t, "call log", 3*time.Second, func() bool {
		return strings.Contains(r.logs.String(), `"outcome":"timeout","sip_code":0,"detail":"no RTP from the caller for `)
	})
	waitFor(t, "the RTP port freed", 3*time.Second, func() bool {
		l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err == nil {
			l.Close()
		}
		return err == nil
	})
	c.Close()
	if err := goleak.Find(idle); err != nil {
		t.Errorf("the call's goroutines outlived it: %v", err)
	}
}

// A call past its maximum duration: the model is warned ahead, then the
// bot says goodbye and hangs up.
func TestMaxDurationEndsTheCallPolitely(t *testing.T) {
	r := startRig(t, func(c *config.Config) {
		c.Calls.MaxDuration = config.Duration(3 * time.Second)
		c.Calls.MaxDurationWarning = config.Duration(time.Second)
	}, nil)
	c := r.caller()
	if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	answered := time.Now()
	waitForBye(t, c, 10*time.Second)
	if d := time.Since(answered); d < 3*time.Second {
		t.Errorf("hung up after %v, before the 3 s limit", d)
	}
	sess := r.server.Sessions()[0]
	items := createdItems(t, sess)
	if len(items) == 0 || items[0]["role"] != "system" || !strings.Contains(itemText(items[0]), "time limit") {
		t.Errorf("no warning item: %v", items)
	}
	creates := sess.ReceivedOfType("response.create")
	if len(creates) < 2 || !strings.Contains(string(creates[len(creates)-1].Raw), "goodbye") {
		t.Errorf("no goodbye response.create: %d", len(creates))
	}
	waitFor(t, "call log", 3*time.Second, func() bool {
		return strings.Contains(r.logs.String(), `"outcome":"bot_hung_up","sip_code":0,"detail":"maximum call duration"`)
	})
}
