// Package cluster lets several voicebot instances behind one load balancer
// answer for each other's calls: each publishes its calls in Redis (call id
// → the instance and its API's address, with the call's snapshot), kept
// alive by a heartbeat, so the API of any instance can find a call's owner
// and forward to it (api.Cluster), and list the whole cluster's calls.
//
// Keys (all under voicebot:):
//
//	voicebot:instance:<id>  {"api": host:port}, expires TTL after its last heartbeat
//	voicebot:call:<id>      {"instance", "api", "call": CallInfo}, the same TTL while the call lives;
//	                        once it ended, its final snapshot for EndedTTL (GET shows its outcome)
//	voicebot:calls          sorted set of call ids by expiry (ms): the index the list reads
//
// An instance that dies stops its heartbeat, and its calls expire with it.
// A Redis that is down costs only the cluster: the instance keeps serving
// its own calls, and the outage is logged once.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/api"
)

// Config says where the registry is and who this instance is.
type Config struct {
	Addr     string // Redis host:port
	Password string
	DB       int
	// Instance names this instance (unique in the cluster); API is its
	// API's address as the others reach it.
	Instance string
	API      string
	// TTL: an instance and its calls are forgotten this long after its
	// last heartbeat; Heartbeat is how often it says it lives.
	TTL       time.Duration
	Heartbeat time.Duration
	// EndedTTL keeps an ended call's final snapshot (default 15 min).
	EndedTTL time.Duration
	Calls    *api.Registry
	Log      zerolog.Logger
}

// Node is one instance's part of the cluster.
type Node struct {
	cfg  Config
	rdb  *redis.Client
	kick chan struct{}
	// published are the calls this instance has in Redis as in progress
	// (owned by Run).
	published map[string]bool
	downMu    sync.Mutex
	down      bool
}

const (
	prefix   = "voicebot:"
	indexKey = prefix + "calls"
)

func callKey(id string) string     { return prefix + "call:" + id }
func instanceKey(id string) string { return prefix + "instance:" + id }

// New connects lazily (a Redis down now is retried at each heartbeat) and
// watches the registry; Run publishes it.
func New(cfg Config) *Node {
	redisLoggerOnce.Do(func() { redis.SetLogger(redisLogger{log: cfg.Log}) })
	if cfg.EndedTTL <= 0 {
		cfg.EndedTTL = 15 * time.Minute
	}
	n := &Node{cfg: cfg, kick: make(chan struct{}, 1), published: map[string]bool{},
		rdb: redis.NewClient(&redis.Options{Addr: cfg.Addr, Password: cfg.Password, DB: cfg.DB,
			DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: 1, PoolSize: 8})}
	cfg.Calls.OnChange(func() {
		select {
		case n.kick <- struct{}{}:
		default: // one is pending
		}
	})
	return n
}

// Run publishes this instance and its calls at each heartbeat and at each
// change, until ctx ends; then it says the instance is gone (its calls
// ended by then are published as ended; any still in progress stay until
// the TTL).
func (n *Node) Run(ctx context.Context) {
	t := time.NewTicker(n.cfg.Heartbeat)
	defer t.Stop()
	for {
		n.report(n.sync(ctx))
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			err := n.sync(sctx)
			if err == nil {
				err = n.rdb.Del(sctx, instanceKey(n.cfg.Instance)).Err()
			}
			n.report(err)
			return
		case <-t.C:
		case <-n.kick:
		}
	}
}

// Close closes the connection to Redis (after Run).
func (n *Node) Close() { _ = n.rdb.Close() }

type record struct {
	Instance string       `json:"instance"`
	API      string       `json:"api"`
	Call     api.CallInfo `json:"call"`
}

// sync writes this instance's liveness and its calls in progress with the
// TTL, and the final snapshot of those that ended since.
func (n *Node) sync(ctx context.Context) error {
	active := n.cfg.Calls.Active()
	now := time.Now()
	expiry := float64(now.Add(n.cfg.TTL).UnixMilli())
	pipe := n.rdb.TxPipeline()
	self, _ := json.Marshal(map[string]string{"api": n.cfg.API})
	pipe.Set(ctx, instanceKey(n.cfg.Instance), self, n.cfg.TTL)
	live := make(map[string]bool, len(active))
	for _, info := range active {
		live[info.ID] = true
		b, _ := json.Marshal(record{Instance: n.cfg.Instance, API: n.cfg.API, Call: info})
		pipe.Set(ctx, callKey(info.ID), b, n.cfg.TTL)
		pipe.ZAdd(ctx, indexKey, redis.Z{Score: expiry, Member: info.ID})
	}
	for id := range n.published {
		if live[id] {
			continue
		}
		pipe.ZRem(ctx, indexKey, id)
		if info, ok := n.cfg.Calls.Get(id); ok && info.Ended != nil {
			b, _ := json.Marshal(record{Instance: n.cfg.Instance, API: n.cfg.API, Call: info})
			pipe.Set(ctx, callKey(id), b, n.cfg.EndedTTL)
		} else {
			pipe.Del(ctx, callKey(id))
		}
	}
	// Index entries of instances that died (their keys expired already).
	pipe.ZRemRangeByScore(ctx, indexKey, "-inf", strconv.FormatInt(now.Add(-n.cfg.TTL).UnixMilli(), 10))
	if _, err := pipe.Exec(ctx); err != nil {
		for id := range live {
			n.published[id] = true // those gone are retried next time
		}
		return err
	}
	n.published = live
	return nil
}

// report logs the registry's outage once, and its return.
func (n *Node) report(err error) {
	n.downMu.Lock()
	defer n.downMu.Unlock()
	if err != nil && errors.Is(err, context.Canceled) {
		return
	}
	if err != nil && !n.down {
		n.down = true
		n.cfg.Log.Warn().Err(err).Str("redis", n.cfg.Addr).Msg("cluster: the call registry is unavailable; " +
			"this instance serves its own calls only until it is back")
	}
	if err == nil && n.down {
		n.down = false
		n.cfg.Log.Info().Str("redis", n.cfg.Addr).Msg("cluster: the call registry is back")
	}
}

// Find says which other instance holds a call.
func (n *Node) Find(ctx context.Context, id string) (api.Remote, bool, error) {
	b, err := n.rdb.Get(ctx, callKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return api.Remote{}, false, nil
	}
	if err != nil {
		n.report(err)
		return api.Remote{}, false, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil || r.Instance == n.cfg.Instance {
		return api.Remote{}, false, nil // ours, and gone from our registry: nowhere
	}
	return api.Remote{Instance: r.Instance, API: r.API, Info: r.Call}, true, nil
}

// Calls lists the calls in progress on the other live instances.
func (n *Node) Calls(ctx context.Context) ([]api.CallInfo, error) {
	// The index may name calls that expired (an instance that died, its
	// entries not trimmed yet): the keys, which Redis expires, decide.
	ids, err := n.rdb.ZRange(ctx, indexKey, 0, -1).Result()
	if err != nil {
		n.report(err)
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = callKey(id)
	}
	vals, err := n.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		n.report(err)
		return nil, err
	}
	out := make([]api.CallInfo, 0, len(vals))
	for _, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // expired: its instance died
		}
		var r record
		if json.Unmarshal([]byte(s), &r) != nil || r.Instance == n.cfg.Instance || r.Call.Ended != nil {
			continue
		}
		out = append(out, r.Call)
	}
	return out, nil
}

// redisLogger takes go-redis's own lines (a dial failure per attempt while
// the server is down) into our log at debug: the outage is logged once, by
// report.
type redisLogger struct{ log zerolog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug().Str("component", "go-redis").Msg(fmt.Sprintf(format, v...))
}

var redisLoggerOnce sync.Once
