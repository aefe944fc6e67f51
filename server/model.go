package server

// The model the calls talk to: the configured provider, or the built-in demo.

import (
	"context"

	"github.com/rs/zerolog"
	"github.com/voicebot/voicebot/bridge"
	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/demo"
	"github.com/voicebot/voicebot/realtime"
)

// dialer opens model sessions at one endpoint, for a profile's model.
type dialer struct {
	cfg   realtime.DialConfig
	build func(model string) (realtime.Endpoint, error) // nil: cfg.Endpoint for every model
}

func (d dialer) Dial(ctx context.Context, model string) (*realtime.Conn, error) {
	cfg := d.cfg
	if d.build != nil && model != "" {
		ep, err := d.build(model)
		if err != nil {
			return nil, err
		}
		cfg.Endpoint = ep
	}
	return realtime.Dial(ctx, cfg)
}

// newModel returns the model to dial: the configured provider, or the
// built-in demo server when no key or URL is configured.
func newModel(cfg config.Config, log zerolog.Logger) (bridge.Model, func(), error) {
	dialect, err := realtime.ParseDialect(cfg.Realtime.Dialect)
	if err != nil {
		return nil, nil, err
	}
	if cfg.UseDemo() {
		srv := demo.NewServer(demo.Options{Speed: cfg.Demo.Speed, ForgetClosed: true, Logger: log})
		url, err := srv.Start("127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		log.Warn().Str("url", url).Msg("no API key or model URL configured: using the built-in DEMO model " +
			"(it greets you and echoes what you say; press # and it hangs up, * and it presses keys back). " +
			"Set OPENAI_API_KEY to talk to a real model.")
		ep, _ := realtime.BuildEndpoint(realtime.EndpointConfig{Provider: realtime.Custom, Dialect: dialect, URL: url})
		return dialer{cfg: realtime.DialConfig{Endpoint: ep, Dialect: dialect, Logger: log}}, srv.Close, nil
	}
	provider := realtime.OpenAI
	switch cfg.Provider() {
	case config.ProviderAzure:
		provider = realtime.Azure
	case config.ProviderCustom:
		provider = realtime.Custom
	}
	epc := realtime.EndpointConfig{
		Provider: provider, Dialect: dialect, URL: cfg.Realtime.URL, Model: cfg.Realtime.Model,
		APIKey: cfg.Realtime.APIKey.Reveal(), AzureEndpoint: cfg.Realtime.Azure.Endpoint,
		AzureDeployment: cfg.Realtime.Azure.Deployment, AzureAPIVersion: cfg.Realtime.Azure.APIVersion,
	}
	ep, err := realtime.BuildEndpoint(epc)
	if err != nil {
		return nil, nil, err
	}
	log.Info().Str("url", redact(ep.URL)).Str("dialect", dialect.String()).Msg("model endpoint")
	build := func(model string) (realtime.Endpoint, error) {
		c := epc
		c.Model, c.AzureDeployment = model, model
		return realtime.BuildEndpoint(c)
	}
	return dialer{cfg: realtime.DialConfig{Endpoint: ep, Dialect: dialect, Logger: log}, build: build}, func() {}, nil
}

func redact(u string) string {
	for i := range u {
		if u[i] == '?' {
			return u[:i]
		}
	}
	return u
}
