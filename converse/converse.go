// Package converse is the conversation service: a conversation with an
// agent over HTTP instead of a phone line. A client posts one user turn
// (text, or recorded audio) and gets the model's answer streamed back; the
// conversation's turns are kept in the memory store under its id, so the
// next turn, on this instance or another one sharing the store, goes on
// where it was.
//
// It uses what calls use: the agents (a session configuration and their
// webhook tools), the model connections (realtime), the store (memory) and
// the history replay (a new session gets the turns so far as text items).
// A conversation's model session stays open for a short idle time after a
// turn, so a quick follow-up answers at once; after that its history is
// replayed into a fresh session.
package converse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/clock"
	"github.com/voicebot/voicebot/memory"
	"github.com/voicebot/voicebot/realtime"
)

// Model dials a Realtime session for a model name ("" for the default).
type Model interface {
	Dial(ctx context.Context, model string) (*realtime.Conn, error)
}

// Agent is what a conversation needs of a profile.
type Agent struct {
	Name  string
	Model string
	// Session is the profile's session configuration; Tools lists only
	// what a conversation can run (its webhooks: there is no phone line
	// to hang up, transfer or press keys on).
	Session realtime.SessionConfig
	// RunTool runs one of Session.Tools with the model's arguments and
	// returns its JSON answer.
	RunTool func(ctx context.Context, name, args string) (string, error)
}

// Config configures the service.
type Config struct {
	Model Model
	// Agent finds an agent by profile name ("" is the default agent).
	Agent func(name string) (Agent, bool)
	Store memory.Conversations
	// TTL: a conversation idle this long is forgotten (default 1 h).
	TTL time.Duration
	// IdleSession: a conversation's model session stays open this long
	// after a turn (default 60 s; negative: closed after every turn).
	IdleSession time.Duration
	// MaxTurns bounds the turns running at once, over all conversations
	// (default 32): each holds a model session.
	MaxTurns int
	// TurnTimeout bounds one turn, the model's answer and its tools
	// included (default 2 min).
	TurnTimeout time.Duration
	Clock       clock.Clock
	Log         zerolog.Logger
}

// The service's refusals, each with the HTTP answer it calls for.
var (
	ErrNotFound     = errors.New("no such conversation")                               // 404
	ErrBusy         = errors.New("another turn of this conversation is running")       // 409
	ErrOverloaded   = errors.New("too many turns running; try again shortly")          // 503
	ErrUnknownAgent = errors.New("no such agent")                                      // 400
	ErrEmptyTurn    = errors.New("the turn has neither text nor audio")                // 400
	ErrModel        = errors.New("the model could not answer")                         // 502
	ErrShortAudio   = errors.New("the audio is shorter than the model takes (100 ms)") // 400
)

// Service runs conversations. Its methods are safe for concurrent use.
type Service struct {
	cfg  Config
	done chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	running int
	busy    map[string]bool
	idle    map[string]*session
}

// New makes a service; Close ends it.
func New(cfg Config) *Service {
	if cfg.TTL <= 0 {
		cfg.TTL = time.Hour
	}
	if cfg.IdleSession == 0 {
		cfg.IdleSession = 60 * time.Second
	}
	if cfg.MaxTurns <= 0 {
		cfg.MaxTurns = 32
	}
	if cfg.TurnTimeout <= 0 {
		cfg.TurnTimeout = 2 * time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	return &Service{cfg: cfg, done: make(chan struct{}), busy: map[string]bool{}, idle: map[string]*session{}}
}

// Close closes the idle model sessions and stops the sweeper; turns still
// running end with their clients.
func (s *Service) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	idle := s.idle
	s.idle = map[string]*session{}
	s.mu.Unlock()
	for _, sess := range idle {
		sess.close()
	}
	s.wg.Wait()
}

// Create starts a conversation with an agent ("" for the default), its
// instructions replaced by instructions when set.
func (s *Service) Create(ctx context.Context, agent, instructions string) (memory.Conversation, error) {
	a, ok := s.cfg.Agent(agent)
	if !ok {
		return memory.Conversation{}, fmt.Errorf("%w: %q", ErrUnknownAgent, agent)
	}
	now := s.cfg.Clock.Now()
	c := memory.Conversation{ID: newID(), Agent: a.Name, Instructions: instructions, Created: now, Updated: now}
	if err := s.cfg.Store.CreateConversation(ctx, c); err != nil {
		return memory.Conversation{}, err
	}
	return c, nil
}

// Get returns a conversation and its turns.
func (s *Service) Get(ctx context.Context, id string) (memory.Conversation, []memory.Turn, error) {
	c, turns, err := s.cfg.Store.Conversation(ctx, id)
	if errors.Is(err, memory.ErrNoConversation) {
		return c, nil, ErrNotFound
	}
	if err == nil && s.expired(c) {
		return memory.Conversation{}, nil, ErrNotFound // not swept yet
	}
	return c, turns, err
}

// Delete forgets a conversation.
func (s *Service) Delete(ctx context.Context, id string) error {
	s.dropIdle(id)
	ok, err := s.cfg.Store.DeleteConversation(ctx, id)
	if err != nil {
		return err
	}
	if !ok {
		return ErrNotFound
	}
	return nil
}

func (s *Service) expired(c memory.Conversation) bool {
	return !c.Updated.IsZero() && s.cfg.Clock.Now().Sub(c.Updated) >= s.cfg.TTL
}

// Sweep deletes the conversations idle for the TTL, every interval, until
// ctx ends or the service closes. Stores that expire by themselves (Redis)
// have nothing to delete.
func (s *Service) Sweep(ctx context.Context, interval time.Duration) {
	t := s.cfg.Clock.NewTimer(interval)
	defer t.Stop()
	for {
		if n, err := s.cfg.Store.ExpireConversations(ctx, s.cfg.Clock.Now().Add(-s.cfg.TTL)); err != nil {
			s.cfg.Log.Warn().Err(err).Msg("conversations: expiry sweep failed")
		} else if n > 0 {
			s.cfg.Log.Info().Int("conversations", n).Dur("ttl", s.cfg.TTL).Msg("conversations: idle ones forgotten")
		}
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		case <-t.C():
			t.Reset(interval)
		}
	}
}

// newID is a conversation id: 128 random bits, URL-safe.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "conv_" + hex.EncodeToString(b[:])
}

// acquire marks a turn of id running, or says why it cannot run.
func (s *Service) acquire(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrOverloaded
	case s.busy[id]:
		return ErrBusy
	case s.running >= s.cfg.MaxTurns:
		return ErrOverloaded
	}
	s.busy[id] = true
	s.running++
	return nil
}

func (s *Service) release(id string) {
	s.mu.Lock()
	delete(s.busy, id)
	s.running--
	s.mu.Unlock()
}
