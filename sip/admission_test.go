package sip

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/voicebot/voicebot/secret"
)

type stepClock struct{ t time.Time }

func (c *stepClock) now() time.Time { return c.t }

func TestRateLimitPerSource(t *testing.T) {
	clk := &stepClock{t: time.Unix(1000, 0)}
	g := newGate(Admission{InviteRate: 2, InviteBurst: 3}, clk.now)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for i := 0; i < 3; i++ {
		if ok, _, _ := g.take(a); !ok {
			t.Fatalf("burst INVITE %d refused", i)
		}
	}
	ok, logIt, n := g.take(a)
	if ok || !logIt || n != 1 {
		t.Fatalf("4th INVITE at once: ok %v log %v n %d; want refused and logged", ok, logIt, n)
	}
	if ok, logIt, _ := g.take(a); ok || logIt {
		t.Fatal("the next refusal within 10 s is counted, not logged")
	}
	if ok, _, _ := g.take(b); !ok {
		t.Fatal("another source has its own bucket")
	}
	clk.t = clk.t.Add(500 * time.Millisecond) // one token back at 2/s
	if ok, _, _ := g.take(a); !ok {
		t.Fatal("a token came back after 0.5 s at 2/s")
	}
	if ok, _, _ := g.take(a); ok {
		t.Fatal("only one")
	}
}

func TestRateLimiterMemoryIsBounded(t *testing.T) {
	clk := &stepClock{t: time.Unix(1000, 0)}
	g := newGate(Admission{InviteRate: 1, InviteBurst: 1}, clk.now)
	for i := 0; i < 3*maxBuckets; i++ {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		g.take(ip)
	}
	if n := len(g.buckets); n > maxBuckets {
		t.Fatalf("%d buckets after a spoofed-source flood, bound %d", n, maxBuckets)
	}
}

func TestNonceIsStatelessAndExpires(t *testing.T) {
	clk := &stepClock{t: time.Unix(1000, 0)}
	g := newGate(Admission{}, clk.now)
	n := g.nonce(clk.t)
	if ours, fresh := g.nonceValid(n, clk.t.Add(time.Minute)); !ours || !fresh {
		t.Fatal("a minute-old nonce of ours is valid")
	}
	if ours, fresh := g.nonceValid(n, clk.t.Add(nonceLifetime+time.Second)); !ours || fresh {
		t.Fatal("an old nonce is ours but stale")
	}
	other := newGate(Admission{}, clk.now)
	tampered := n[:len(n)-2] + "AA"
	if tampered == n { // one nonce in 4096 ends so already
		tampered = n[:len(n)-2] + "BB"
	}
	for _, bad := range []string{other.nonce(clk.t), "", "not base64!", tampered} {
		if ours, _ := g.nonceValid(bad, clk.t); ours {
			t.Errorf("nonce %q taken as ours", bad)
		}
	}
}

func authorized(t *testing.T, g *gate, user, pass, realm, nonce string) *sip.Request {
	t.Helper()
	req := sip.NewRequest(sip.INVITE, sip.Uri{User: "bot", Host: "127.0.0.1", Port: 5060})
	cred, err := digest.Digest(&digest.Challenge{Realm: realm, Nonce: nonce, Algorithm: "MD5", QOP: []string{"auth"}},
		digest.Options{Method: "INVITE", URI: "sip:bot@127.0.0.1:5060", Username: user, Password: pass})
	if err != nil {
		t.Fatal(err)
	}
	req.AppendHeader(sip.NewHeader("Authorization", cred.String()))
	return req
}

func TestInboundDigest(t *testing.T) {
	clk := &stepClock{t: time.Unix(1000, 0)}
	g := newGate(Admission{Realm: "voicebot", Users: map[string]secret.Value{"alice": "s3cret-pass"}}, clk.now)
	nonce := g.nonce(clk.t)
	if user, _, why := g.authenticate(authorized(t, g, "alice", "s3cret-pass", "voicebot", nonce)); user != "alice" {
		t.Fatalf("right password refused: %s", why)
	}
	cases := map[string]*sip.Request{
		"wrong password": authorized(t, g, "alice", "guess", "voicebot", nonce),
		"unknown user":   authorized(t, g, "mallory", "s3cret-pass", "voicebot", nonce),
		"other realm":    authorized(t, g, "alice", "s3cret-pass", "elsewhere", nonce),
		"forged nonce":   authorized(t, g, "alice", "s3cret-pass", "voicebot", "bm90IG91cnM"),
		"none":           sip.NewRequest(sip.INVITE, sip.Uri{User: "bot", Host: "127.0.0.1"}),
	}
	for name, req := range cases {
		user, _, why := g.authenticate(req)
		if user != "" {
			t.Errorf("%s: authenticated as %s", name, user)
		}
		if strings.Contains(why, "s3cret-pass") {
			t.Errorf("%s: the reason carries the password", name)
		}
	}
	clk.t = clk.t.Add(nonceLifetime + time.Minute)
	if user, stale, _ := g.authenticate(authorized(t, g, "alice", "s3cret-pass", "voicebot", nonce)); user != "" || !stale {
		t.Error("an expired nonce must be refused as stale (the phone retries by itself)")
	}
	if h := g.challenge(true).Value(); !strings.Contains(h, "stale=true") || !strings.Contains(h, `realm="voicebot"`) {
		t.Errorf("challenge %s", h)
	}
}
