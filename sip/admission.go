package sip

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/secret"
)

// Admission decides which INVITEs may start a call, so that an open SIP
// port does not mean free model minutes for whoever finds it.
type Admission struct {
	// MaxCalls bounds the calls in progress, both directions (0: none);
	// beyond it new INVITEs get OverCapacity (486 or 503 + Retry-After).
	MaxCalls     int
	OverCapacity int
	// InviteRate and InviteBurst bound new INVITEs per source IP (a token
	// bucket); sources in Allow are exempt, as trunks and PBXs are bound
	// by MaxCalls instead. Zero rate: no bound.
	InviteRate  float64
	InviteBurst int
	// Allow lists the networks calls may come from; empty: anywhere.
	Allow []netip.Prefix
	// Users, when not empty, are the digest credentials an INVITE from
	// outside Allow must carry (challenged with 401 in Realm).
	Users map[string]secret.Value
	Realm string
}

// Rejection reasons, as counted and logged.
const (
	RejectRateLimited  = "rate_limited"
	RejectNotAllowed   = "source_not_allowed"
	RejectAuthFailed   = "auth_failed"
	RejectOverCapacity = "over_capacity"
	RejectShuttingDown = "shutting_down"
	// Challenged counts 401s: INVITEs without (fresh) credentials.
	Challenged = "challenged"
)

// gate is the UA's admission state.
type gate struct {
	cfg      Admission
	nonceKey []byte
	clock    func() time.Time

	onRefused func(reason string) // Config.OnRefused

	mu       sync.Mutex
	buckets  map[netip.Addr]*bucket
	rejected map[string]uint64
}

type bucket struct {
	tokens   float64
	at       time.Time
	dropped  int // rate-limited INVITEs since the last log line about them
	loggedAt time.Time
}

// maxBuckets bounds the rate limiter's memory under a flood from many
// (spoofed) sources: past it, stale buckets go, then the oldest half.
const maxBuckets = 20000

func newGate(cfg Admission, now func() time.Time) *gate {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if cfg.Realm == "" {
		cfg.Realm = "voicebot"
	}
	return &gate{cfg: cfg, nonceKey: key, clock: now, buckets: map[netip.Addr]*bucket{}, rejected: map[string]uint64{}}
}

func (g *gate) allowed(ip netip.Addr) bool {
	if len(g.cfg.Allow) == 0 {
		return true
	}
	for _, p := range g.cfg.Allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// take spends a token of ip's bucket. When refused, log says whether this
// refusal should be logged (the first, then one line per 10 s with a count).
func (g *gate) take(ip netip.Addr) (ok bool, log bool, dropped int) {
	if g.cfg.InviteRate <= 0 {
		return true, false, 0
	}
	now := g.clock()
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.buckets[ip]
	if b == nil {
		if len(g.buckets) >= maxBuckets {
			g.sweep(now)
		}
		b = &bucket{tokens: float64(g.cfg.InviteBurst), at: now}
		g.buckets[ip] = b
	}
	b.tokens = min(float64(g.cfg.InviteBurst), b.tokens+now.Sub(b.at).Seconds()*g.cfg.InviteRate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, false, 0
	}
	b.dropped++
	if now.Sub(b.loggedAt) >= 10*time.Second {
		n := b.dropped
		b.dropped, b.loggedAt = 0, now
		return false, true, n
	}
	return false, false, 0
}

// sweep forgets full buckets (sources that have been quiet long enough to
// refill), and if that is not enough, half of the rest.
func (g *gate) sweep(now time.Time) {
	full := time.Duration(float64(g.cfg.InviteBurst)/g.cfg.InviteRate*float64(time.Second)) + time.Second
	for ip, b := range g.buckets {
		if now.Sub(b.at) > full {
			delete(g.buckets, ip)
		}
	}
	for ip := range g.buckets {
		if len(g.buckets) < maxBuckets/2 {
			break
		}
		delete(g.buckets, ip)
	}
}

func (g *gate) count(reason string) {
	g.mu.Lock()
	g.rejected[reason]++
	g.mu.Unlock()
	if reason != Challenged {
		g.refused(reason)
	}
}

// refused tells Config.OnRefused of an INVITE refused before it became a
// call.
func (g *gate) refused(reason string) {
	if g.onRefused != nil {
		g.onRefused(reason)
	}
}

// Rejections counts the INVITEs refused, by reason.
func (u *UA) Rejections() map[string]uint64 {
	g := u.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]uint64, len(g.rejected))
	for k, v := range g.rejected {
		out[k] = v
	}
	return out
}

// nonceLifetime bounds how long a challenge may be answered.
const nonceLifetime = 5 * time.Minute

// nonce is a stateless challenge: its time and a MAC over it, so any
// answer can be checked without remembering what was sent.
func (g *gate) nonce(now time.Time) string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.Unix()))
	m := hmac.New(sha256.New, g.nonceKey)
	m.Write(b[:8])
	copy(b[8:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// nonceValid reports whether nonce is ours, and whether it is fresh.
func (g *gate) nonceValid(nonce string, now time.Time) (ours, fresh bool) {
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != 24 {
		return false, false
	}
	m := hmac.New(sha256.New, g.nonceKey)
	m.Write(b[:8])
	if !hmac.Equal(m.Sum(nil)[:16], b[8:]) {
		return false, false
	}
	age := now.Sub(time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0))
	return true, age >= -time.Minute && age <= nonceLifetime
}

// authenticate checks an INVITE's digest credentials. It returns the user,
// or why not; stale means a valid but expired nonce (challenge again, with
// stale=true, so the caller's phone retries without asking its user).
func (g *gate) authenticate(req *sip.Request) (user string, stale bool, why string) {
	h := req.GetHeader("Authorization")
	if h == nil {
		h = req.GetHeader("Proxy-Authorization")
	}
	if h == nil {
		return "", false, "no credentials"
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil {
		return "", false, "unreadable credentials"
	}
	pass, ok := g.cfg.Users[cred.Username]
	if !ok || cred.Realm != g.cfg.Realm {
		return "", false, "unknown user or realm"
	}
	ours, fresh := g.nonceValid(cred.Nonce, g.clock())
	if !ours {
		return "", false, "not our nonce"
	}
	qop := []string{}
	if cred.QOP != "" {
		qop = []string{cred.QOP}
	}
	want, err := digest.Digest(&digest.Challenge{Realm: g.cfg.Realm, Nonce: cred.Nonce, Algorithm: cred.Algorithm, QOP: qop, Opaque: cred.Opaque},
		digest.Options{Method: string(req.Method), URI: cred.URI, Username: cred.Username, Password: pass.Reveal(), Cnonce: cred.Cnonce, Count: cred.Nc})
	if err != nil {
		return "", false, "unsupported digest: " + err.Error()
	}
	if subtle.ConstantTimeCompare([]byte(want.Response), []byte(cred.Response)) != 1 {
		return "", false, "wrong password for " + cred.Username
	}
	if !fresh {
		return "", true, "stale nonce"
	}
	return cred.Username, false, ""
}

// challenge is the WWW-Authenticate of a 401.
func (g *gate) challenge(stale bool) sip.Header {
	v := `Digest realm="` + g.cfg.Realm + `", nonce="` + g.nonce(g.clock()) + `", algorithm=MD5, qop="auth"`
	if stale {
		v += ", stale=true"
	}
	return sip.NewHeader("WWW-Authenticate", v)
}

// admit decides on a new INVITE before any work is done for it. It answers
// the refused ones itself and returns false for them.
func (u *UA) admit(req *sip.Request, tx sip.ServerTransaction, log zerolog.Logger) bool {
	g := u.gate
	ip := sourceIP(req)
	allowed := g.allowed(ip)
	if !allowed || len(g.cfg.Allow) == 0 {
		if ok, logIt, n := g.take(ip); !ok {
			g.count(RejectRateLimited)
			if logIt {
				log.Warn().Str("source", ip.String()).Str("reason", RejectRateLimited).Int("refused", n).
					Msg("sip: INVITE refused: too many from this source (further ones are counted, logged every 10 s)")
			}
			u.respond(tx, req, 503, "Service Unavailable (rate limited)", nil, sip.NewHeader("Retry-After", "10"))
			return false
		}
	}
	if !allowed && len(g.cfg.Users) == 0 {
		g.count(RejectNotAllowed)
		log.Warn().Str("source", ip.String()).Str("reason", RejectNotAllowed).Msg("sip: INVITE refused: source not in admission.allow")
		u.respond(tx, req, 403, "Forbidden (source not allowed)", nil)
		return false
	}
	if !allowed || (len(g.cfg.Allow) == 0 && len(g.cfg.Users) > 0) {
		user, stale, why := g.authenticate(req)
		if user == "" {
			if req.GetHeader("Authorization") != nil && !stale {
				g.count(RejectAuthFailed)
				log.Warn().Str("source", ip.String()).Str("reason", RejectAuthFailed).Str("why", why).Msg("sip: INVITE refused: authentication failed")
				u.respond(tx, req, 403, "Forbidden (authentication failed)", nil)
				return false
			}
			g.count(Challenged)
			log.Debug().Str("source", ip.String()).Str("why", why).Msg("sip: INVITE challenged")
			u.respond(tx, req, 401, "Unauthorized", nil, g.challenge(stale))
			return false
		}
		log.Debug().Str("user", user).Msg("sip: INVITE authenticated")
	}
	return true
}

// sourceIP is where a request came from (the transport's source, not what
// its headers claim).
func sourceIP(req *sip.Request) netip.Addr {
	src := req.Source()
	if ap, err := netip.ParseAddrPort(src); err == nil {
		return ap.Addr().Unmap()
	}
	host := src
	if i := strings.LastIndexByte(src, ':'); i > 0 {
		host = src[:i]
	}
	a, _ := netip.ParseAddr(strings.Trim(host, "[]"))
	return a.Unmap()
}
