package memory

import (
	"context"
	"errors"
	"time"
)

// Conversation is one conversation of the HTTP conversation service: an
// agent and, optionally, instructions that replace the agent's.
type Conversation struct {
	ID           string    `json:"id"`
	Agent        string    `json:"agent"`
	Instructions string    `json:"instructions,omitempty"`
	Created      time.Time `json:"created"`
	Updated      time.Time `json:"updated"` // the last turn: a conversation idle for its TTL is gone
}

// ErrNoConversation is a conversation id the store does not know (never
// made, deleted, or expired).
var ErrNoConversation = errors.New("no such conversation")

// Conversations keeps the conversation service's conversations beside the
// callers' memory, in the same store: with Redis, any instance continues
// any conversation. Implementations are safe for concurrent use.
type Conversations interface {
	CreateConversation(ctx context.Context, c Conversation) error
	// Conversation returns the conversation and its turns, oldest first.
	Conversation(ctx context.Context, id string) (Conversation, []Turn, error)
	// AppendConversation adds turns and marks the conversation active at
	// at; ErrNoConversation when it is gone.
	AppendConversation(ctx context.Context, id string, turns []Turn, at time.Time) error
	// DeleteConversation forgets a conversation; false when there was none.
	DeleteConversation(ctx context.Context, id string) (bool, error)
	// ExpireConversations deletes the conversations last active at or
	// before before and reports how many. Stores that expire by themselves
	// (Redis) may report 0.
	ExpireConversations(ctx context.Context, before time.Time) (int, error)
}

// MaxConversationTurns bounds what one conversation keeps (and replays):
// the oldest turns go first.
const MaxConversationTurns = 200

// Backend is a store of both callers' memory and conversations, as Open
// returns it.
type Backend interface {
	Store
	Conversations
}

// errNoConversations is a memory-only store asked for conversations.
var errNoConversations = errors.New("memory: this store keeps no conversations")

func (g *guarded) conversations() (Conversations, error) {
	c, ok := g.Store.(Conversations)
	if !ok {
		return nil, errNoConversations
	}
	return c, nil
}

func (g *guarded) CreateConversation(ctx context.Context, conv Conversation) error {
	c, err := g.conversations()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	err = c.CreateConversation(ctx, conv)
	g.observe("conversation create", err)
	return err
}

func (g *guarded) Conversation(ctx context.Context, id string) (Conversation, []Turn, error) {
	c, err := g.conversations()
	if err != nil {
		return Conversation{}, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	conv, turns, err := c.Conversation(ctx, id)
	g.observe("conversation", ignoreMissing(err))
	return conv, turns, err
}

func (g *guarded) AppendConversation(ctx context.Context, id string, turns []Turn, at time.Time) error {
	c, err := g.conversations()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	err = c.AppendConversation(ctx, id, turns, at)
	g.observe("conversation append", ignoreMissing(err))
	return err
}

func (g *guarded) DeleteConversation(ctx context.Context, id string) (bool, error) {
	c, err := g.conversations()
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	ok, err := c.DeleteConversation(ctx, id)
	g.observe("conversation delete", err)
	return ok, err
}

func (g *guarded) ExpireConversations(ctx context.Context, before time.Time) (int, error) {
	c, err := g.conversations()
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*g.timeout)
	defer cancel()
	n, err := c.ExpireConversations(ctx, before)
	g.observe("conversation expire", err)
	return n, err
}

// ignoreMissing: an unknown conversation is an answer, not an outage.
func ignoreMissing(err error) error {
	if errors.Is(err, ErrNoConversation) {
		return nil
	}
	return err
}
