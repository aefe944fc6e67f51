package server

import (
	"context"
	"reflect"
	"sort"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/bridge"
	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/sip"
)

// wrapUpGrace is how long calls get, once asked to end politely, before
// they are hung up regardless: the goodbye's own bound plus its way out.
const wrapUpGrace = 20 * time.Second

// control serves Drain and Reload while voicebot runs: a reload swaps the
// routing; a drain stops taking calls, waits for those in progress up to
// shutdown.drain_timeout, then asks them to wrap up, and stops serving
// once they are over.
func (s *Server) control(ctx context.Context, stop context.CancelFunc) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.reload:
			reload(s.routes, s.opts.ReloadConfig, s.log)
		case <-s.drain:
			drain(ctx, stop, s.cfg.Shutdown.DrainTimeout.D(), s.ua, s.br, s.log)
			return
		}
	}
}

func drain(ctx context.Context, stop context.CancelFunc, drainTimeout time.Duration, ua *sip.UA, br *bridge.Bridge, log zerolog.Logger) {
	defer stop()
	ua.Drain()
	if !waitCalls(ctx, ua, drainTimeout) {
		log.Info().Int("calls", ua.ActiveCalls()).Msg("drain: deadline reached; asking the calls to end politely")
		br.WrapUpAll()
		if !waitCalls(ctx, ua, wrapUpGrace) {
			log.Warn().Int("calls", ua.ActiveCalls()).Msg("drain: calls still up; hanging them up")
		}
	}
	log.Info().Msg("drain: no calls left")
}

// waitCalls waits until no call is left, at most d.
func waitCalls(ctx context.Context, ua *sip.UA, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for ua.ActiveCalls() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return true
}

// reload reads the configuration again and takes its routes and profiles.
// Other sections need a restart; their changes are named in the log.
func reload(routes *atomic.Pointer[routing], load func() (config.Config, error), log zerolog.Logger) {
	if load == nil {
		return
	}
	cfg, err := load()
	if err != nil {
		log.Error().Err(err).Msg("reload: configuration refused; keeping the current routes and profiles")
		return
	}
	next, err := newRouting(cfg)
	if err != nil {
		log.Error().Err(err).Msg("reload: profiles refused; keeping the current routes and profiles")
		return
	}
	old := routes.Swap(next.Load())
	if restart := restartNeeded(old.cfg, cfg); len(restart) > 0 {
		log.Warn().Strs("sections", restart).Msg("reload: these sections changed and take effect only after a restart")
	}
	log.Info().Int("routes", len(cfg.Routes)).Int("profiles", len(next.Load().profiles)).Msg("reload: routes and profiles replaced; calls in progress keep theirs")
}

// restartNeeded names the sections of b that differ from a and that a
// reload does not apply.
func restartNeeded(a, b config.Config) []string {
	var out []string
	for name, pair := range map[string][2]any{
		"log": {a.Log, b.Log}, "sip": {a.SIP, b.SIP}, "media": {a.Media, b.Media}, "realtime": {a.Realtime, b.Realtime},
		"barge_in": {a.BargeIn, b.BargeIn}, "api": {a.API, b.API}, "demo": {a.Demo, b.Demo}, "calls": {a.Calls, b.Calls},
		"admission": {a.Admission, b.Admission}, "shutdown": {a.Shutdown, b.Shutdown},
		"memory": {a.Memory, b.Memory}, "memory (a profile now remembers callers)": {a.RemembersCallers(), a.RemembersCallers() || b.RemembersCallers()},
		"conversations": {a.Conversations, b.Conversations}, "records": {a.Records, b.Records}, "audio": {a.Audio, b.Audio},
		"webhooks": {a.Webhooks, b.Webhooks}, "cluster": {a.Cluster, b.Cluster},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
