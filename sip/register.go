package sip

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// Registration (RFC 3261 §10) keeps us reachable at a PBX extension or a
// trunk account: REGISTER with digest authentication, refreshed before it
// expires, retried with backoff after a failure, and removed (Expires: 0)
// at shutdown.

// RegistrationState is where a registration stands.
type RegistrationState string

// Registration states.
const (
	Registering  RegistrationState = "registering"
	Registered   RegistrationState = "registered"
	RegFailed    RegistrationState = "failed"
	Unregistered RegistrationState = "unregistered"
)

// RegistrationStatus is one trunk's registration as last seen.
type RegistrationStatus struct {
	Trunk    string
	State    RegistrationState
	Until    time.Time // the registration's expiry, when registered
	Code     int       // the last final response, 0 for none
	Error    string    // why the last attempt failed
	Failures int       // attempts failed in a row
}

// Registrations reports the state of every registration.
func (u *UA) Registrations() []RegistrationStatus {
	u.mu.Lock()
	regs := append([]*registration(nil), u.registrations...)
	u.mu.Unlock()
	out := make([]RegistrationStatus, 0, len(regs))
	for _, r := range regs {
		out = append(out, r.snapshot())
	}
	return out
}

type registration struct {
	ua     *UA
	trunk  Trunk
	log    zerolog.Logger
	callID string
	tag    string

	mu     sync.Mutex
	cseq   uint32
	status RegistrationStatus
}

func newRegistration(u *UA, t Trunk) *registration {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return &registration{
		ua: u, trunk: t, callID: hex.EncodeToString(b[:8]) + "@voicebot", tag: hex.EncodeToString(b[8:]),
		log:    u.log.With().Str("trunk", t.Name).Str("registrar", t.Address).Logger(),
		status: RegistrationStatus{Trunk: t.Name, State: Registering},
	}
}

func (r *registration) snapshot() RegistrationStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

func (r *registration) set(f func(*RegistrationStatus)) {
	r.mu.Lock()
	f(&r.status)
	r.mu.Unlock()
}

// RegisterError is a REGISTER the registrar refused, or did not answer (408).
type RegisterError struct {
	Code       int
	Reason     string
	RetryAfter time.Duration // the registrar's Retry-After, 0 if none
}

func (e *RegisterError) Error() string { return fmt.Sprintf("register: %d %s", e.Code, e.Reason) }

// run keeps the registration until ctx ends, then removes it.
func (r *registration) run(ctx context.Context) {
	clk := r.ua.cfg.Clock
	failures := 0
	registered := false
	for {
		granted, err := r.register(ctx, r.trunk.RegisterExpires)
		if ctx.Err() != nil {
			break
		}
		var wait time.Duration
		if err == nil {
			failures = 0
			registered = true
			wait = refreshAfter(granted)
			until := clk.Now().Add(granted)
			r.set(func(s *RegistrationStatus) {
				*s = RegistrationStatus{Trunk: r.trunk.Name, State: Registered, Until: until, Code: 200}
			})
			r.log.Info().Dur("expires", granted).Dur("refresh_in", wait).Msg("registration: registered")
		} else {
			var re *RegisterError
			code, retryAfter := 0, time.Duration(0)
			if errors.As(err, &re) {
				code, retryAfter = re.Code, re.RetryAfter
			}
			wait = retryDelay(failures, retryAfter)
			failures++
			n := failures
			r.set(func(s *RegistrationStatus) {
				*s = RegistrationStatus{Trunk: r.trunk.Name, State: RegFailed, Code: code, Error: err.Error(), Failures: n}
			})
			r.log.Warn().Err(err).Int("code", code).Int("failures", n).Dur("retry_in", wait).Msg("registration: failed")
		}
		t := clk.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C():
		}
		t.Stop()
		if ctx.Err() != nil {
			break
		}
	}
	if !registered {
		r.set(func(s *RegistrationStatus) { s.State = Unregistered })
		return
	}
	// Un-REGISTER, bounded: shutdown must not hang on a dead registrar.
	uctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := r.register(uctx, 0); err != nil {
		r.log.Warn().Err(err).Msg("registration: un-REGISTER failed")
	} else {
		r.log.Info().Msg("registration: unregistered")
	}
	r.set(func(s *RegistrationStatus) { s.State, s.Until = Unregistered, time.Time{} })
}

// refreshAfter is when to refresh a registration granted for d: at 85 % of
// its life, so one lost refresh can still be retried in time.
func refreshAfter(d time.Duration) time.Duration {
	return max(d*85/100, time.Second)
}

// retryDelay is the wait after failures failed attempts in a row: 5 s
// doubling to 5 min, with ±20 % jitter so many instances do not retry in
// step; a registrar's Retry-After, when longer, wins.
func retryDelay(failures int, retryAfter time.Duration) time.Duration {
	d := 5 * time.Second
	for i := 0; i < failures && d < 5*time.Minute; i++ {
		d *= 2
	}
	d = min(d, 5*time.Minute)
	d = d*8/10 + time.Duration(mrand.Int64N(int64(d*4/10)+1))
	if retryAfter > d {
		return retryAfter
	}
	return d
}

// register sends one REGISTER for expires (0 removes the binding),
// answering digest challenges and a 423, and returns what the registrar
// granted.
func (r *registration) register(ctx context.Context, expires time.Duration) (time.Duration, error) {
	t := &r.trunk
	aor := t.aor()
	contact := r.ua.contactFor(t.Username, t.Transport, t.Address)
	var auth *sip.Response
	for attempt := 0; attempt < 4; attempt++ {
		req := r.request(aor, contact, expires)
		if auth != nil {
			if err := t.authorize(req, auth); err != nil {
				return 0, fmt.Errorf("register: %w", err)
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 32*time.Second)
		res, err := r.ua.do(rctx, req)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, &RegisterError{Code: 408, Reason: "no answer from the registrar"}
		}
		switch {
		case res.StatusCode == 401 || res.StatusCode == 407:
			if auth != nil || t.Password == "" {
				return 0, &RegisterError{Code: res.StatusCode, Reason: "authentication failed (check the username and password)"}
			}
			auth = res
			continue
		case res.StatusCode == 423:
			min, err := strconv.Atoi(headerValue(res, "Min-Expires"))
			if err != nil || min <= 0 || time.Duration(min)*time.Second <= expires {
				return 0, &RegisterError{Code: 423, Reason: "interval too brief, and no usable Min-Expires"}
			}
			expires = time.Duration(min) * time.Second
			continue
		case res.StatusCode >= 300:
			e := &RegisterError{Code: res.StatusCode, Reason: res.Reason}
			if s, err := strconv.Atoi(strings.Fields(headerValue(res, "Retry-After") + " x")[0]); err == nil && s > 0 {
				e.RetryAfter = time.Duration(s) * time.Second
			}
			return 0, e
		}
		return grantedExpires(res, contact, expires), nil
	}
	return 0, &RegisterError{Code: 401, Reason: "too many challenges"}
}

func (r *registration) request(aor sip.Uri, contact *sip.ContactHeader, expires time.Duration) *sip.Request {
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: aor.Host, Port: aor.Port})
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", r.tag)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor})
	cid := sip.CallIDHeader(r.callID)
	req.AppendHeader(&cid)
	r.mu.Lock()
	r.cseq++
	cseq := r.cseq
	r.mu.Unlock()
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.REGISTER})
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxFwd)
	req.AppendHeader(contact)
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	req.AppendHeader(sip.NewHeader("User-Agent", r.ua.cfg.UserAgent))
	req.AppendHeader(sip.NewHeader("Allow", allowMethods))
	req.SetTransport(strings.ToUpper(r.trunk.Transport))
	req.SetDestination(r.trunk.Address)
	req.SetBody(nil)
	return req
}

// grantedExpires reads the lifetime the registrar gave our binding: the
// expires parameter of our Contact in the 200, else its Expires header,
// else what we asked for.
func grantedExpires(res *sip.Response, ours *sip.ContactHeader, asked time.Duration) time.Duration {
	for _, h := range res.GetHeaders("Contact") {
		for _, v := range splitContacts(h.Value()) {
			var u sip.Uri
			params := sip.NewParams()
			if _, err := sip.ParseAddressValue(v, &u, &params); err != nil {
				continue
			}
			if u.User != ours.Address.User || u.Host != ours.Address.Host || (u.Port != ours.Address.Port && u.Port != 0) {
				continue
			}
			if e, ok := params.Get("expires"); ok {
				if n, err := strconv.Atoi(e); err == nil && n >= 0 {
					return time.Duration(n) * time.Second
				}
			}
		}
	}
	if n, err := strconv.Atoi(headerValue(res, "Expires")); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	return asked
}

// splitContacts splits a Contact header value at the commas between
// addresses (not those inside <> or quotes).
func splitContacts(v string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i, c := range v {
		switch {
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '<':
			depth++
		case c == '>':
			depth--
		case c == ',' && depth == 0:
			out = append(out, strings.TrimSpace(v[start:i]))
			start = i + 1
		}
	}
	return append(out, strings.TrimSpace(v[start:]))
}
