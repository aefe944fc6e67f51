package sip

import (
	"context"
	"log/slog"
	"strings"

	"github.com/rs/zerolog"
)

// slogHandler writes sipgo's slog records into our zerolog logger, so every
// line has one format. sipgo is chatty at debug; its debug becomes our trace.
type slogHandler struct {
	log   zerolog.Logger
	attrs []slog.Attr
}

func newSlogHandler(log zerolog.Logger) slog.Handler { return &slogHandler{log: log} }

func (h *slogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.log.GetLevel() <= zerologLevel(l)
}

func zerologLevel(l slog.Level) zerolog.Level {
	switch {
	case l >= slog.LevelError:
		return zerolog.ErrorLevel
	case l >= slog.LevelWarn:
		return zerolog.WarnLevel
	case l >= slog.LevelInfo:
		return zerolog.DebugLevel // sipgo's info is routine for us
	default:
		return zerolog.TraceLevel
	}
}

// maxLoggedAttr bounds a value sipgo logs: it logs whole datagrams it
// cannot parse, and those are whatever a scanner sends.
const maxLoggedAttr = 300

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	level := zerologLevel(r.Level)
	switch {
	case r.Message == "failed to parse":
		// Garbage from the network is the sender's fault, and a flood of it
		// must not flood the log at error level.
		level = zerolog.DebugLevel
	case strings.HasSuffix(r.Message, "ref went negative") || strings.Contains(r.Message, "ref went negative on"):
		// sipgo's connection reference count, off by one after every TCP
		// call it closes: its bookkeeping, nothing an operator can act on.
		level = zerolog.DebugLevel
	}
	ev := h.log.WithLevel(level)
	if ev == nil {
		return nil
	}
	ev = ev.Str("component", "sipgo")
	add := func(a slog.Attr) bool {
		if v := a.Value; v.Kind() == slog.KindString && len(v.String()) > maxLoggedAttr {
			ev = ev.Str(a.Key, v.String()[:maxLoggedAttr]+"…")
			return true
		}
		ev = ev.Interface(a.Key, a.Value.Any())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	ev.Msg(r.Message)
	return nil
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &slogHandler{log: h.log, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *slogHandler) WithGroup(string) slog.Handler { return h }
