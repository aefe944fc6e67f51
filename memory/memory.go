// Package memory keeps what callers said on earlier calls, so a caller who
// rings back is not a stranger: per caller identity, the turns of past
// calls as the caller heard them. The Realtime API keeps nothing once a
// session ends, so the bridge gives a new call's model these turns as text.
package memory

import (
	"context"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rs/zerolog"
)

// Turn is one thing said on a call.
type Turn struct {
	Role   string    `json:"role"` // "user" (the caller) or "assistant" (the bot)
	Text   string    `json:"text"` // as heard: a bot answer cut by the caller keeps what was said
	At     time.Time `json:"at"`
	CallID string    `json:"call_id"`
}

// Store keeps turns per caller. Implementations are safe for concurrent use.
type Store interface {
	// Recent returns the caller's last turns (at most max) from since on,
	// oldest first.
	Recent(ctx context.Context, caller string, since time.Time, max int) ([]Turn, error)
	// Append adds turns of a call, in order.
	Append(ctx context.Context, caller string, turns []Turn) error
	// Forget deletes everything kept for the caller and reports how many
	// turns that was.
	Forget(ctx context.Context, caller string) (int, error)
	// Expire deletes every turn older than before and reports how many.
	// Stores that expire by themselves (Redis) may report 0.
	Expire(ctx context.Context, before time.Time) (int, error)
	Close() error
}

// maxIdentity bounds an identity's length (it is a key and a file row).
const maxIdentity = 64

// Identity is the caller's identity as memory keys it: a phone number
// without its punctuation ("+1 (555) 010-0000" → "+15550100000"), or a SIP
// user lower-cased and cut to safe characters. Anonymous and empty callers
// have none (""), and nothing is remembered for them.
func Identity(user string) string {
	user = strings.TrimSpace(user)
	if i := strings.IndexAny(user, ";@"); i >= 0 {
		user = user[:i] // user parameters, or a whole URI's host
	}
	user = strings.TrimPrefix(strings.TrimPrefix(user, "sip:"), "tel:")
	if phone, ok := phoneNumber(user); ok {
		return phone
	}
	var b strings.Builder
	for _, r := range strings.ToLower(user) {
		if b.Len() >= maxIdentity {
			break
		}
		if r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("._-+", r)) {
			b.WriteRune(r)
		}
	}
	id := b.String()
	if phone, ok := phoneNumber(id); ok {
		return phone // what was left of it is a number after all
	}
	switch id {
	case "anonymous", "unknown", "restricted", "private", "unavailable", "":
		return ""
	}
	return id
}

// phoneNumber reads s as a dialled number: digits with an optional leading
// +, and the punctuation people write numbers with.
func phoneNumber(s string) (string, bool) {
	var b strings.Builder
	digits := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
			digits++
		case r == '+' && b.Len() == 0:
			b.WriteRune(r)
		case strings.ContainsRune(" -.()/", r):
		default:
			return "", false
		}
	}
	if digits < 3 || b.Len() > maxIdentity {
		return "", false
	}
	return b.String(), true
}

// Guarded wraps a store so that its failures cost a call nothing but its
// memory: every operation is bounded by timeout, and an outage is logged
// once when it starts and once when it ends, not per call.
func Guarded(s Store, timeout time.Duration, log zerolog.Logger) Store {
	return &guarded{Store: s, timeout: timeout, log: log}
}

type guarded struct {
	Store
	timeout time.Duration
	log     zerolog.Logger
	mu      sync.Mutex
	down    bool
}

func (g *guarded) observe(op string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case err != nil && !g.down:
		g.down = true
		g.log.Warn().Err(err).Str("op", op).Msg("memory: store unavailable; calls go on without memory")
	case err == nil && g.down:
		g.down = false
		g.log.Info().Msg("memory: store back")
	}
}

func (g *guarded) Recent(ctx context.Context, caller string, since time.Time, max int) ([]Turn, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	turns, err := g.Store.Recent(ctx, caller, since, max)
	g.observe("recent", err)
	return turns, err
}

func (g *guarded) Append(ctx context.Context, caller string, turns []Turn) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	err := g.Store.Append(ctx, caller, turns)
	g.observe("append", err)
	return err
}

func (g *guarded) Forget(ctx context.Context, caller string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	n, err := g.Store.Forget(ctx, caller)
	g.observe("forget", err)
	return n, err
}

func (g *guarded) Expire(ctx context.Context, before time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*g.timeout) // a sweep may delete many rows
	defer cancel()
	n, err := g.Store.Expire(ctx, before)
	g.observe("expire", err)
	return n, err
}

// Sweep deletes turns older than ttl every interval until ctx ends.
func Sweep(ctx context.Context, s Store, ttl, interval time.Duration, now func() time.Time, log zerolog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.Expire(ctx, now().Add(-ttl)); err == nil && n > 0 {
			log.Info().Int("turns", n).Dur("ttl", ttl).Msg("memory: expired turns deleted")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Budget keeps the newest of turns that fit in maxChars of text (oldest
// dropped first), the bound of what a new call's model is given.
func Budget(turns []Turn, maxChars int) []Turn {
	chars := 0
	for i := len(turns) - 1; i >= 0; i-- {
		chars += utf8.RuneCountInString(turns[i].Text)
		if chars > maxChars {
			return turns[i+1:]
		}
	}
	return turns
}
