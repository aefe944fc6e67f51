package bridge

import (
	"strings"
	"testing"
	"time"
)

func texts(h *harness) []string {
	var out []string
	for _, m := range h.model.ofType("conversation.item.create") {
		item := m["item"].(map[string]any)
		content := item["content"].([]any)[0].(map[string]any)
		out = append(out, content["text"].(string))
	}
	return out
}

func TestKeysReachTheModelAndAreAnsweredOnce(t *testing.T) {
	h := newHarness(t, nil)
	for _, d := range "1234#" {
		h.c.onKey(d, "rfc4733")
		h.play(200 * time.Millisecond) // keys 200 ms apart: one burst
	}
	if got := strings.Join(texts(h), " "); got != "The caller pressed 1. The caller pressed 2. The caller pressed 3. The caller pressed 4. The caller pressed #." {
		t.Errorf("items: %s", got)
	}
	if n := len(h.model.ofType("response.create")); n != 0 {
		t.Fatalf("%d response.create before the caller paused", n)
	}
	h.play(interDigit)
	if n := len(h.model.ofType("response.create")); n != 1 {
		t.Errorf("%d response.create after the pause, want 1", n)
	}
}

func TestKeyInterruptsTheBot(t *testing.T) {
	h := newHarness(t, nil)
	h.respond("resp_1", "item_1", 3000)
	h.play(500 * time.Millisecond)
	h.c.onKey('0', "sip-info")
	sent, _ := h.audioMS()
	h.play(100 * time.Millisecond)
	if after, _ := h.audioMS(); after != sent {
		t.Fatal("the bot kept talking after a key press")
	}
	if len(h.model.ofType("response.cancel")) != 1 || len(h.model.ofType("conversation.item.truncate")) != 1 {
		t.Fatalf("a key press must cancel and truncate like a local barge-in: %v", h.model.sent)
	}
	h.play(interDigit)
	if len(h.model.ofType("response.create")) != 0 {
		t.Fatal("asked for an answer while the cancelled one was still active")
	}
	h.done("resp_1", "cancelled")
	if len(h.model.ofType("response.create")) != 1 {
		t.Error("no answer asked for once the cancelled response was done")
	}
}

func TestKeyFloodIsBounded(t *testing.T) {
	h := newHarness(t, nil)
	for i := 0; i < 500; i++ {
		h.c.onKey('9', "rfc4733")
	}
	if n := len(texts(h)); n != maxKeysPerSecond {
		t.Errorf("%d key items from a flood in one second, want %d", n, maxKeysPerSecond)
	}
	h.play(1100 * time.Millisecond)
	h.c.onKey('1', "rfc4733")
	if n := len(texts(h)); n != maxKeysPerSecond+1 {
		t.Errorf("keys still refused after the flood's second: %d", n)
	}
	if h.c.keys.dropped != 490 {
		t.Errorf("dropped %d, want 490", h.c.keys.dropped)
	}
}
