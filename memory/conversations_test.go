package memory

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/voicebot/voicebot/internal/testredis"
)

// conversationStores runs a test against both stores' conversations.
func conversationStores(t *testing.T, test func(t *testing.T, s Backend, redis *testredis.Server)) {
	t.Run("sqlite", func(t *testing.T) {
		s, err := OpenSQLite(filepath.Join(t.TempDir(), "memory.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		test(t, s, nil)
	})
	t.Run("redis", func(t *testing.T) {
		srv := testredis.Start(t)
		s := OpenRedis(RedisConfig{Addr: srv.Addr, ConversationTTL: time.Hour})
		defer s.Close()
		test(t, s, srv)
	})
}

func TestConversationStore(t *testing.T) {
	conversationStores(t, func(t *testing.T, s Backend, _ *testredis.Server) {
		ctx := context.Background()
		t0 := time.Unix(1_800_000_000, 0)
		c := Conversation{ID: "conv_a", Agent: "sales", Instructions: "Be brief.", Created: t0, Updated: t0}
		if err := s.CreateConversation(ctx, c); err != nil {
			t.Fatal(err)
		}
		turns := []Turn{{Role: "user", Text: "hi", At: t0}, {Role: "assistant", Text: "hello", At: t0.Add(time.Second)}}
		if err := s.AppendConversation(ctx, "conv_a", turns, t0.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		got, kept, err := s.Conversation(ctx, "conv_a")
		if err != nil || got.Agent != "sales" || got.Instructions != "Be brief." || !got.Updated.Equal(t0.Add(time.Second)) ||
			len(kept) != 2 || kept[1].Text != "hello" || !kept[1].At.Equal(t0.Add(time.Second)) {
			t.Fatalf("got %+v %+v %v", got, kept, err)
		}
		if _, _, err := s.Conversation(ctx, "conv_none"); !errors.Is(err, ErrNoConversation) {
			t.Errorf("unknown: %v", err)
		}
		if err := s.AppendConversation(ctx, "conv_none", turns, t0); !errors.Is(err, ErrNoConversation) {
			t.Errorf("append to unknown: %v", err)
		}
		if _, _, err := s.Conversation(ctx, "conv_none"); !errors.Is(err, ErrNoConversation) {
			t.Errorf("an append to an unknown conversation made it: %v", err)
		}
		// At most MaxConversationTurns are kept, the newest.
		many := make([]Turn, MaxConversationTurns+5)
		for i := range many {
			many[i] = Turn{Role: "user", Text: string(rune('a' + i%26)), At: t0.Add(time.Duration(i+2) * time.Second)}
		}
		if err := s.AppendConversation(ctx, "conv_a", many, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, kept, _ := s.Conversation(ctx, "conv_a"); len(kept) != MaxConversationTurns || kept[len(kept)-1].Text != many[len(many)-1].Text {
			t.Errorf("%d turns kept", len(kept))
		}
		if ok, err := s.DeleteConversation(ctx, "conv_a"); !ok || err != nil {
			t.Errorf("delete: %v %v", ok, err)
		}
		if ok, _ := s.DeleteConversation(ctx, "conv_a"); ok {
			t.Error("deleted twice")
		}
		if _, _, err := s.Conversation(ctx, "conv_a"); !errors.Is(err, ErrNoConversation) {
			t.Errorf("after delete: %v", err)
		}
	})
}

func TestConversationsExpire(t *testing.T) {
	conversationStores(t, func(t *testing.T, s Backend, redis *testredis.Server) {
		ctx := context.Background()
		t0 := time.Now()
		for _, id := range []string{"conv_old", "conv_new"} {
			if err := s.CreateConversation(ctx, Conversation{ID: id, Agent: "a", Created: t0, Updated: t0}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AppendConversation(ctx, "conv_new", []Turn{{Role: "user", Text: "hi", At: t0}}, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if redis != nil {
			// Redis expires them itself, ConversationTTL after the last turn.
			if ttl := s.(*Redis).client.TTL(ctx, "voicebot:conversation:conv_new").Val(); ttl <= 59*time.Minute || ttl > time.Hour {
				t.Errorf("the conversation expires in %s, want the hour", ttl)
			}
			return
		}
		n, err := s.ExpireConversations(ctx, t0.Add(30*time.Minute))
		if err != nil || n != 1 {
			t.Fatalf("expired %d, %v", n, err)
		}
		if _, _, err := s.Conversation(ctx, "conv_old"); !errors.Is(err, ErrNoConversation) {
			t.Errorf("the idle conversation: %v", err)
		}
		if _, kept, err := s.Conversation(ctx, "conv_new"); err != nil || len(kept) != 1 {
			t.Errorf("the active one: %v %v", kept, err)
		}
	})
}
