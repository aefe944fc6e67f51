package sip

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/voicebot/voicebot/clock"
)

// Session timers (RFC 4028): an established call is refreshed by a
// re-INVITE or UPDATE every Session-Expires, by whichever side the
// negotiation names the refresher, so a call whose peer vanished without a
// BYE does not live forever. When we refresh, we do so at half the
// interval; when the peer does and its refresh does not come, we end the
// call min(32 s, interval/3) before the interval runs out (§10).

// timerHeaders are the session-timer headers of one request or response.
type timerHeaders struct {
	expires   time.Duration // Session-Expires, 0 if absent
	refresher string        // "uac", "uas" or "" (unstated)
	minSE     time.Duration // Min-SE, 0 if absent
	supported bool          // "timer" in Supported or Require
}

// headered is a request or response.
type headered interface {
	GetHeader(name string) sip.Header
	GetHeaders(name string) []sip.Header
}

func parseTimerHeaders(m headered) (timerHeaders, error) {
	var h timerHeaders
	if v := headerValue(m, "Session-Expires", "x"); v != "" {
		secs, params, _ := strings.Cut(v, ";")
		n, err := strconv.Atoi(strings.TrimSpace(secs))
		if err != nil || n <= 0 {
			return h, fmt.Errorf("bad Session-Expires %q", v)
		}
		h.expires = time.Duration(n) * time.Second
		for _, p := range strings.Split(params, ";") {
			if k, val, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "refresher") {
				h.refresher = strings.ToLower(strings.TrimSpace(val))
			}
		}
		if h.refresher != "" && h.refresher != "uac" && h.refresher != "uas" {
			return h, fmt.Errorf("bad Session-Expires refresher %q", h.refresher)
		}
	}
	if v := headerValue(m, "Min-SE"); v != "" {
		secs, _, _ := strings.Cut(v, ";")
		n, err := strconv.Atoi(strings.TrimSpace(secs))
		if err != nil || n <= 0 {
			return h, fmt.Errorf("bad Min-SE %q", v)
		}
		h.minSE = time.Duration(n) * time.Second
	}
	h.supported = hasOptionTag(m, "timer")
	return h, nil
}

// headerValue is the first of the named headers present (a long name and
// its compact form), or "".
func headerValue(m headered, names ...string) string {
	for _, n := range names {
		if h := m.GetHeader(n); h != nil {
			return strings.TrimSpace(h.Value())
		}
	}
	return ""
}

// hasOptionTag reports whether tag is listed in Supported (k) or Require.
func hasOptionTag(m headered, tag string) bool {
	for _, name := range []string{"Supported", "k", "Require"} {
		for _, h := range m.GetHeaders(name) {
			for _, t := range strings.Split(h.Value(), ",") {
				if strings.EqualFold(strings.TrimSpace(t), tag) {
					return true
				}
			}
		}
	}
	return false
}

// sessionTimer is a call's negotiated refresh schedule.
type sessionTimer struct {
	interval  time.Duration // 0: no session timer
	weRefresh bool
	last      time.Time // the last refresh, or the start of the session
}

// due is when the timer next needs attention: our refresh, or the last
// moment the peer's refresh may arrive.
func (t sessionTimer) due() time.Time {
	if t.weRefresh {
		return t.last.Add(t.interval / 2)
	}
	return t.last.Add(t.interval - min(32*time.Second, t.interval/3))
}

// expiry is when the session ends without a refresh.
func (t sessionTimer) expiry() time.Time { return t.last.Add(t.interval) }

// header is our Session-Expires value for a message in which the
// refresher, as named from that transaction's sides, is given.
func (t sessionTimer) header(refresher string) sip.Header {
	return sip.NewHeader("Session-Expires", fmt.Sprintf("%d;refresher=%s", int(t.interval/time.Second), refresher))
}

// addTo puts the timer in our 2xx to a request with headers h: the
// interval and refresher, and Require: timer when the peer supports it.
func (t sessionTimer) addTo(res *sip.Response, h timerHeaders, refresher string) {
	if t.interval <= 0 {
		return
	}
	res.AppendHeader(t.header(refresher))
	if h.supported {
		res.AppendHeader(sip.NewHeader("Require", "timer"))
	}
}

// errIntervalTooSmall is a Session-Expires below our Min-SE: the request
// gets 422 with our Min-SE.
type errIntervalTooSmall struct{ minSE time.Duration }

func (e errIntervalTooSmall) Error() string {
	return fmt.Sprintf("session interval below our minimum %s", e.minSE)
}

// timerForRequest negotiates the session timer for a request the peer sent
// (an INVITE, a re-INVITE or UPDATE refreshing the session), we being its
// UAS. prev is the timer in force (zero for a new call). It returns the
// timer and the refresher to name in our 2xx.
func timerForRequest(h timerHeaders, prev sessionTimer, ourExpires, ourMinSE time.Duration, now time.Time) (sessionTimer, string, error) {
	if h.expires > 0 && h.expires < ourMinSE {
		return prev, "", errIntervalTooSmall{ourMinSE}
	}
	t := sessionTimer{interval: h.expires, last: now}
	switch {
	case h.expires > 0:
	case prev.interval > 0:
		// A re-INVITE that does not mention the timer (a hold, say) still
		// refreshes the session; the timer goes on as it was.
		prev.last = now
		refresher := "uac"
		if prev.weRefresh {
			refresher = "uas"
		}
		return prev, refresher, nil
	case h.supported && ourExpires > 0:
		t.interval = max(ourExpires, h.minSE, ourMinSE) // the peer can do timers but did not ask: we do
	default:
		return sessionTimer{}, "", nil
	}
	refresher := h.refresher
	if refresher == "" {
		// Ours to choose: the peer, when it can refresh; else us.
		refresher = "uas"
		if h.supported {
			refresher = "uac"
		}
	}
	if !h.supported {
		refresher = "uas" // a peer without timer support cannot be the refresher
	}
	t.weRefresh = refresher == "uas"
	return t, refresher, nil
}

// timerForResponse reads the timer a 2xx to our request (INVITE or a
// refresh) sets, we being that transaction's UAC.
func timerForResponse(h timerHeaders, prev sessionTimer, now time.Time) sessionTimer {
	if h.expires == 0 {
		if prev.interval > 0 {
			prev.last = now // a refresh answered without the header: keep going
		}
		return prev
	}
	return sessionTimer{interval: h.expires, weRefresh: h.refresher != "uas", last: now}
}

// runSessionTimer keeps the session alive or ends it, until ctx ends.
// current returns the timer in force (it changes as refreshes happen);
// kick is signalled whenever it changes. refresh sends our refresh; an
// errRefreshFatal ends the call at once, other errors are retried until
// the session would expire. expire ends the call.
func runSessionTimer(ctx context.Context, clk clock.Clock, current func() sessionTimer, kick <-chan struct{},
	refresh func(ctx context.Context) error, expire func(reason string)) {
	var retry time.Time
	for {
		t := current()
		var tm clock.Timer
		var fire <-chan time.Time
		if t.interval > 0 {
			at := t.due()
			if t.weRefresh && retry.After(at) {
				at = retry
			}
			tm = clk.NewTimer(max(at.Sub(clk.Now()), 0))
			fire = tm.C()
		}
		kicked := false
		select {
		case <-ctx.Done():
		case <-kick:
			kicked = true
		case <-fire:
		}
		if tm != nil {
			tm.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		if kicked {
			retry = time.Time{} // a refresh came (or ours went through): start over
			continue
		}
		now := clk.Now()
		if !t.weRefresh {
			expire("session timer expired: the peer stopped refreshing")
			return
		}
		if !now.Before(t.expiry()) {
			expire("session timer expired: our refreshes failed")
			return
		}
		if err := refresh(ctx); err != nil {
			var fatal errRefreshFatal
			if errors.As(err, &fatal) {
				expire("session refresh failed: " + err.Error())
				return
			}
			// Try again while the session lasts.
			retry = now.Add(max(min(t.expiry().Sub(now)/2, 10*time.Second), time.Second))
		} else {
			retry = time.Time{}
		}
	}
}

// errRefreshFatal is a refresh the peer answered with 408 or 481: the
// dialog is gone (RFC 4028 §10).
type errRefreshFatal struct{ code int }

func (e errRefreshFatal) Error() string { return fmt.Sprintf("refresh answered %d", e.code) }
