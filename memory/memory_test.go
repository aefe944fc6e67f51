package memory

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/voicebot/voicebot/internal/testredis"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stores runs a test against both implementations, each on a real backend:
// a SQLite file in a temp dir, a redis-server on a loopback port.
func stores(t *testing.T, test func(t *testing.T, s Store)) {
	t.Run("sqlite", func(t *testing.T) {
		s, err := OpenSQLite(filepath.Join(t.TempDir(), "sub", "memory.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		test(t, s)
	})
	t.Run("redis", func(t *testing.T) {
		srv := testredis.Start(t)
		s := OpenRedis(RedisConfig{Addr: srv.Addr, TTL: time.Hour})
		defer s.Close()
		test(t, s)
	})
}

func call(id string, at time.Time, texts ...string) []Turn {
	var out []Turn
	for i, text := range texts {
		role := "user"
		if i%2 == 0 {
			role = "assistant"
		}
		out = append(out, Turn{Role: role, Text: text, At: at.Add(time.Duration(i) * time.Second), CallID: id})
	}
	return out
}

func texts(turns []Turn) string {
	var out []string
	for _, t := range turns {
		out = append(out, t.Text)
	}
	return strings.Join(out, "|")
}

func TestStoreKeepsCallersApart(t *testing.T) {
	stores(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		day := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
		if err := s.Append(ctx, "+15550100", call("c1", day, "Hello", "My order is late", "Sorry to hear")); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, "+15550100", call("c2", day.Add(time.Hour), "Welcome back", "Is it there yet?")); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, "+15550199", call("c3", day, "Hi", "Wrong number")); err != nil {
			t.Fatal(err)
		}
		got, err := s.Recent(ctx, "+15550100", time.Time{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if texts(got) != "Hello|My order is late|Sorry to hear|Welcome back|Is it there yet?" {
			t.Errorf("recent: %q", texts(got))
		}
		if got[0].Role != "assistant" || got[1].Role != "user" || got[0].CallID != "c1" || !got[0].At.Equal(day) {
			t.Errorf("first turn %+v", got[0])
		}
		// The newest turns within the count, oldest first.
		if got, _ := s.Recent(ctx, "+15550100", time.Time{}, 2); texts(got) != "Welcome back|Is it there yet?" {
			t.Errorf("last two: %q", texts(got))
		}
		// Nothing older than since.
		if got, _ := s.Recent(ctx, "+15550100", day.Add(30*time.Minute), 10); texts(got) != "Welcome back|Is it there yet?" {
			t.Errorf("since: %q", texts(got))
		}
		if got, _ := s.Recent(ctx, "+15550000", time.Time{}, 10); len(got) != 0 {
			t.Errorf("a stranger has turns: %q", texts(got))
		}
		// Forgetting one caller leaves the other.
		n, err := s.Forget(ctx, "+15550100")
		if err != nil || n != 5 {
			t.Errorf("forget: %d, %v; want 5 turns", n, err)
		}
		if got, _ := s.Recent(ctx, "+15550100", time.Time{}, 10); len(got) != 0 {
			t.Errorf("forgotten caller still has %q", texts(got))
		}
		if got, _ := s.Recent(ctx, "+15550199", time.Time{}, 10); texts(got) != "Hi|Wrong number" {
			t.Errorf("the other caller: %q", texts(got))
		}
		if n, err := s.Forget(ctx, "+15550100"); err != nil || n != 0 {
			t.Errorf("forgetting again: %d, %v", n, err)
		}
	})
}

// Expire deletes what is past the TTL, for every caller, and nothing newer.
func TestStoreExpires(t *testing.T) {
	stores(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		now := time.Now()
		old, recent := now.Add(-40*24*time.Hour), now.Add(-time.Hour)
		_ = s.Append(ctx, "a", call("c1", old, "old a1", "old a2"))
		_ = s.Append(ctx, "a", call("c2", recent, "new a"))
		_ = s.Append(ctx, "b", call("c3", old, "old b"))
		n, err := s.Expire(ctx, now.Add(-30*24*time.Hour))
		if err != nil || n != 3 {
			t.Errorf("expire: %d, %v; want 3 turns", n, err)
		}
		if got, _ := s.Recent(ctx, "a", time.Time{}, 10); texts(got) != "new a" {
			t.Errorf("a after expiry: %q", texts(got))
		}
		if got, _ := s.Recent(ctx, "b", time.Time{}, 10); len(got) != 0 {
			t.Errorf("b after expiry: %q", texts(got))
		}
	})
}

// A Redis list expires by itself ttl after the caller's last call.
func TestRedisListExpiresByItself(t *testing.T) {
	srv := testredis.Start(t)
	s := OpenRedis(RedisConfig{Addr: srv.Addr, TTL: 1 * time.Second})
	defer s.Close()
	ctx := context.Background()
	if err := s.Append(ctx, "a", call("c1", time.Now(), "hello")); err != nil {
		t.Fatal(err)
	}
	ttl, err := s.client.TTL(ctx, s.key("a")).Result()
	if err != nil || ttl <= 0 || ttl > time.Second {
		t.Fatalf("key TTL %v, %v; want the store's 1s", ttl, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := s.Recent(ctx, "a", time.Time{}, 10)
		if len(got) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the caller's turns outlived the TTL")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A Redis that goes away fails fast (the call goes on), and once back it
// serves again without a restart of ours.
func TestRedisOutageAndReturn(t *testing.T) {
	srv := testredis.Start(t)
	s := OpenRedis(RedisConfig{Addr: srv.Addr, TTL: time.Hour})
	defer s.Close()
	ctx := context.Background()
	if err := s.Append(ctx, "a", call("c1", time.Now(), "hello")); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	start := time.Now()
	if _, err := s.Recent(ctx, "a", time.Time{}, 10); err == nil {
		t.Fatal("no error from a stopped Redis")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a stopped Redis took %v to fail", took)
	}
	srv.Restart() // no persistence: it comes back empty
	if err := s.Append(ctx, "a", call("c2", time.Now(), "again")); err != nil {
		t.Fatalf("after Redis came back: %v", err)
	}
	if got, _ := s.Recent(ctx, "a", time.Time{}, 10); texts(got) != "again" {
		t.Errorf("after Redis came back: %q", texts(got))
	}
}

// Turns that are not ours in a Redis list are skipped, not fatal.
func TestRedisSkipsDamagedTurns(t *testing.T) {
	srv := testredis.Start(t)
	s := OpenRedis(RedisConfig{Addr: srv.Addr, TTL: time.Hour})
	defer s.Close()
	ctx := context.Background()
	_ = s.Append(ctx, "a", call("c1", time.Now(), "one"))
	s.client.RPush(ctx, s.key("a"), "{not json", `"a string"`)
	_ = s.Append(ctx, "a", call("c2", time.Now(), "two"))
	if got, err := s.Recent(ctx, "a", time.Time{}, 10); err != nil || texts(got) != "one|two" {
		t.Errorf("recent over damaged turns: %q, %v", texts(got), err)
	}
}

func TestIdentity(t *testing.T) {
	for in, want := range map[string]string{
		"+15550100000":                "+15550100000",
		"+1 (555) 010-0000":           "+15550100000",
		"555.010.0000":                "5550100000",
		"0044 20 7946 0000":           "00442079460000",
		"15550100;phone-context=x":    "15550100",
		"sip:alice@example.com":       "alice",
		"Alice":                       "alice",
		"Anonymous":                   "",
		"anonymous@anonymous.invalid": "",
		"":                            "",
		"  ":                          "",
		"12":                          "12", // short numbers are SIP users then
		"bob/../../etc":               "bob....etc",
		"+1+2":                        "+1+2",
	} {
		if got := Identity(in); got != want {
			t.Errorf("Identity(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Identity(strings.Repeat("9", 200)); got != "" && len(got) > maxIdentity {
		t.Errorf("an identity of %d characters", len(got))
	}
}

func FuzzIdentity(f *testing.F) {
	for _, s := range []string{"+1 (555) 010-0000", "sip:alice@example.com", "anonymous", "", "12", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id := Identity(s)
		if len(id) > maxIdentity {
			t.Fatalf("identity of %d bytes", len(id))
		}
		if again := Identity(id); again != id {
			t.Fatalf("Identity(%q) = %q, but Identity of that is %q", s, id, again)
		}
	})
}

func TestBudgetDropsOldestFirst(t *testing.T) {
	turns := call("c", time.Now(), "aaaa", "bbbb", "cccc")
	if got := Budget(turns, 8); texts(got) != "bbbb|cccc" {
		t.Errorf("budget 8: %q", texts(got))
	}
	if got := Budget(turns, 100); len(got) != 3 {
		t.Errorf("budget 100 kept %d", len(got))
	}
	if got := Budget(turns, 3); len(got) != 0 {
		t.Errorf("budget 3 kept %q", texts(got))
	}
}

// failing is a store that is down, or slow until its context ends.
type failing struct {
	Store
	mu   sync.Mutex
	err  error
	slow bool
}

func (f *failing) Recent(ctx context.Context, _ string, _ time.Time, _ int) ([]Turn, error) {
	f.mu.Lock()
	err, slow := f.err, f.slow
	f.mu.Unlock()
	if slow {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, err
}

// An outage is logged once when it starts and once when it ends, however
// many calls meet it, and a slow store is cut off at the timeout.
func TestGuardedLogsOnceAndBounds(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	log := zerolog.New(zerolog.SyncWriter(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	})))
	f := &failing{err: errors.New("connection refused")}
	g := Guarded(f, 50*time.Millisecond, log)
	for i := 0; i < 5; i++ {
		if _, err := g.Recent(context.Background(), "a", time.Time{}, 1); err == nil {
			t.Fatal("no error through the guard")
		}
	}
	f.mu.Lock()
	f.err = nil
	f.mu.Unlock()
	_, _ = g.Recent(context.Background(), "a", time.Time{}, 1)
	_, _ = g.Recent(context.Background(), "a", time.Time{}, 1)
	f.mu.Lock()
	f.slow = true
	f.mu.Unlock()
	start := time.Now()
	_, err := g.Recent(context.Background(), "a", time.Time{}, 1)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Errorf("slow store: %v after %v", err, time.Since(start))
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if n := strings.Count(out, "store unavailable"); n != 2 {
		t.Errorf("%d outage lines, want 2 (the refusal, then the slow one):\n%s", n, out)
	}
	if n := strings.Count(out, "store back"); n != 1 {
		t.Errorf("%d recovery lines, want 1:\n%s", n, out)
	}
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

// A store that cannot be opened says where and why, in words.
func TestSQLiteOpenErrorsSayWhy(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("not a database. ", 20)), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		dir:   "names a directory",
		notDB: "not an SQLite database",
	} {
		_, err := OpenSQLite(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want it named and %q", path, err, want)
		}
	}
}

// go-redis's own lines (a dial failure per attempt while Redis is down)
// reach our log at debug, not stderr in their own format.
func TestRedisLibraryLogsAreOurs(t *testing.T) {
	var out syncBuf
	useLogger(zerolog.New(&out))
	redisLogger{log: zerolog.New(&out)}.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts", 5)
	if !strings.Contains(out.String(), `"level":"debug"`) || !strings.Contains(out.String(), "failed to dial after 5 attempts") {
		t.Errorf("logged %q", out.String())
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
