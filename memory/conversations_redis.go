package memory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// A conversation in Redis is a hash (its fields) and a list (its turns,
// JSON), both expiring ConversationTTL after the last turn: Redis forgets
// an idle conversation by itself, on every instance at once.

func (r *Redis) conversationKey(id string) string { return "voicebot:conversation:" + id }
func (r *Redis) turnsKey(id string) string        { return "voicebot:conversation:" + id + ":turns" }

func (r *Redis) CreateConversation(ctx context.Context, c Conversation) error {
	key := r.conversationKey(c.ID)
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "agent", c.Agent, "instructions", c.Instructions,
			"created", strconv.FormatInt(c.Created.UnixNano(), 10), "updated", strconv.FormatInt(c.Updated.UnixNano(), 10))
		if r.conversationTTL > 0 {
			p.Expire(ctx, key, r.conversationTTL)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("conversation create: %w", err)
	}
	return nil
}

func (r *Redis) Conversation(ctx context.Context, id string) (Conversation, []Turn, error) {
	var fields *redis.MapStringStringCmd
	var raw *redis.StringSliceCmd
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		fields = p.HGetAll(ctx, r.conversationKey(id))
		raw = p.LRange(ctx, r.turnsKey(id), -MaxConversationTurns, -1)
		return nil
	})
	if err != nil {
		return Conversation{}, nil, fmt.Errorf("conversation %s: %w", id, err)
	}
	f := fields.Val()
	if len(f) == 0 {
		return Conversation{}, nil, ErrNoConversation
	}
	created, _ := strconv.ParseInt(f["created"], 10, 64)
	updated, _ := strconv.ParseInt(f["updated"], 10, 64)
	c := Conversation{ID: id, Agent: f["agent"], Instructions: f["instructions"], Created: time.Unix(0, created), Updated: time.Unix(0, updated)}
	turns := make([]Turn, 0, len(raw.Val()))
	for _, s := range raw.Val() {
		var t Turn
		if json.Unmarshal([]byte(s), &t) == nil {
			turns = append(turns, t)
		}
	}
	return c, turns, nil
}

func (r *Redis) AppendConversation(ctx context.Context, id string, turns []Turn, at time.Time) error {
	key, list := r.conversationKey(id), r.turnsKey(id)
	// Only a conversation that exists takes turns: a deleted or expired
	// one must not come back as a list without its fields.
	n, err := r.client.Exists(ctx, key).Result()
	if err != nil {
		return fmt.Errorf("conversation append: %w", err)
	}
	if n == 0 {
		return ErrNoConversation
	}
	values := make([]any, 0, len(turns))
	for _, t := range turns {
		b, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("conversation append: %w", err)
		}
		values = append(values, b)
	}
	_, err = r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "updated", strconv.FormatInt(at.UnixNano(), 10))
		if len(values) > 0 {
			p.RPush(ctx, list, values...)
			p.LTrim(ctx, list, -MaxConversationTurns, -1)
		}
		if r.conversationTTL > 0 {
			p.Expire(ctx, key, r.conversationTTL)
			p.Expire(ctx, list, r.conversationTTL)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("conversation append: %w", err)
	}
	return nil
}

func (r *Redis) DeleteConversation(ctx context.Context, id string) (bool, error) {
	n, err := r.client.Del(ctx, r.conversationKey(id), r.turnsKey(id)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("conversation delete: %w", err)
	}
	return n > 0, nil
}

// ExpireConversations has nothing to do: Redis expires idle conversations
// itself (ConversationTTL).
func (r *Redis) ExpireConversations(context.Context, time.Time) (int, error) { return 0, nil }
