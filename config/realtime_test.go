package config

import (
	"strings"
	"testing"
)

// api.openai.com refuses the beta dialect since May 2026: a configuration
// that would send it there is refused at load, naming the key and the fix.
// Azure's preview deployments and other servers keep it.
func TestBetaDialectAgainstOpenAIIsRefused(t *testing.T) {
	for _, c := range []struct {
		name    string
		env     []string
		refused bool
		warns   string
	}{
		{"openai", []string{"OPENAI_API_KEY=sk-x", "VOICEBOT_REALTIME_DIALECT=beta"}, true, ""},
		{"openai by URL", []string{"OPENAI_API_KEY=sk-x", "VOICEBOT_REALTIME_DIALECT=beta",
			"VOICEBOT_REALTIME_URL=wss://api.openai.com/v1/realtime?model=gpt-4o-realtime-preview"}, true, ""},
		{"openai ga", []string{"OPENAI_API_KEY=sk-x"}, false, ""},
		{"azure", []string{"AZURE_OPENAI_API_KEY=k", "VOICEBOT_REALTIME_DIALECT=beta",
			"VOICEBOT_REALTIME_AZURE_ENDPOINT=https://r.openai.azure.com", "VOICEBOT_REALTIME_AZURE_DEPLOYMENT=d"}, false, "2026-04-30"},
		{"custom", []string{"VOICEBOT_REALTIME_DIALECT=beta", "VOICEBOT_REALTIME_URL=wss://realtime.example.com/v1/realtime"}, false, ""},
		{"demo", []string{"VOICEBOT_REALTIME_DIALECT=beta"}, false, ""},
	} {
		cfg, err := Load("", c.env)
		if c.refused {
			if err == nil || !strings.Contains(err.Error(), "realtime.dialect") || !strings.Contains(err.Error(), "realtime.dialect: ga") {
				t.Errorf("%s: %v, want realtime.dialect refused with the fix", c.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		warnings := strings.Join(cfg.Warnings(), "\n")
		if (c.warns == "") != (warnings == "") || !strings.Contains(warnings, c.warns) {
			t.Errorf("%s: warnings %q, want %q", c.name, warnings, c.warns)
		}
	}
}

// The beta dialect's models do not have the GA default voice: its default
// is one they have, and a GA-only voice chosen with it is warned of.
func TestBetaDialectDefaultVoice(t *testing.T) {
	cfg, err := Load("", []string{"VOICEBOT_REALTIME_DIALECT=beta"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Agent.Voice != "alloy" {
		t.Errorf("beta default voice %q", cfg.Agent.Voice)
	}
	if ga, _ := Load("", nil); ga.Agent.Voice != "marin" {
		t.Errorf("GA default voice %q", ga.Agent.Voice)
	}
	cfg, err = Parse([]byte("realtime: {dialect: beta}\nprofiles:\n  es: {voice: cedar}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := cfg.Profile("es"); p.Voice != "cedar" || !strings.Contains(strings.Join(cfg.Warnings(), "\n"), "profiles.es.voice") {
		t.Errorf("voice %q, warnings %q", p.Voice, cfg.Warnings())
	}
	if p, _ := cfg.Profile(""); p.Voice != "alloy" {
		t.Errorf("the agent's voice %q", p.Voice)
	}
}

// session.update may name the model only where the URL was built from it:
// never for an Azure deployment (the server knows its model) or a URL
// given whole, whose model may differ.
func TestModelInURL(t *testing.T) {
	for _, c := range []struct {
		env  []string
		want bool
	}{
		{[]string{"OPENAI_API_KEY=sk-x"}, true},
		{[]string{"OPENAI_API_KEY=sk-x", "VOICEBOT_REALTIME_URL=wss://gw.example.com/v1/realtime?model=x"}, false},
		{[]string{"AZURE_OPENAI_API_KEY=k", "VOICEBOT_REALTIME_AZURE_ENDPOINT=https://r.openai.azure.com", "VOICEBOT_REALTIME_AZURE_DEPLOYMENT=d"}, false},
		{nil, false}, // the demo
	} {
		cfg, err := Load("", c.env)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.ModelInURL(); got != c.want {
			t.Errorf("%v (provider %s): ModelInURL %v", c.env, cfg.Provider(), got)
		}
	}
}
