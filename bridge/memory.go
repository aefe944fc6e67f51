package bridge

import (
	"context"
	"sync"

	"github.com/voicebot/voicebot/memory"
	"github.com/voicebot/voicebot/record"
)

// recalled is what the store answered for the caller.
type recalled struct {
	turns []memory.Turn
	err   error
}

// remembers reports whether this call reads and keeps caller memory.
func (c *callState) remembers() bool {
	return c.cfg.Memory != nil && c.profile.Memory.Enabled && c.setup.MemoryID != ""
}

// startRecall fetches the caller's earlier turns while the model session
// is being opened; recallMemory takes them when it is ready. The store's
// own bound (memory.Guarded) limits how long the greeting can wait.
func (c *callState) startRecall(ctx context.Context, wg *sync.WaitGroup) {
	if !c.remembers() {
		return
	}
	c.recall = make(chan recalled, 1)
	policy := c.profile.Memory
	since := c.clock.Now().Add(-policy.MaxAge)
	wg.Add(1)
	go func() {
		defer wg.Done()
		turns, err := c.cfg.Memory.Recent(ctx, c.setup.MemoryID, since, policy.MaxTurns)
		if err != nil {
			c.log.Debug().Err(err).Msg("memory: not recalled; the call goes on without it")
		}
		c.recall <- recalled{turns, err}
	}()
}

// recallMemory gives a new session the caller's earlier turns as text
// items, before the greeting, through the same replay as a resumed session.
func (c *callState) recallMemory() {
	if c.recall == nil {
		return
	}
	r := <-c.recall
	c.recall = nil
	if r.err != nil {
		c.cfg.Metrics.Memory("failed")
		return
	}
	turns := memory.Budget(r.turns, c.profile.Memory.MaxChars)
	if len(turns) == 0 {
		c.cfg.Metrics.Memory("new")
		return
	}
	c.cfg.Metrics.Memory("recalled")
	c.hist.remember(turns)
	items := c.hist.replay()
	for _, it := range items {
		ev, err := c.model.Dialect().ItemCreate(c.nextEventID("memory_"), it)
		c.send("conversation.item.create", ev, err)
	}
	c.remembered = len(turns)
	c.log.Info().Int("turns", len(turns)).Time("since", turns[0].At).Msg("memory: the caller's earlier turns given to the model")
	c.rec.Emit("memory", record.Event{"turns": len(turns)})
}

// rememberCall keeps what was said on this call for the caller's next one.
// The call is over: the store's bound is all it may wait.
func (c *callState) rememberCall() {
	if !c.remembers() {
		return
	}
	turns := c.hist.thisCall(c.call.ID())
	if len(turns) == 0 {
		return
	}
	if err := c.cfg.Memory.Append(context.Background(), c.setup.MemoryID, turns); err != nil {
		c.log.Debug().Err(err).Msg("memory: this call not kept")
		c.cfg.Metrics.Memory("failed")
		return
	}
	c.cfg.Metrics.Memory("kept")
	c.log.Debug().Int("turns", len(turns)).Msg("memory: call kept")
}
