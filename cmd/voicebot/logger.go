package main

import (
	"io"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/voicebot/voicebot/config"
)

// newLogger writes JSON, or the console format for people: coloured only
// on a terminal and without NO_COLOR (https://no-color.org).
func newLogger(c config.Log, w io.Writer, noColor bool) zerolog.Logger {
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	// Durations read as durations ("30s", "8.5ms"), in either format: a
	// bare number leaves the reader to guess its unit.
	zerolog.DurationFieldFormat = zerolog.DurationFormatString
	// Calls log their "caller" (who rang): not zerolog's source location,
	// which the console writer would draw as one (voicebot logs none).
	zerolog.CallerFieldName = "log_location"
	var out io.Writer = w
	if c.Format == "console" {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000", NoColor: noColor || !isTerminal(w)}
	}
	return zerolog.New(out).Level(level).With().Timestamp().Logger()
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}
