package sip

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/icholy/digest"

	"github.com/voicebot/voicebot/secret"
)

// Admission on a running UA: who may call, how many, how often. A refused
// INVITE never reaches the handler.

func TestMaxCallsRefusesTheNextCall(t *testing.T) {
	for _, code := range []int{503, 486} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			r := newRig(t, Config{Admission: Admission{MaxCalls: 1, OverCapacity: code}}, nil)
			first := r.caller()
			_, rec := r.established(first)
			res, err := r.caller().Invite("", wait)
			if err != nil || res.StatusCode != code {
				t.Fatalf("a second call over max_calls 1: %v %v, want %d", res, err, code)
			}
			if code == 503 && header(res, "Retry-After") != "5" {
				t.Errorf("503 Retry-After %q", header(res, "Retry-After"))
			}
			r.noCall()
			if n := r.ua.Rejections()[RejectOverCapacity]; n != 1 {
				t.Errorf("%d refusals counted over capacity", n)
			}
			if code, err := first.Bye(wait); err != nil || code != 200 {
				t.Fatalf("BYE: %d %v", code, err)
			}
			<-rec.done
			// The slot is free once the call is wholly over.
			waitFor(t, "the slot freed", func() bool { return r.ua.ActiveCalls() == 0 })
			r.established(r.caller())
		})
	}
}

func TestSourceNotAllowedIsForbidden(t *testing.T) {
	r := newRig(t, Config{Admission: Admission{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32")}}}, nil)
	res, err := r.caller().Invite("", wait)
	if err != nil || res.StatusCode != 403 {
		t.Fatalf("INVITE from 127.0.0.1: %v %v, want 403", res, err)
	}
	r.noCall()
	if n := r.ua.Rejections()[RejectNotAllowed]; n != 1 {
		t.Errorf("%d refusals counted", n)
	}
	waitFor(t, "the refusal logged", func() bool {
		return strings.Contains(r.logs.String(), `"reason":"source_not_allowed"`) && strings.Contains(r.logs.String(), `"source":"127.0.0.1"`)
	})
}

// digestFor answers res's challenge for an INVITE to the UA.
func digestFor(t *testing.T, r *rig, chal, user, pass string) string {
	t.Helper()
	ch, err := digest.ParseChallenge(chal)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := digest.Digest(ch, digest.Options{Method: "INVITE", URI: "sip:bot@" + r.ua.Addr().String(), Username: user, Password: pass, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	return "Authorization: " + cred.String()
}

// With users, an INVITE is challenged; a wrong answer is forbidden, the
// right one taken. The password never reaches the log.
func TestInboundDigestAuthentication(t *testing.T) {
	const password = "pw-Zq8-never-logged"
	r := newRig(t, Config{Admission: Admission{Users: map[string]secret.Value{"pbx": password}}}, nil)
	c := r.caller()
	res, err := c.Invite("", wait)
	if err != nil || res.StatusCode != 401 {
		t.Fatalf("INVITE without credentials: %v %v, want 401", res, err)
	}
	chal := header(res, "WWW-Authenticate")
	if !strings.Contains(chal, `realm="voicebot"`) || !strings.Contains(chal, `qop="auth"`) {
		t.Errorf("challenge %q", chal)
	}
	if res, err := c.Invite("", wait, digestFor(t, r, chal, "pbx", "wrong")); err != nil || res.StatusCode != 403 {
		t.Fatalf("INVITE with a wrong password: %v %v, want 403", res, err)
	}
	r.noCall()
	r.established(c, digestFor(t, r, chal, "pbx", password))
	got := r.ua.Rejections()
	if got[Challenged] != 1 || got[RejectAuthFailed] != 1 {
		t.Errorf("refusals %v", got)
	}
	if strings.Contains(r.logs.String(), password) {
		t.Error("the password reached the log")
	}
}

// Sources in the allow list need no credentials; others do.
func TestAllowedSourcesSkipAuthentication(t *testing.T) {
	users := map[string]secret.Value{"pbx": "pw"}
	r := newRig(t, Config{Admission: Admission{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Users: users}}, nil)
	r.established(r.caller())
	r2 := newRig(t, Config{Admission: Admission{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Users: users}}, nil)
	if res, err := r2.caller().Invite("", wait); err != nil || res.StatusCode != 401 {
		t.Errorf("INVITE from outside the allow list: %v %v, want 401", res, err)
	}
}

// An INVITE flood from one source is cut to the bucket's rate, with one log
// line; an allowed source is not limited.
func TestInviteFloodIsRateLimited(t *testing.T) {
	r := newRig(t, Config{Admission: Admission{InviteRate: 0.1, InviteBurst: 2}}, nil)
	var codes []int
	for i := 0; i < 4; i++ {
		res, err := r.caller().Invite("", wait)
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, res.StatusCode)
		if res.StatusCode == 503 && header(res, "Retry-After") != "10" {
			t.Errorf("503 Retry-After %q", header(res, "Retry-After"))
		}
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 503 || codes[3] != 503 {
		t.Fatalf("codes %v, want [200 200 503 503] at one per 10 s with a burst of 2", codes)
	}
	if n := r.ua.Rejections()[RejectRateLimited]; n != 2 {
		t.Errorf("%d refusals counted", n)
	}
	if n := strings.Count(r.logs.String(), `"reason":"rate_limited"`); n != 1 {
		t.Errorf("%d log lines for the flood", n)
	}

	allowed := newRig(t, Config{Admission: Admission{InviteRate: 0.1, InviteBurst: 1, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}}, nil)
	for i := 0; i < 3; i++ {
		allowed.established(allowed.caller())
	}
}
