package bridge

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/memory"
	"github.com/voicebot/voicebot/realtime"
)

func msg(id, role, text string) *realtime.Item {
	return &realtime.Item{ID: id, Type: "message", Role: role, Content: []realtime.ContentPart{{Type: "input_text", Text: text}}}
}

func TestHistoryReplaysAsHeard(t *testing.T) {
	h := newHistory(time.Now)
	h.added(msg("i1", "assistant", ""))
	h.transcript("i1", "Hello, how can I help?")
	h.added(&realtime.Item{ID: "i2", Type: "message", Role: "user", Content: []realtime.ContentPart{{Type: "input_audio"}}})
	h.transcript("i2", "What are your opening hours?")
	h.added(msg("i3", "assistant", ""))
	h.transcript("i3", "We open at nine and close at five on weekdays")
	h.heard("i3", 500, 1000) // the caller cut it half way
	h.added(msg("i1", "assistant", "a duplicate echo is ignored"))

	if !h.awaitingBot() {
		t.Error("an answer cut off is owed")
	}
	items := h.replay()
	if len(items) != 3 {
		t.Fatalf("%d items, want 3: %+v", len(items), items)
	}
	if items[2].Text != "We open at nine and…" {
		t.Errorf("cut answer replayed as %q", items[2].Text)
	}
	if items[1].Role != "user" || items[1].Text != "What are your opening hours?" {
		t.Errorf("caller turn %+v", items[1])
	}
	// The replay's ids now name the turns; echoes of them are not new turns.
	for _, it := range items {
		h.added(msg(it.ID, it.Role, it.Text))
	}
	if n := len(h.turns); n != 3 {
		t.Errorf("%d turns after the replay echoed, want 3", n)
	}
	h.added(msg("j1", "assistant", "Anything else?"))
	if h.awaitingBot() {
		t.Error("the bot had the last word")
	}
}

func TestHistoryReplayIsBounded(t *testing.T) {
	h := newHistory(time.Now)
	long := strings.Repeat("word ", 200)
	for i := 0; i < 300; i++ {
		h.added(msg("u"+string(rune('a'+i%26))+strings.Repeat("x", i/26), "user", long))
	}
	items := h.replay()
	chars := 0
	for _, it := range items {
		chars += len(it.Text)
	}
	if len(items) > replayMaxTurns || chars > replayMaxChars || len(items) == 0 {
		t.Errorf("%d items, %d chars: over the bounds", len(items), chars)
	}
	// A function output whose call was dropped is not replayed alone.
	h = newHistory(time.Now)
	h.added(&realtime.Item{ID: "c1", Type: "function_call", CallID: "call_1", Name: "lookup", Arguments: strings.Repeat("x", replayMaxChars)})
	h.added(&realtime.Item{ID: "o1", Type: "function_call_output", CallID: "call_1", Output: "{}"})
	h.added(msg("m1", "assistant", "Done."))
	for _, it := range h.replay() {
		if it.Type != "message" {
			t.Errorf("replayed %s without its call", it.Type)
		}
	}
}

// A long call keeps a bounded history, and its latest turns stay reachable.
func TestHistoryStorageIsBounded(t *testing.T) {
	h := newHistory(time.Now)
	for i := 0; i < 10*replayMaxTurns; i++ {
		h.added(msg("m"+strconv.Itoa(i), "user", "turn "+strconv.Itoa(i)))
	}
	if len(h.turns) > keepTurns || len(h.index) != len(h.turns) {
		t.Fatalf("%d turns, %d indexed: bound %d", len(h.turns), len(h.index), keepTurns)
	}
	last := "m" + strconv.Itoa(10*replayMaxTurns-1)
	h.transcript(last, "the latest")
	items := h.replay()
	if items[len(items)-1].Text != "the latest" {
		t.Errorf("latest turn %q", items[len(items)-1].Text)
	}
}

// A returning caller's earlier turns come first in the replay, and only
// this call's turns, as heard, go back to the memory store.
func TestHistoryRemembersEarlierCalls(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	h := newHistory(func() time.Time { return now })
	h.added(msg("i1", "assistant", "")) // the greeting, already under way
	h.transcript("i1", "Welcome back! How can I help?")
	yesterday := now.Add(-24 * time.Hour)
	h.remember([]memory.Turn{
		{Role: "user", Text: "Where is my parcel?", At: yesterday, CallID: "old"},
		{Role: "assistant", Text: "It ships tomorrow.", At: yesterday, CallID: "old"},
	})
	h.transcript("i1", "Welcome back! How can I help you today?") // ids still name their turns
	h.added(msg("i2", "user", "Did it ship?"))
	h.added(msg("i3", "assistant", ""))
	h.transcript("i3", "Yes it left this morning and arrives on Friday")
	h.heard("i3", 250, 1000)
	h.added(&realtime.Item{ID: "f1", Type: "function_call", Name: "lookup", Arguments: "{}"})

	var texts []string
	for _, it := range h.replay() {
		texts = append(texts, it.Role+": "+it.Text)
	}
	want := "user: Where is my parcel?|assistant: It ships tomorrow.|assistant: Welcome back! How can I help you today?|user: Did it ship?|assistant: Yes it…|: "
	if got := strings.Join(texts, "|"); got != want {
		t.Errorf("replay:\n got %s\nwant %s", got, want)
	}
	kept := h.thisCall("call-2")
	if len(kept) != 3 || kept[0].Text != "Welcome back! How can I help you today?" || kept[2].Text != "Yes it…" ||
		kept[1].Role != "user" || kept[1].CallID != "call-2" || !kept[1].At.Equal(now) {
		t.Errorf("this call's turns: %+v", kept)
	}
}
