package server

import (
	"context"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/api"
	"github.com/voicebot/voicebot/bridge"
	"github.com/voicebot/voicebot/clock"
	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/converse"
)

// newConversations makes the conversation service when it runs (the API
// is on and conversations.enabled): the agents are the routing's profiles,
// the model the calls', the store the memory store.
func (s *Server) newConversations(cfg config.Config, model bridge.Model, log zerolog.Logger) *converse.Service {
	if !cfg.ConversationsOn() || s.memory == nil {
		return nil
	}
	idle := cfg.Conversations.IdleSession.D()
	if idle == 0 {
		idle = -1 // closed after every turn
	}
	client := &http.Client{}
	return converse.New(converse.Config{
		Model: model, Store: s.memory, TTL: cfg.Conversations.TTL.D(), IdleSession: idle,
		MaxTurns: cfg.Conversations.MaxTurns, Clock: clock.Real{}, Log: log,
		Agent: func(name string) (converse.Agent, bool) {
			if name == "" {
				name = config.DefaultProfile
			}
			p, ok := s.routes.Load().profiles[name]
			if !ok {
				return converse.Agent{}, false
			}
			return conversationAgent(p, client), true
		},
	})
}

// conversationAgent is a profile as a conversation uses it: its session,
// with the tools that need no phone line (its webhooks), run as calls run
// them.
func conversationAgent(p *bridge.Profile, client *http.Client) converse.Agent {
	session := p.Session
	session.Tools = p.WebhookTools()
	return converse.Agent{Name: p.Name, Model: p.Model, Session: session,
		RunTool: func(ctx context.Context, name, args string) (string, error) {
			w, ok := p.Webhooks[name]
			if !ok {
				return "", errUnknownTool
			}
			return w.Call(ctx, client, args, map[string]string{"X-Voicebot-Agent": p.Name})
		}}
}

type toolError string

func (e toolError) Error() string { return string(e) }

const errUnknownTool = toolError("no such tool")

// apiConversations is the service as the API takes it (nil when off: a
// nil *converse.Service must not become a non-nil interface).
func apiConversations(c *converse.Service) api.Conversations {
	if c == nil {
		return nil
	}
	return c
}

// sweepConversations forgets idle conversations in a store that does not
// expire them itself.
func sweepConversations(ctx context.Context, c *converse.Service, ttl time.Duration) {
	c.Sweep(ctx, min(5*time.Minute, max(ttl/4, time.Second)))
}
