package memory

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Redis is the shared store for several voicebot instances: a caller who
// rings back may reach another box. Each caller is one list of JSON turns
// that Redis itself expires ttl after the last call.
type Redis struct {
	client          *redis.Client
	ttl             time.Duration
	conversationTTL time.Duration
	prefix          string
}

// RedisConfig says which server to use.
type RedisConfig struct {
	Addr     string // host:port
	Password string
	DB       int
	TTL      time.Duration // a caller's turns are dropped this long after their last call
	// ConversationTTL: a conversation is dropped this long after its last turn.
	ConversationTTL time.Duration
}

// keepPerCaller bounds one caller's list; far more than any call is given.
const keepPerCaller = 500

// OpenRedis connects lazily: a server that is down now is retried on each
// use, and calls meanwhile go without memory.
func OpenRedis(cfg RedisConfig) *Redis {
	return &Redis{
		client: redis.NewClient(&redis.Options{
			Addr: cfg.Addr, Password: cfg.Password, DB: cfg.DB,
			DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
			MaxRetries: 1, PoolSize: 8,
		}),
		ttl:             cfg.TTL,
		conversationTTL: cfg.ConversationTTL,
		prefix:          "voicebot:memory:",
	}
}

func (r *Redis) key(caller string) string { return r.prefix + caller }

func (r *Redis) Recent(ctx context.Context, caller string, since time.Time, max int) ([]Turn, error) {
	raw, err := r.client.LRange(ctx, r.key(caller), int64(-max), -1).Result()
	if err != nil {
		return nil, fmt.Errorf("memory recent: %w", err)
	}
	out := make([]Turn, 0, len(raw))
	for _, s := range raw {
		var t Turn
		if err := json.Unmarshal([]byte(s), &t); err != nil {
			continue // not ours, or damaged: skip it, keep the rest
		}
		if !t.At.Before(since) {
			out = append(out, t)
		}
	}
	return out, nil
}

func (r *Redis) Append(ctx context.Context, caller string, turns []Turn) error {
	if len(turns) == 0 {
		return nil
	}
	values := make([]any, 0, len(turns))
	for _, t := range turns {
		b, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("memory append: %w", err)
		}
		values = append(values, b)
	}
	key := r.key(caller)
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.RPush(ctx, key, values...)
		p.LTrim(ctx, key, -keepPerCaller, -1)
		if r.ttl > 0 {
			p.Expire(ctx, key, r.ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("memory append: %w", err)
	}
	return nil
}

func (r *Redis) Forget(ctx context.Context, caller string) (int, error) {
	var n *redis.IntCmd
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		n = p.LLen(ctx, r.key(caller))
		p.Del(ctx, r.key(caller))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("memory forget: %w", err)
	}
	return int(n.Val()), nil
}

// Expire trims turns older than before from the front of every caller's
// list. Redis itself drops a list ttl after the caller's last call; this
// removes the old turns of callers who keep calling.
func (r *Redis) Expire(ctx context.Context, before time.Time) (int, error) {
	removed := 0
	iter := r.client.Scan(ctx, 0, r.prefix+"*", 200).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		head, err := r.client.LRange(ctx, key, 0, keepPerCaller-1).Result()
		if err != nil {
			return removed, fmt.Errorf("memory expire: %w", err)
		}
		old := 0
		for _, s := range head {
			var t Turn
			if json.Unmarshal([]byte(s), &t) == nil && !t.At.Before(before) {
				break
			}
			old++
		}
		if old == 0 {
			continue
		}
		if err := r.client.LTrim(ctx, key, int64(old), -1).Err(); err != nil {
			return removed, fmt.Errorf("memory expire: %w", err)
		}
		removed += old
	}
	if err := iter.Err(); err != nil {
		return removed, fmt.Errorf("memory expire: %w", err)
	}
	return removed, nil
}

func (r *Redis) Close() error { return r.client.Close() }

// redisLogger takes go-redis's own lines (its pool's dial failures, a
// line per attempt while the server is down) into our log at debug: the
// outage itself is logged once, by Guarded.
type redisLogger struct{ log zerolog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug().Str("component", "go-redis").Msg(fmt.Sprintf(format, v...))
}

var redisLoggerOnce sync.Once

// useLogger routes go-redis's logging (a process-wide setting) to log.
func useLogger(log zerolog.Logger) {
	redisLoggerOnce.Do(func() { redis.SetLogger(redisLogger{log: log}) })
}
