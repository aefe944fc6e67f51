package server

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/voicebot/voicebot/bridge"
	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/memory"
	"github.com/voicebot/voicebot/realtime"
)

// Profiles have one owner per role: config declares the agents (YAML,
// inheritance from agent:, validation) and the routes; this file is the one
// place they become what a call runs with (bridge.Profile, with its
// memory.Policy) and the one place a call's profile is chosen; bridge runs
// the call with it.

// routing is what SIGHUP replaces: the routes and the profiles they name.
// A call keeps the profile it started with.
type routing struct {
	cfg      config.Config
	profiles map[string]*bridge.Profile
}

func newRouting(cfg config.Config) (*atomic.Pointer[routing], error) {
	profiles, err := buildProfiles(cfg)
	if err != nil {
		return nil, err
	}
	p := &atomic.Pointer[routing]{}
	p.Store(&routing{cfg: cfg, profiles: profiles})
	return p, nil
}

func (r *routing) route(requestUser, toUser, fromUser string) (string, *bridge.Profile) {
	name := r.cfg.Route(requestUser, toUser, fromUser)
	return name, r.profiles[name]
}

// buildProfiles turns every configured agent into the bridge's profiles,
// by name (config.DefaultProfile is agent:).
func buildProfiles(cfg config.Config) (map[string]*bridge.Profile, error) {
	out := map[string]*bridge.Profile{}
	for _, name := range append([]string{config.DefaultProfile}, cfg.Profiles.Names()...) {
		a, _ := cfg.Profile(name)
		p, err := buildProfile(cfg, name, a)
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", name, err)
		}
		out[name] = p
	}
	return out, nil
}

func buildProfile(cfg config.Config, name string, a config.Agent) (*bridge.Profile, error) {
	p := &bridge.Profile{
		Name: name, Model: a.Model, Session: sessionConfig(cfg, a),
		Greeting: a.Greeting, GreetingPrompt: a.GreetingPrompt,
		Tools:                   append([]string(nil), a.Tools...),
		TransferTargets:         map[string]bridge.TransferTarget{},
		HangupOnTransferFailure: a.OnTransferFailure != "continue",
		DTMF:                    map[rune]string{},
		Webhooks:                map[string]bridge.Webhook{},
		Memory: memory.Policy{
			Enabled: a.Memory.Enabled, MaxTurns: a.Memory.MaxTurns, MaxAge: a.Memory.MaxAge.D(), MaxChars: a.Memory.MaxChars,
			GreetingPrompt: a.Memory.GreetingPrompt, IdentityHeader: a.Memory.Identity,
		}.Within(cfg.Memory.TTL.D()),
	}
	for n, t := range a.TransferTargets {
		p.TransferTargets[n] = bridge.TransferTarget{URI: t.URI, Description: t.Description, Headers: t.Headers}
	}
	for k, action := range a.DTMF {
		if action != "model" {
			p.DTMF[[]rune(k)[0]] = action
		}
	}
	for _, t := range a.Tools {
		w, ok := cfg.Tools[t]
		if !ok {
			continue // a built-in tool
		}
		params := json.RawMessage(`{"type":"object","properties":{}}`)
		if w.Parameters != nil {
			b, err := json.Marshal(w.Parameters)
			if err != nil {
				return nil, fmt.Errorf("tool %s: parameters are not JSON: %w", t, err)
			}
			params = b
		}
		u, err := url.Parse(w.URL)
		if err != nil {
			return nil, fmt.Errorf("tool %s: url: %w", t, err)
		}
		p.Webhooks[t] = bridge.Webhook{Name: t, Description: w.Description, Parameters: params, URL: u,
			Timeout: w.Timeout.D(), Headers: w.Headers, Payload: w.Payload}
	}
	return p, nil
}

func sessionConfig(cfg config.Config, a config.Agent) realtime.SessionConfig {
	model := ""
	if cfg.ModelInURL() {
		model = cmp.Or(a.Model, cfg.Realtime.Model)
	}
	s := realtime.SessionConfig{
		Model: model, Instructions: a.Instructions, Voice: a.Voice,
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
