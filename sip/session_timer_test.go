package sip

import (
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Session timers (RFC 4028) on a running UA, on the fake clock: the test
// waits until the call's timer is set, then moves the clock.

// The caller refreshes: our 2xx names it refresher and requires the timer;
// its refresh (an UPDATE) moves the deadline; when refreshes stop, the UA
// hangs up min(32 s, interval/3) before the interval runs out.
func TestSessionTimerPeerRefreshes(t *testing.T) {
	r := newRig(t, Config{}, nil)
	c := r.caller()
	res, rec := r.established(c, "Supported: timer", "Session-Expires: 90;refresher=uac")
	if got := header(res, "Session-Expires"); got != "90;refresher=uac" {
		t.Errorf("200 OK Session-Expires %q", got)
	}
	if got := header(res, "Require"); got != "timer" {
		t.Errorf("200 OK Require %q, want timer", got)
	}
	r.clk.await(t, start.Add(60*time.Second)) // 90 s - 30 s
	r.clk.Advance(30 * time.Second)
	up := send(t, c, "UPDATE", "", "", "Supported: timer", "Session-Expires: 90;refresher=uac")
	if up.StatusCode != 200 || header(up, "Session-Expires") != "90;refresher=uac" || header(up, "Require") != "timer" {
		t.Fatalf("refresh UPDATE: %v", up)
	}
	r.clk.await(t, start.Add(90*time.Second)) // 30 s + 60 s
	r.clk.Advance(59 * time.Second)
	if n := len(c.RequestsOf("BYE")); n != 0 || rec.call.EndReason() != "" {
		t.Fatalf("hung up although the session was refreshed (%d BYEs, %q)", n, rec.call.EndReason())
	}
	r.clk.Advance(time.Second)
	requestFrom(t, c.RequestsOf, "BYE", 1)
	if why := rec.ended(t); why != EndSessionExpired {
		t.Errorf("ended %q, want %q", why, EndSessionExpired)
	}
}

// A re-INVITE that does not mention the timer (a hold, say) refreshes the
// session too, and its 2xx keeps the timer.
func TestSessionTimerReinviteWithoutHeadersRefreshes(t *testing.T) {
	r := newRig(t, Config{}, nil)
	c := r.caller()
	_, rec := r.established(c, "Supported: timer", "Session-Expires: 120;refresher=uac")
	r.clk.await(t, start.Add(88*time.Second)) // 120 s - 32 s
	r.clk.Advance(70 * time.Second)
	res := reinvite(t, c, c.OfferAt(c.RTPAddr(), "sendonly", 2))
	if got := header(res, "Session-Expires"); got != "120;refresher=uac" {
		t.Errorf("re-INVITE 200 Session-Expires %q", got)
	}
	rec.event(t)
	r.clk.await(t, start.Add(158*time.Second)) // refreshed at 70 s
	if rec.call.EndReason() != "" {
		t.Fatalf("ended %q", rec.call.EndReason())
	}
}

// We refresh: by UPDATE, as the caller allows it, every half interval,
// saying who refreshes; a refresh answered 481 ends the call.
func TestSessionTimerWeRefreshByUpdate(t *testing.T) {
	r := newRig(t, Config{}, nil)
	c := r.caller()
	res, rec := r.established(c, "Supported: timer", "Session-Expires: 90;refresher=uas", "Allow: INVITE, ACK, BYE, CANCEL, UPDATE")
	if got := header(res, "Session-Expires"); got != "90;refresher=uas" {
		t.Fatalf("200 OK Session-Expires %q", got)
	}
	r.clk.await(t, start.Add(45*time.Second))
	r.clk.Advance(45 * time.Second)
	up := requestFrom(t, c.RequestsOf, "UPDATE", 1)
	if got := header(up, "Session-Expires"); got != "90;refresher=uac" {
		t.Errorf("our UPDATE's Session-Expires %q, want us (its UAC) refresher", got)
	}
	if header(up, "Supported") != supported || up.Contact() == nil || len(up.Body()) != 0 {
		t.Errorf("our UPDATE:\n%s", up)
	}
	if tag, _ := up.To().Params.Get("tag"); tag != c.FromTag {
		t.Errorf("UPDATE To tag %q", tag)
	}
	if len(c.RequestsOf("INVITE")) != 0 {
		t.Error("a re-INVITE as well")
	}
	r.clk.await(t, start.Add(90*time.Second))
	c.SetAnswer(func(req *sip.Request) (int, []string, string) {
		if req.Method == sip.UPDATE {
			return 481, nil, ""
		}
		return 200, nil, ""
	})
	r.clk.Advance(45 * time.Second)
	requestFrom(t, c.RequestsOf, "UPDATE", 2)
	requestFrom(t, c.RequestsOf, "BYE", 1)
	if why := rec.ended(t); why != EndSessionExpired {
		t.Errorf("ended %q, want %q", why, EndSessionExpired)
	}
}

// A caller that does not allow UPDATE is refreshed by re-INVITE, with our
// SDP unchanged (same version), and the 2xx is acknowledged.
func TestSessionTimerWeRefreshByReinvite(t *testing.T) {
	r := newRig(t, Config{}, nil)
	c := r.caller()
	res, _ := r.established(c, "Supported: timer", "Session-Expires: 90;refresher=uas", "Allow: INVITE, ACK, BYE, CANCEL")
	r.clk.await(t, start.Add(45*time.Second))
	r.clk.Advance(45 * time.Second)
	inv := requestFrom(t, c.RequestsOf, "INVITE", 1)
	if string(inv.Body()) != string(res.Body()) || header(inv, "Content-Type") != "application/sdp" {
		t.Errorf("the refresh re-INVITE changed the SDP:\n%s\nwas\n%s", inv.Body(), res.Body())
	}
	if got := header(inv, "Session-Expires"); got != "90;refresher=uac" {
		t.Errorf("re-INVITE Session-Expires %q", got)
	}
	ack := requestFrom(t, c.RequestsOf, "ACK", 1)
	if ack.CSeq().SeqNo != inv.CSeq().SeqNo {
		t.Errorf("ACK CSeq %d for the re-INVITE's %d", ack.CSeq().SeqNo, inv.CSeq().SeqNo)
	}
	if len(c.RequestsOf("UPDATE")) != 0 {
		t.Error("UPDATE sent to a caller that does not allow it")
	}
	r.clk.await(t, start.Add(90*time.Second)) // refreshed: the next one due
}

// A caller that supports timers but asks for none gets ours, and refreshes.
func TestSessionTimerWeAskForOne(t *testing.T) {
	r := newRig(t, Config{SessionExpires: 1800 * time.Second}, nil)
	c := r.caller()
	res, rec := r.established(c, "Supported: timer")
	if got := header(res, "Session-Expires"); got != "1800;refresher=uac" || header(res, "Require") != "timer" {
		t.Errorf("200 OK Session-Expires %q Require %q", got, header(res, "Require"))
	}
	// A caller without timer support gets none (it could not refresh, and
	// we were not asked to).
	c2 := r.caller()
	res, _ = r.established(c2)
	if res.GetHeader("Session-Expires") != nil {
		t.Errorf("a timer for a caller without support: %s", header(res, "Session-Expires"))
	}
	// The caller's timer runs out: the UA ends the call.
	r.clk.await(t, start.Add(1800*time.Second-32*time.Second))
	r.clk.Advance(1800 * time.Second)
	requestFrom(t, c.RequestsOf, "BYE", 1)
	if why := rec.ended(t); why != EndSessionExpired {
		t.Errorf("ended %q", why)
	}
	if !strings.Contains(r.logs.String(), "session expired") {
		t.Error("not logged")
	}
}
