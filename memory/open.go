package memory

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// Config chooses and bounds a store.
type Config struct {
	Store string // "sqlite" (the default) or "redis"
	Path  string // the SQLite file
	Redis RedisConfig
	// TTL is how long turns are kept (0: for ever); Redis expires them
	// itself, SQLite by Sweep.
	TTL time.Duration
	// ConversationTTL is how long an idle conversation is kept; Redis
	// expires them itself, SQLite by SweepConversations.
	ConversationTTL time.Duration
	// Timeout bounds every operation (see Guarded).
	Timeout time.Duration
}

// Open opens the store cfg names, Guarded: its failures later cost calls
// their memory, never the call.
func Open(cfg Config, log zerolog.Logger) (Backend, error) {
	var s Store
	switch cfg.Store {
	case "redis":
		useLogger(log)
		rc := cfg.Redis
		rc.TTL, rc.ConversationTTL = cfg.TTL, cfg.ConversationTTL
		s = OpenRedis(rc)
		log.Info().Str("redis", rc.Addr).Dur("ttl", cfg.TTL).Msg("memory: callers remembered in Redis")
	case "sqlite", "":
		db, err := OpenSQLite(cfg.Path)
		if err != nil {
			return nil, err
		}
		s = db
		log.Info().Str("file", cfg.Path).Dur("ttl", cfg.TTL).Msg("memory: callers remembered in SQLite")
	default:
		return nil, fmt.Errorf("memory: unknown store %q (sqlite or redis)", cfg.Store)
	}
	return &guarded{Store: s, timeout: cfg.Timeout, log: log}, nil
}
