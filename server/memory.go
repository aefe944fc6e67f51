package server

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/bridge"
	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/memory"
)

// openMemory opens the caller memory store when some profile remembers
// callers (nil otherwise: nothing is created, nothing kept). Its failures
// later cost calls their memory, never the call: it is Guarded.
func openMemory(cfg config.Config, log zerolog.Logger) (memory.Store, error) {
	if !cfg.RemembersCallers() {
		return nil, nil
	}
	var s memory.Store
	switch cfg.Memory.Store {
	case "redis":
		s = memory.OpenRedis(memory.RedisConfig{Addr: cfg.Memory.Redis.Addr, Password: cfg.Memory.Redis.Password.Reveal(),
			DB: cfg.Memory.Redis.DB, TTL: cfg.Memory.TTL.D()})
		log.Info().Str("redis", cfg.Memory.Redis.Addr).Dur("ttl", cfg.Memory.TTL.D()).Msg("memory: callers remembered in Redis")
	default:
		db, err := memory.OpenSQLite(cfg.Memory.Path)
		if err != nil {
			return nil, err
		}
		s = db
		log.Info().Str("file", cfg.Memory.Path).Dur("ttl", cfg.Memory.TTL.D()).Msg("memory: callers remembered in SQLite")
	}
	return memory.Guarded(s, cfg.Memory.Timeout.D(), log), nil
}

// memoryID is who the caller is to the memory store, for a profile that
// remembers: the identity header's value when the profile names one, else
// the caller's number.
func memoryID(p *bridge.Profile, fromUser string, header func(string) string) string {
	if p == nil || !p.Memory.Enabled {
		return ""
	}
	if p.Memory.IdentityHeader != "" {
		return memory.Identity(header(p.Memory.IdentityHeader))
	}
	return memory.Identity(fromUser)
}

// forgetter serves DELETE /v1/callers/{id}/memory (nil without a store).
func forgetter(s memory.Store) func(context.Context, string) (int, error) {
	if s == nil {
		return nil
	}
	return s.Forget
}
