package server

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/bridge"
	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/memory"
)

// openMemory opens the memory store when some profile remembers callers
// or the conversation service runs (nil otherwise: nothing is created,
// nothing kept).
func openMemory(cfg config.Config, log zerolog.Logger) (memory.Backend, error) {
	if !cfg.RemembersCallers() && !cfg.ConversationsOn() {
		return nil, nil
	}
	m := cfg.Memory
	return memory.Open(memory.Config{
		Store: m.Store, Path: m.Path, TTL: m.TTL.D(), Timeout: m.Timeout.D(), ConversationTTL: cfg.Conversations.TTL.D(),
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

// forgetter serves DELETE /v1/callers/{id}/memory (nil when no profile
// remembers callers).
func forgetter(cfg config.Config, s memory.Store) func(context.Context, string) (int, error) {
	if s == nil || !cfg.RemembersCallers() {
		return nil
	}
	return s.Forget
}
