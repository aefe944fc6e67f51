// Command voicebot answers phone calls (SIP, G.711 RTP) with a realtime voice
// model (OpenAI Realtime protocol over WebSocket). With no API key it uses a
// built-in demo model that greets and echoes what the caller says.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/bridge"
	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/realtime"
	"github.com/voicebot/voicebot/realtime/realtimetest"
	"github.com/voicebot/voicebot/sip"
)

func main() {
	if err := run(os.Args[1:], os.Environ(), os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "voicebot:", err)
		os.Exit(1)
	}
}

func run(args, environ []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("voicebot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML config file (default: $VOICEBOT_CONFIG, else built-in defaults)")
	check := fs.Bool("check", false, "load and validate the configuration, then exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" {
		*configPath = lookupEnv(environ, config.EnvConfigFile)
	}
	cfg, err := config.Load(*configPath, environ)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	if *check {
		log.Info().Msg("configuration is valid")
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, cfg, log, serveOptions{})
}

// serveOptions lets tests replace the model and learn the SIP address.
type serveOptions struct {
	model bridge.Model          // nil: from the configuration
	ready chan<- netip.AddrPort // receives the SIP address once calls can be placed
}

func lookupEnv(environ []string, key string) string {
	for _, kv := range environ {
		if len(kv) > len(key) && kv[:len(key)] == key && kv[len(key)] == '=' {
			return kv[len(key)+1:]
		}
	}
	return ""
}

func newLogger(c config.Log, w io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	zerolog.DurationFieldUnit = time.Millisecond
	zerolog.DurationFieldInteger = false
	var out io.Writer = w
	if c.Format == "console" {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
	}
	return zerolog.New(out).Level(level).With().Timestamp().Logger()
}

// serve runs voicebot until ctx ends.
func serve(ctx context.Context, cfg config.Config, log zerolog.Logger, opts serveOptions) error {
	model := opts.model
	if model == nil {
		m, closeModel, err := newModel(cfg, log)
		if err != nil {
			return err
		}
		defer closeModel()
		model = m
	}

	listen, _ := netip.ParseAddrPort(cfg.SIP.Listen) // validated by config
	mediaIP := listen.Addr()
	if cfg.Media.IP != "" {
		mediaIP = netip.MustParseAddr(cfg.Media.IP)
	}
	ports, err := media.NewPorts(mediaIP, cfg.Media.PortMin, cfg.Media.PortMax)
	if err != nil {
		return err
	}
	br := bridge.New(bridge.Config{
		Model:          model,
		Session:        sessionConfig(cfg),
		Greeting:       cfg.Agent.Greeting,
		GreetingPrompt: cfg.Agent.GreetingPrompt,
		ConnectTimeout: cfg.Realtime.ConnectTimeout.D(),
		AppendInterval: cfg.Realtime.AppendInterval.D(),
		BargeIn: bridge.BargeIn{
			Pause:            cfg.BargeIn.Mode == "pause",
			MinSpeech:        time.Duration(cfg.BargeIn.MinSpeechMS) * time.Millisecond,
			ResumeAfter:      time.Duration(cfg.BargeIn.ResumeAfterMS) * time.Millisecond,
			LocalVAD:         cfg.BargeIn.LocalVAD,
			LocalThresholdDB: cfg.BargeIn.LocalVADThresholdDB,
			LocalMinSpeech:   time.Duration(cfg.BargeIn.LocalVADMinSpeechMS) * time.Millisecond,
		},
		Ports:             ports,
		ReorderWindow:     cfg.Media.ReorderWindow,
		InputSilenceAfter: cfg.Media.InputSilenceAfter.D(),
		Log:               log,
	})
	ua, err := sip.New(sip.Config{
		Listen: listen, Transports: cfg.SIP.Transports, ExternalHost: cfg.SIP.ExternalAddress,
		MediaIP: mediaIP, UserAgent: cfg.SIP.UserAgent, Codecs: cfg.SIP.Codecs,
		AckTimeout: cfg.SIP.AckTimeout.D(), Log: log,
	}, func(ctx context.Context, call *sip.Call) {
		m := call.Media()
		codec, err := media.CodecByName(m.Codec.Name)
		if err != nil {
			_ = call.Reject(488, "Not Acceptable Here")
			return
		}
		codec.PayloadType = m.Codec.PayloadType
		br.Handle(ctx, call, bridge.CallMedia{Remote: m.Remote, Codec: codec, DTMFPayloadType: m.DTMFPayloadType})
	})
	if err != nil {
		return err
	}
	log.Info().Str("sip", ua.Addr().String()).Str("rtp_ports", fmt.Sprintf("%d-%d", cfg.Media.PortMin, cfg.Media.PortMax)).
		Msg("voicebot ready: call sip:bot@" + ua.Addr().String())
	if opts.ready != nil {
		opts.ready <- ua.Addr()
	}
	err = ua.Serve(ctx)
	log.Info().Msg("voicebot stopped")
	return err
}

func sessionConfig(cfg config.Config) realtime.SessionConfig {
	a := cfg.Agent
	s := realtime.SessionConfig{
		Model: cfg.Realtime.Model, Instructions: a.Instructions, Voice: a.Voice,
		NoiseReduction: a.NoiseReduction,
		TurnDetection: &realtime.TurnDetection{
			Type: a.VAD.Type, Threshold: a.VAD.Threshold,
			PrefixPaddingMS:   int(a.VAD.PrefixPadding.D() / time.Millisecond),
			SilenceDurationMS: int(a.VAD.SilenceDuration.D() / time.Millisecond),
			Eagerness:         a.VAD.Eagerness, CreateResponse: a.VAD.CreateResponse, InterruptResponse: a.VAD.InterruptResponse,
		},
	}
	if a.TranscriptionModel != "" {
		s.Transcription = &realtime.Transcription{Model: a.TranscriptionModel, Language: a.Language}
	}
	return s
}

// dialer opens model sessions at one endpoint.
type dialer struct {
	cfg realtime.DialConfig
}

func (d dialer) Dial(ctx context.Context) (*realtime.Conn, error) { return realtime.Dial(ctx, d.cfg) }

// newModel returns the model to dial: the configured provider, or the
// built-in demo server when no key or URL is configured.
func newModel(cfg config.Config, log zerolog.Logger) (bridge.Model, func(), error) {
	dialect, err := realtime.ParseDialect(cfg.Realtime.Dialect)
	if err != nil {
		return nil, nil, err
	}
	if cfg.UseDemo() {
		srv := realtimetest.NewServer(realtimetest.Options{Speed: cfg.Demo.Speed, Logger: log})
		url, err := srv.Start("127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		log.Warn().Str("url", url).Msg("no API key or model URL configured: using the built-in DEMO model " +
			"(it greets you and echoes what you say). Set OPENAI_API_KEY to talk to a real model.")
		ep, _ := realtime.BuildEndpoint(realtime.EndpointConfig{Provider: realtime.Custom, Dialect: dialect, URL: url})
		return dialer{realtime.DialConfig{Endpoint: ep, Dialect: dialect, Logger: log}}, srv.Close, nil
	}
	provider := realtime.OpenAI
	switch {
	case cfg.Realtime.Provider == "azure" || (cfg.Realtime.Provider == "auto" && cfg.Realtime.Azure.Endpoint != ""):
		provider = realtime.Azure
	case cfg.Realtime.URL != "" && cfg.Realtime.Provider != "openai":
		provider = realtime.Custom
	}
	ep, err := realtime.BuildEndpoint(realtime.EndpointConfig{
		Provider: provider, Dialect: dialect, URL: cfg.Realtime.URL, Model: cfg.Realtime.Model,
		APIKey: cfg.Realtime.APIKey.Reveal(), AzureEndpoint: cfg.Realtime.Azure.Endpoint,
		AzureDeployment: cfg.Realtime.Azure.Deployment, AzureAPIVersion: cfg.Realtime.Azure.APIVersion,
	})
	if err != nil {
		return nil, nil, err
	}
	log.Info().Str("url", redact(ep.URL)).Str("dialect", dialect.String()).Msg("model endpoint")
	return dialer{realtime.DialConfig{Endpoint: ep, Dialect: dialect, Logger: log}}, func() {}, nil
}

func redact(u string) string {
	for i := range u {
		if u[i] == '?' {
			return u[:i]
		}
	}
	return u
}
