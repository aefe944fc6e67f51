package config

import (
	"net/netip"
	"strings"
	"time"
)

// validateResilience checks the keys of reconnects, call limits, admission
// and shutdown.
func (c *Config) validateResilience(bad func(key, format string, args ...any)) {
	r := c.Realtime.Reconnect
	if r.Budget < 0 || r.Budget.D() > 5*time.Minute {
		bad("realtime.reconnect.budget", "must be 0s-5m, got %s", r.Budget)
	}
	if d := r.Buffer.D(); d < 0 || d > time.Minute {
		bad("realtime.reconnect.buffer", "must be 0s-1m, got %s", r.Buffer)
	}
	if t := r.FallbackTarget; t != "" {
		if _, ok := c.Agent.TransferTargets[t]; !ok {
			bad("realtime.reconnect.fallback_target", "%q is not one of agent.transfer_targets", t)
		}
	}
	if d := c.Realtime.RolloverBefore.D(); d < 10*time.Second || d > 30*time.Minute {
		bad("realtime.rollover_before", "must be 10s-30m, got %s", c.Realtime.RolloverBefore)
	}
	if d := c.Calls.RTPTimeout.D(); d != 0 && d < 2*time.Second {
		bad("calls.rtp_timeout", "must be 0s (off) or at least 2s, got %s", c.Calls.RTPTimeout)
	}
	if c.Calls.MaxDuration < 0 {
		bad("calls.max_duration", "must not be negative")
	}
	if w := c.Calls.MaxDurationWarning; w < 0 || (c.Calls.MaxDuration > 0 && w >= c.Calls.MaxDuration) {
		bad("calls.max_duration_warning", "must be 0s or shorter than calls.max_duration, got %s", w)
	}
	a := c.Admission
	if a.MaxCalls < 0 {
		bad("admission.max_calls", "must not be negative")
	}
	if a.OverCapacity != 486 && a.OverCapacity != 503 {
		bad("admission.over_capacity", "must be 486 or 503, got %d", a.OverCapacity)
	}
	if a.InviteRate < 0 || a.InviteBurst < 0 || (a.InviteRate > 0 && a.InviteBurst < 1) {
		bad("admission.invite_rate", "rate must be >= 0 and invite_burst >= 1 with a rate")
	}
	for _, n := range a.Allow {
		if _, err := ParseNetwork(n); err != nil {
			bad("admission.allow", "%q: want a CIDR (10.0.0.0/8) or an IP", n)
		}
	}
	if len(a.Auth.Users) > 0 && strings.TrimSpace(a.Auth.Realm) == "" {
		bad("admission.auth.realm", "must not be empty")
	}
	for u, p := range a.Auth.Users {
		if u == "" || strings.ContainsAny(u, " :@\"") {
			bad("admission.auth.users", "bad user name %q", u)
		}
		if p.Reveal() == "" {
			bad("admission.auth.users", "user %q has no password", u)
		}
	}
	oneOf(bad, "audio.transcode", c.Audio.Transcode, "pcm16", "passthrough")
	if c.Records.Retention < 0 {
		bad("records.retention", "must not be negative")
	}
	if c.Records.WAV && c.Records.Dir == "" {
		bad("records.wav", "needs records.dir")
	}
	if c.Shutdown.DrainTimeout < 0 {
		bad("shutdown.drain_timeout", "must not be negative")
	}
	if d := c.Shutdown.RetryAfter.D(); d < time.Second || d > time.Hour {
		bad("shutdown.retry_after", "must be 1s-1h, got %s", c.Shutdown.RetryAfter)
	}
}

// ParseNetwork reads an allowlist entry: a CIDR prefix or a single address.
func ParseNetwork(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}
