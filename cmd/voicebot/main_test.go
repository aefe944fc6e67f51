package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/config"
)

// voicebot -check refuses beta against api.openai.com, naming the key and
// the fix; Azure's beta loads with a deprecation warning.
func TestCheckRefusesBetaAgainstOpenAI(t *testing.T) {
	var out bytes.Buffer
	err := run([]string{"-check"}, []string{"OPENAI_API_KEY=sk-test-not-a-key", "VOICEBOT_REALTIME_DIALECT=beta"}, &out)
	if err == nil || !strings.Contains(err.Error(), "realtime.dialect") || !strings.Contains(err.Error(), "ga") {
		t.Fatalf("-check: %v", err)
	}
	if strings.Contains(err.Error()+out.String(), "sk-test-not-a-key") {
		t.Error("the key leaked")
	}
	out.Reset()
	err = run([]string{"-check"}, []string{"AZURE_OPENAI_API_KEY=k", "VOICEBOT_REALTIME_DIALECT=beta",
		"VOICEBOT_REALTIME_AZURE_ENDPOINT=https://r.openai.azure.com", "VOICEBOT_REALTIME_AZURE_DEPLOYMENT=gpt-4o-realtime-preview"}, &out)
	if err != nil {
		t.Fatalf("-check azure beta: %v", err)
	}
	if !strings.Contains(out.String(), "2026-04-30") {
		t.Errorf("no deprecation warning: %s", out.String())
	}
}

// The console format is for people: no colour codes in a file or pipe (or
// with NO_COLOR), and a call's "caller" is a field like any other, not
// drawn as zerolog's source location.
func TestConsoleLogsForPeople(t *testing.T) {
	var out bytes.Buffer
	log := newLogger(config.Log{Level: "info", Format: "console"}, &out, false)
	log.Info().Str("caller", "+15550100").Dur("took", 1500*time.Millisecond).Msg("call: ended")
	line := out.String()
	if strings.Contains(line, "\x1b[") {
		t.Errorf("colour codes in a non-terminal: %q", line)
	}
	if !strings.Contains(line, "caller=+15550100") {
		t.Errorf("the caller field is not shown as a field: %q", line)
	}
	if !strings.Contains(line, "took=1.5s") {
		t.Errorf("a duration is not written as one: %q", line)
	}
}
