package config

import (
	"net/url"
	"strings"
)

// Where the model is and which dialect it speaks decide what may be sent:
// api.openai.com refuses the beta dialect since May 2026, Azure deprecated
// its preview (beta) protocol on 2026-04-30, and the beta models have their
// own voices.

// The providers a configuration resolves to (Provider).
const (
	ProviderDemo   = "demo"
	ProviderOpenAI = "openai"
	ProviderAzure  = "azure"
	ProviderCustom = "custom"
)

// openAIHost is OpenAI's API host, whichever way it is reached.
const openAIHost = "api.openai.com"

// Provider is who serves the calls: the demo model, OpenAI, Azure, or a
// server at a given URL.
func (c *Config) Provider() string {
	switch {
	case c.UseDemo():
		return ProviderDemo
	case c.Realtime.Provider == ProviderAzure || (c.Realtime.Provider == "auto" && c.Realtime.Azure.Endpoint != ""):
		return ProviderAzure
	case c.Realtime.URL != "" && c.Realtime.Provider != ProviderOpenAI:
		return ProviderCustom
	}
	return ProviderOpenAI
}

// ModelInURL reports whether the connection's URL is built from the
// configured model (OpenAI's own endpoint): only then may session.update
// name the model, which cannot differ from the connected one (an Azure
// deployment, a URL given whole).
func (c *Config) ModelInURL() bool {
	return c.Provider() == ProviderOpenAI && c.Realtime.URL == ""
}

// reachesOpenAI reports whether the calls' model is api.openai.com: its
// own endpoint, or a URL (which overrides any provider's) naming it.
func (c *Config) reachesOpenAI() bool {
	if c.UseDemo() {
		return false
	}
	if c.Realtime.URL == "" {
		return c.Provider() == ProviderOpenAI
	}
	u, err := url.Parse(c.Realtime.URL)
	if err != nil {
		return false
	}
	host := strings.ToLower(u.Hostname())
	return host == openAIHost || strings.HasSuffix(host, "."+openAIHost) // regional hosts (eu.api.openai.com)
}

// The voices of the beta dialect's models (gpt-4o-realtime-preview*), as
// the SDK's beta types list them; marin and cedar, the GA default and its
// sibling, are not among them.
var betaVoices = []string{"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse"}

const (
	defaultVoice     = "marin" // GA
	defaultBetaVoice = "alloy"
)

// resolveDialect adapts defaults to the dialect, before profiles inherit
// them: the beta models do not have the GA default voice. An agent voice
// of marin set by hand with beta is taken for the default (the two cannot
// be told apart here); a profile's is warned of.
func (c *Config) resolveDialect() {
	if c.Realtime.Dialect == "beta" && c.Agent.Voice == defaultVoice {
		c.Agent.Voice = defaultBetaVoice
	}
}

// validateDialect refuses what the model's server is known to refuse.
func (c *Config) validateDialect(bad func(key, format string, args ...any)) {
	if c.Realtime.Dialect != "beta" {
		return
	}
	if c.reachesOpenAI() {
		bad("realtime.dialect", "api.openai.com refuses the beta dialect since May 2026 (error beta_api_shape_disabled, every call would fail): "+
			"set realtime.dialect: ga (VOICEBOT_REALTIME_DIALECT=ga); beta is kept for Azure preview deployments and other servers")
	}
}

// Warnings are what is valid but likely wrong, or soon will not be: said
// once at start (and by -check).
func (c *Config) Warnings() []string {
	var out []string
	if c.Realtime.Dialect != "beta" {
		return nil
	}
	if c.Provider() == ProviderAzure {
		out = append(out, "realtime.dialect: beta: Azure deprecated its preview (beta) Realtime protocol on 2026-04-30; "+
			"move the deployment to the GA protocol and set realtime.dialect: ga")
	}
	// The beta types leave the voice open, so another model may have it:
	// a warning, not a refusal.
	check := func(key string, a Agent) {
		if a.Voice == "marin" || a.Voice == "cedar" {
			out = append(out, key+".voice: "+a.Voice+" is not a voice of the beta dialect's models (gpt-4o-realtime-preview*): they have "+
				strings.Join(betaVoices, ", "))
		}
	}
	check("agent", c.Agent)
	for _, name := range c.Profiles.Names() {
		if p, _ := c.Profiles.Get(name); p.Voice != c.Agent.Voice { // an inherited voice is warned of once
			check("profiles."+name, p)
		}
	}
	return out
}
