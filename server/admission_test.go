package server

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icholy/digest"

	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/internal/testpeer"
	"github.com/voicebot/voicebot/secret"
)

func TestMaxCallsRefusesTheNextCall(t *testing.T) {
	for _, code := range []int{503, 486} {
		t.Run(strconv.Itoa(code), func(t *testing.T) { maxCalls(t, code) })
	}
}

func maxCalls(t *testing.T, code int) {
	{
		r := startRig(t, func(c *config.Config) { c.Admission.MaxCalls, c.Admission.OverCapacity = 1, code }, nil)
		first := r.caller()
		if res, err := first.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
			t.Fatalf("first call: %v %v", res, err)
		}
		res, err := r.caller().Invite("", 5*time.Second)
		if err != nil || res.StatusCode != code {
			t.Fatalf("second call over max_calls 1: %v %v, want %d", res, err, code)
		}
		if code == 503 && res.GetHeader("Retry-After") == nil {
			t.Error("503 without Retry-After")
		}
		if n := len(r.server.Sessions()); n != 1 {
			t.Errorf("%d model sessions: the refused call must cost nothing", n)
		}
		if code, err := first.Bye(5 * time.Second); err != nil || code != 200 {
			t.Fatalf("BYE: %d %v", code, err)
		}
		// Its slot is free again, once the call is wholly over (the BYE's
		// answer comes a moment before the call is counted out).
		var third *testpeer.Caller
		waitFor(t, "the slot freed", 3*time.Second, func() bool {
			third = r.caller()
			res, err := third.Invite("", 5*time.Second)
			if err == nil && res.StatusCode != 200 && res.StatusCode != code {
				t.Fatalf("a call after the first ended: %v", res)
			}
			return err == nil && res.StatusCode == 200
		})
		third.Bye(5 * time.Second)
	}
}

func TestSourceNotAllowedIsForbidden(t *testing.T) {
	r := startRig(t, func(c *config.Config) { c.Admission.Allow = []string{"10.0.0.0/8", "192.0.2.7"} }, nil)
	res, err := r.caller().Invite("", 5*time.Second)
	if err != nil || res.StatusCode != 403 {
		t.Fatalf("INVITE from 127.0.0.1: %v %v, want 403", res, err)
	}
	if n := len(r.server.Sessions()); n != 0 {
		t.Errorf("%d model sessions for a refused source", n)
	}
	waitFor(t, "the refusal logged", time.Second, func() bool {
		return strings.Contains(r.logs.String(), `"reason":"source_not_allowed"`) && strings.Contains(r.logs.String(), `"source":"127.0.0.1"`)
	})
}

func TestInboundDigestAuthentication(t *testing.T) {
	const password = "pw-Zq8-never-logged"
	r := startRig(t, func(c *config.Config) {
		c.Admission.Auth.Users = map[string]config.Secret{"pbx": secret.Value(password)}
	}, nil)
	c := r.caller()
	res, err := c.Invite("", 5*time.Second)
	if err != nil || res.StatusCode != 401 {
		t.Fatalf("INVITE without credentials: %v %v, want 401", res, err)
	}
	chal, err := digest.ParseChallenge(res.GetHeader("WWW-Authenticate").Value())
	if err != nil {
		t.Fatal(err)
	}
	uri := "sip:bot@" + r.sip.String()
	answer := func(pass string) string {
		cred, err := digest.Digest(chal, digest.Options{Method: "INVITE", URI: uri, Username: "pbx", Password: pass, Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		return "Authorization: " + cred.String()
	}
	res, err = c.Invite("", 5*time.Second, answer("wrong"))
	if err != nil || res.StatusCode != 403 {
		t.Fatalf("INVITE with a wrong password: %v %v, want 403", res, err)
	}
	res, err = c.Invite("", 5*time.Second, answer(password))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE with the right password: %v %v, want 200", res, err)
	}
	c.Bye(5 * time.Second)
	if strings.Contains(r.logs.String(), password) {
		t.Error("the password appears in the log")
	}
	if n := len(r.server.Sessions()); n != 1 {
		t.Errorf("%d model sessions, want 1 (only the authenticated call)", n)
	}
}

func TestInviteFloodIsRateLimited(t *testing.T) {
	r := startRig(t, func(c *config.Config) { c.Admission.InviteRate, c.Admission.InviteBurst = 0.1, 2 }, nil)
	var codes []int
	for i := 0; i < 4; i++ {
		res, err := r.caller().Invite("", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, res.StatusCode)
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 503 || codes[3] != 503 {
		t.Fatalf("codes %v, want [200 200 503 503] at one per 10 s with a burst of 2", codes)
	}
	waitFor(t, "one log line for the flood", time.Second, func() bool {
		return strings.Count(r.logs.String(), `"reason":"rate_limited"`) == 1
	})
}
