package server

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/bridge"
	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/memory"
)

// openMemory opens the caller memory store when some profile remembers
// callers (nil otherwise: nothing is created, nothing kept).
func openMemory(cfg config.Config, log zerolog.Logger) (memory.Store, error) {
	if !cfg.RemembersCallers() {
		return nil, nil
	}
	m := cfg.Memory
	return memory.Open(memory.Config{
		Store: m.Store, Path: m.Path, TTL: m.TTL.D(), Timeout: m.Timeout.D(),
		Redis: memory.RedisConfig{Addr: m.Redis.Addr, Password: m.Redis.Password.Reveal(), DB: m.Redis.DB},
	}, log)
}

// callerID is who an inbound caller is to the memory store under the
// call's profile ("" when it does not remember).
func callerID(p *bridge.Profile, fromUser string, header func(string) string) string {
	if p == nil {
		return ""
	}
	return p.Memory.CallerID(fromUser, header)
}

// forgetter serves DELETE /v1/callers/{id}/memory (nil without a store).
func forgetter(s memory.Store) func(context.Context, string) (int, error) {
	if s == nil {
		return nil
	}
	return s.Forget
}
