package sip

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// sipgo logs each datagram it cannot parse, whole, at error level: from a
// scanner that is a log flood. It goes to debug, cut short.
func TestSipgoParseFailuresAreQuietAndShort(t *testing.T) {
	var out strings.Builder
	h := newSlogHandler(zerolog.New(&out).Level(zerolog.InfoLevel))
	rec := slog.NewRecord(time.Now(), slog.LevelError, "failed to parse", 0)
	rec.AddAttrs(slog.String("data", strings.Repeat("x", 60000)))
	if err := h.Handle(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Fatalf("logged at info: %.100s", out.String())
	}
	out.Reset()
	h = newSlogHandler(zerolog.New(&out).Level(zerolog.DebugLevel))
	_ = h.Handle(context.Background(), rec)
	if n := out.Len(); n == 0 || n > 2*maxLoggedAttr {
		t.Fatalf("%d bytes logged for one garbage datagram", n)
	}
	other := slog.NewRecord(time.Now(), slog.LevelError, "transport closed", 0)
	out.Reset()
	_ = newSlogHandler(zerolog.New(&out).Level(zerolog.InfoLevel)).Handle(context.Background(), other)
	if !strings.Contains(out.String(), `"level":"error"`) {
		t.Errorf("sipgo's other errors stay errors: %s", out.String())
	}
}

// sipgo warns "TCP ref went negative" after every TCP call it closes: its
// own bookkeeping, kept out of an operator's log (debug).
func TestSipgoRefCountWarningsAreDebug(t *testing.T) {
	var out strings.Builder
	h := newSlogHandler(zerolog.New(&out).Level(zerolog.InfoLevel))
	for _, msg := range []string{"TCP ref went negative", "UDP ref went negative on try close"} {
		_ = h.Handle(context.Background(), slog.NewRecord(time.Now(), slog.LevelWarn, msg, 0))
	}
	if out.Len() != 0 {
		t.Errorf("logged at info: %s", out.String())
	}
}
