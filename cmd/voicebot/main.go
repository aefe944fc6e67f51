// Command voicebot answers phone calls (SIP, G.711 RTP) with a realtime voice
// model (OpenAI Realtime protocol over WebSocket), and places them when asked
// through its HTTP API. With no API key it uses a built-in demo model that
// greets and echoes what the caller says.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/demo"
	"github.com/voicebot/voicebot/server"
)

func main() {
	if os.Getenv("GOGC") == "" {
		// Once a call is up it allocates next to nothing, so the collector
		// seldom runs whatever its target; the heap's headroom above the
		// live data, though, is most of the memory a call costs. Half the
		// default headroom: about 45 KiB less per call, no CPU measurably
		// more (docs/BENCHMARKS.md). GOGC set by the operator wins.
		debug.SetGCPercent(gcPercent)
	}
	if err := run(os.Args[1:], os.Environ(), os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "voicebot:", err)
		os.Exit(1)
	}
}

// gcPercent is the collector's target unless GOGC says otherwise.
const gcPercent = 50

func run(args, environ []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("voicebot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML config file (default: $VOICEBOT_CONFIG, else built-in defaults)")
	check := fs.Bool("check", false, "load and validate the configuration, then exit")
	health := fs.Bool("healthcheck", false, "probe the voicebot this configuration describes on this host (its /healthz, else SIP OPTIONS)\n"+
		"and exit 0 if it answers: the container's HEALTHCHECK")
	demoAt := fs.String("serve-demo", "", "serve only the built-in demo model at this address (host:port), for load tests that\n"+
		"measure voicebot without its model (point realtime.url at ws://host:port/v1/realtime)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *demoAt != "" {
		return serveDemo(*demoAt, stderr)
	}
	if *configPath == "" {
		*configPath = lookupEnv(environ, config.EnvConfigFile)
	}
	cfg, err := config.Load(*configPath, environ)
	if err != nil {
		return err
	}
	if *health {
		return healthcheck(cfg)
	}
	log := newLogger(cfg.Log, stderr, lookupEnv(environ, "NO_COLOR") != "")
	for _, w := range cfg.Warnings() {
		log.Warn().Msg(w)
	}
	if *check {
		log.Info().Msg("configuration is valid")
		return nil
	}
	srv, err := server.New(cfg, log, server.Options{
		ReloadConfig: func() (config.Config, error) { return config.Load(*configPath, environ) }})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		stops := 0
		for sig := range sigs {
			if sig == syscall.SIGHUP {
				srv.Reload()
				continue
			}
			stops++
			if stops == 1 {
				log.Info().Str("signal", sig.String()).Dur("drain_timeout", cfg.Shutdown.DrainTimeout.D()).
					Msg("stopping: calls in progress may finish; signal again to stop at once")
				srv.Drain()
				continue
			}
			log.Warn().Str("signal", sig.String()).Msg("second signal: hanging up every call and stopping now")
			cancel()
			time.AfterFunc(3*time.Second, func() { os.Exit(1) }) // a stuck peer must not keep us
		}
	}()
	return srv.Run(ctx)
}

func lookupEnv(environ []string, key string) string {
	for _, kv := range environ {
		if len(kv) > len(key) && kv[:len(key)] == key && kv[len(key)] == '=' {
			return kv[len(key)+1:]
		}
	}
	return ""
}

// serveDemo runs the demo model alone until SIGINT or SIGTERM.
func serveDemo(addr string, stderr io.Writer) error {
	log := newLogger(config.Log{Level: "info", Format: "json"}, stderr, true)
	srv := demo.NewServer(demo.Options{ForgetClosed: true, Logger: log})
	url, err := srv.Start(addr)
	if err != nil {
		return err
	}
	log.Info().Str("url", url).Msg("demo model serving")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	srv.Close()
	return nil
}
