package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voicebot/voicebot/memory"
	"github.com/voicebot/voicebot/realtime/realtimetest"
)

// Caller memory in whole calls (see rig_test.go): a returning caller's
// earlier turns go to the model before the greeting, and this call's go
// back to the store at the end.

// fakeMemory is a memory.Store in a map.
type fakeMemory struct {
	mu                   sync.Mutex
	turns                map[string][]memory.Turn
	recentErr, appendErr error
	recents, appends     int
}

func (m *fakeMemory) Recent(_ context.Context, caller string, since time.Time, max int) ([]memory.Turn, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recents++
	if m.recentErr != nil {
		return nil, m.recentErr
	}
	var out []memory.Turn
	for _, t := range m.turns[caller] {
		if !t.At.Before(since) {
			out = append(out, t)
		}
	}
	if len(out) > max {
		out = out[len(out)-max:]
	}
	return out, nil
}

func (m *fakeMemory) Append(_ context.Context, caller string, turns []memory.Turn) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.appends++
	if m.appendErr != nil {
		return m.appendErr
	}
	m.turns[caller] = append(m.turns[caller], turns...)
	return nil
}

func (m *fakeMemory) Forget(context.Context, string) (int, error)    { return 0, nil }
func (m *fakeMemory) Expire(context.Context, time.Time) (int, error) { return 0, nil }
func (m *fakeMemory) Close() error                                   { return nil }

func (m *fakeMemory) of(caller string) []memory.Turn {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]memory.Turn(nil), m.turns[caller]...)
}

func (m *fakeMemory) calls() (recents, appends int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.recents, m.appends
}

const caller = "+15550100"

// memoryRig is a rig whose agent remembers callers, with store.
func memoryRig(t *testing.T, store *fakeMemory, memoryID string) *rig {
	return newRig(t, rigOptions{
		config: func(c *Config) { c.Memory = store },
		profile: func(p *Profile) {
			p.Memory = memory.Policy{Enabled: true, MaxTurns: 10, MaxAge: 24 * time.Hour, MaxChars: 4000,
				GreetingPrompt: "Welcome the caller back."}
		},
		setup: func(s *Setup) { s.MemoryID = memoryID },
	})
}

// greetingInstructions returns the instructions of the first response the
// session was asked for.
func greetingInstructions(t *testing.T, s *realtimetest.Session) string {
	t.Helper()
	creates := s.ReceivedOfType("response.create")
	if len(creates) == 0 {
		t.Fatal("no greeting asked for")
	}
	var ev struct{ Response struct{ Instructions string } }
	if err := json.Unmarshal(creates[0].Raw, &ev); err != nil {
		t.Fatal(err)
	}
	return ev.Response.Instructions
}

// A returning caller: their recent turns (not those older than the
// policy's age) are given to the model before it greets them back, and
// what was said on this call is kept for their next.
func TestReturningCallerIsWelcomedBackAndRemembered(t *testing.T) {
	now := time.Now()
	store := &fakeMemory{turns: map[string][]memory.Turn{caller: {
		{Role: "user", Text: "My old address is 1 Elm Street.", At: now.Add(-72 * time.Hour), CallID: "older"},
		{Role: "user", Text: "Where is my parcel?", At: now.Add(-time.Hour), CallID: "earlier"},
		{Role: "assistant", Text: "It ships tomorrow.", At: now.Add(-time.Hour), CallID: "earlier"},
	}}}
	r := memoryRig(t, store, caller)
	r.start()
	r.greeted()
	s := r.session(0)
	var order, given []string
	for _, ev := range s.Received() {
		var m struct {
			EventID string `json:"event_id"`
			Item    struct {
				Role    string
				Content []struct{ Text string }
			}
		}
		_ = json.Unmarshal(ev.Raw, &m)
		order = append(order, ev.Type)
		if strings.HasPrefix(m.EventID, "memory_") && len(m.Item.Content) > 0 {
			given = append(given, m.Item.Role+": "+m.Item.Content[0].Text)
		}
	}
	if got := strings.Join(given, "|"); got != "user: Where is my parcel?|assistant: It ships tomorrow." {
		t.Errorf("the model was given %q", got)
	}
	if got := strings.Join(order, ","); got != "session.update,conversation.item.create,conversation.item.create,response.create" {
		t.Errorf("the model received %s: the earlier turns must come before the greeting", got)
	}
	if in := greetingInstructions(t, s); !strings.Contains(in, "Welcome the caller back.") {
		t.Errorf("a returning caller was greeted with %q", in)
	}
	r.hangup()
	r.waitFor("the call to end", r.ended)
	kept := store.of(caller)
	if len(kept) != 4 {
		t.Fatalf("the store has %d turns after the call, want the 3 before and the greeting", len(kept))
	}
	if g := kept[3]; g.Role != "assistant" || g.Text != "Hello, rig caller." || g.CallID != r.call.ID() {
		t.Errorf("this call was kept as %+v", g)
	}
	if r.metric(`voicebot_memory_total{event="recalled"}`) != 1 || r.metric(`voicebot_memory_total{event="kept"}`) != 1 {
		t.Error("recalling and keeping are not counted")
	}
}

// A caller with no history is greeted as anyone is, and remembered.
func TestNewCallerIsGreetedAndRemembered(t *testing.T) {
	store := &fakeMemory{turns: map[string][]memory.Turn{}}
	r := memoryRig(t, store, caller)
	r.start()
	r.greeted()
	if in := greetingInstructions(t, r.session(0)); !strings.Contains(in, "Greet the caller.") {
		t.Errorf("a new caller was greeted with %q", in)
	}
	r.hangup()
	r.waitFor("the call to end", r.ended)
	if kept := store.of(caller); len(kept) != 1 || kept[0].Text != "Hello, rig caller." {
		t.Errorf("kept %+v", kept)
	}
	if r.metric(`voicebot_memory_total{event="new"}`) != 1 {
		t.Error("a new caller is not counted")
	}
}

// A store that fails costs the call its memory only: it is answered and
// greeted as a new caller's would be.
func TestBrokenMemoryStoreCostsOnlyTheMemory(t *testing.T) {
	store := &fakeMemory{recentErr: errors.New("disk on fire"), appendErr: errors.New("disk on fire")}
	r := memoryRig(t, store, caller)
	r.start()
	r.greeted()
	if in := greetingInstructions(t, r.session(0)); !strings.Contains(in, "Greet the caller.") {
		t.Errorf("greeted with %q", in)
	}
	r.hangup()
	r.waitFor("the call to end", r.ended)
	if recents, appends := store.calls(); recents != 1 || appends != 1 {
		t.Errorf("the store was asked %d times and told %d times", recents, appends)
	}
	if r.metric(`voicebot_memory_total{event="failed"}`) != 2 {
		t.Error("the store's failures are not counted")
	}
}

// A caller without an identity (anonymous) is neither looked up nor kept.
func TestAnonymousCallerIsNotRemembered(t *testing.T) {
	store := &fakeMemory{turns: map[string][]memory.Turn{}}
	r := memoryRig(t, store, "")
	r.start()
	r.greeted()
	r.hangup()
	r.waitFor("the call to end", r.ended)
	if recents, appends := store.calls(); recents != 0 || appends != 0 {
		t.Errorf("the store was asked %d times and told %d times about an anonymous caller", recents, appends)
	}
}
