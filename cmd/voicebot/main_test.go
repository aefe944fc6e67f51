package main

import (
	"bytes"
	"strings"
	"testing"
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
