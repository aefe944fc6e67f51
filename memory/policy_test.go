package memory

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestPolicyCallerID(t *testing.T) {
	headers := map[string]string{"X-Customer": "Acme-42"}
	header := func(name string) string { return headers[name] }
	cases := []struct {
		name   string
		policy Policy
		from   string
		want   string
	}{
		{"off", Policy{}, "+1 555 0100", ""},
		{"by number", Policy{Enabled: true}, "+1 (555) 010-0000", "+15550100000"},
		{"anonymous", Policy{Enabled: true}, "anonymous", ""},
		{"by header", Policy{Enabled: true, IdentityHeader: "X-Customer"}, "+15550100000", "acme-42"},
		{"header missing", Policy{Enabled: true, IdentityHeader: "X-Account"}, "+15550100000", ""},
	}
	for _, c := range cases {
		if got := c.policy.CallerID(c.from, header); got != c.want {
			t.Errorf("%s: CallerID(%q) = %q, want %q", c.name, c.from, got, c.want)
		}
	}
}

func TestPolicyWithin(t *testing.T) {
	p := Policy{MaxAge: 30 * 24 * time.Hour}
	if got := p.Within(24 * time.Hour).MaxAge; got != 24*time.Hour {
		t.Errorf("a store keeping a day: max age %s", got)
	}
	if got := p.Within(0).MaxAge; got != p.MaxAge {
		t.Errorf("a store keeping for ever: max age %s", got)
	}
	if got := p.Within(90 * 24 * time.Hour).MaxAge; got != p.MaxAge {
		t.Errorf("a store keeping longer: max age %s", got)
	}
}

func TestOpen(t *testing.T) {
	if _, err := Open(Config{Store: "etcd"}, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), `"etcd"`) {
		t.Errorf("unknown store: %v", err)
	}
	s, err := Open(Config{Store: "sqlite", Path: filepath.Join(t.TempDir(), "m", "memory.db"), Timeout: time.Second}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Append(ctx, "+15550100000", []Turn{{Role: "user", Text: "hello", At: time.Now(), CallID: "c1"}}); err != nil {
		t.Fatal(err)
	}
	if turns, err := s.Recent(ctx, "+15550100000", time.Time{}, 10); err != nil || len(turns) != 1 {
		t.Errorf("recent: %v, %v", turns, err)
	}
}
