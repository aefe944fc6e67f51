package bridge

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/voicebot/voicebot/memory"
	"github.com/voicebot/voicebot/realtime"
)

// history is the conversation as the caller experienced it, kept by the
// bridge because the model forgets everything when its session ends: the
// caller's turns from their transcripts, the bot's as heard (cut where the
// caller interrupted), key presses and notes, tool calls and their
// results. A new session gets it back as text items.
type history struct {
	now   func() time.Time
	turns []turn
	index map[string]int // item id in the current session → position
	// replayed counts the items created by replays, for their ids.
	replayed int
}

type turn struct {
	item realtime.HistoryItem
	// Assistant audio: what the model sent and what the caller heard
	// (heardMS < 0: all of it).
	receivedMS, heardMS int
	at                  time.Time
	// remembered: a turn of an earlier call, from the memory store.
	remembered bool
}

func newHistory(now func() time.Time) *history {
	return &history{now: now, index: map[string]int{}}
}

// added records an item the session reports (conversation.item.added or
// .created), in conversation order. Items the history already knows (its
// own replay, echoed) are skipped.
func (h *history) added(it *realtime.Item) {
	if it == nil || it.ID == "" {
		return
	}
	if _, ok := h.index[it.ID]; ok {
		return
	}
	t := turn{heardMS: -1, at: h.now(), item: realtime.HistoryItem{Type: it.Type, Role: it.Role, CallID: it.CallID, Name: it.Name, Arguments: it.Arguments}}
	switch it.Type {
	case "message":
		for _, p := range it.Content {
			t.item.Text += p.Text + p.Transcript
		}
	case "function_call", "function_call_output":
		t.item.Output = it.Output
	default:
		return
	}
	h.index[it.ID] = len(h.turns)
	h.turns = append(h.turns, t)
	if len(h.turns) > keepTurns {
		h.trim()
	}
}

// keepTurns bounds what a long call keeps: twice what a replay can use.
const keepTurns = 2 * replayMaxTurns

// trim drops the oldest half of the turns, which no replay would send.
func (h *history) trim() {
	drop := len(h.turns) - replayMaxTurns
	h.turns = append(h.turns[:0], h.turns[drop:]...)
	for id, i := range h.index {
		if i < drop {
			delete(h.index, id)
		} else {
			h.index[id] = i - drop
		}
	}
}

func (h *history) at(itemID string) *turn {
	if i, ok := h.index[itemID]; ok {
		return &h.turns[i]
	}
	return nil
}

// transcript sets a turn's text: the caller's transcription, or the
// bot's finished transcript.
func (h *history) transcript(itemID, text string) {
	if t := h.at(itemID); t != nil && text != "" {
		t.item.Text = text
	}
}

// functionDone fills in a function call's arguments once they are complete.
func (h *history) functionDone(it *realtime.Item) {
	if it == nil {
		return
	}
	if t := h.at(it.ID); t != nil {
		t.item.Arguments, t.item.Name, t.item.CallID = it.Arguments, it.Name, it.CallID
	} else {
		h.added(it)
	}
}

// heard records that the caller heard only heardMS of receivedMS of a bot
// item's audio.
func (h *history) heard(itemID string, heardMS, receivedMS int) {
	if t := h.at(itemID); t != nil {
		t.heardMS, t.receivedMS = heardMS, receivedMS
	}
}

// asHeard is a turn's text as the caller heard it: a bot answer cut after
// a fraction of its audio keeps that fraction of its words, which is what
// the model would have kept had it truncated its own transcript.
func (t *turn) asHeard() string {
	text := strings.TrimSpace(t.item.Text)
	if t.heardMS < 0 || t.receivedMS <= 0 || t.heardMS >= t.receivedMS {
		return text
	}
	words := strings.Fields(text)
	keep := len(words) * t.heardMS / t.receivedMS
	if keep == 0 {
		return ""
	}
	return strings.Join(words[:keep], " ") + "…"
}

// History bounds: enough for any phone call's context, small enough that a
// replay is a fraction of a second of events.
const (
	replayMaxTurns = 100
	replayMaxChars = 24000
)

// replay returns the items to create in a new session, newest last, within
// the bounds (oldest dropped first; a function call output never without
// its call), each with a fresh id. From now on only those ids name the
// turns: the old session's ids mean nothing to the new one.
func (h *history) replay() []realtime.HistoryItem {
	var out []realtime.HistoryItem
	chars := 0
	first := len(h.turns)
	for i := len(h.turns) - 1; i >= 0 && len(h.turns)-i <= replayMaxTurns; i-- {
		t := &h.turns[i]
		n := utf8.RuneCountInString(t.item.Text) + len(t.item.Arguments) + len(t.item.Output)
		if chars+n > replayMaxChars {
			break
		}
		chars += n
		first = i
	}
	for first < len(h.turns) && h.turns[first].item.Type == "function_call_output" {
		first++ // its call was dropped
	}
	h.index = map[string]int{}
	for i := first; i < len(h.turns); i++ {
		t := &h.turns[i]
		it := t.item
		if it.Type == "message" || it.Type == "" {
			it.Type = "message"
			it.Text = t.asHeard()
			if it.Text == "" {
				continue // a caller turn without a transcript, or a bot turn cut before its first word
			}
		}
		h.replayed++
		it.ID = "vb_replay_" + strconv.Itoa(h.replayed)
		h.index[it.ID] = i
		out = append(out, it)
	}
	return out
}

// remember puts a caller's turns of earlier calls before this call's.
func (h *history) remember(turns []memory.Turn) {
	if len(turns) == 0 {
		return
	}
	old := make([]turn, 0, len(turns)+len(h.turns))
	for _, t := range turns {
		old = append(old, turn{heardMS: -1, at: t.At, remembered: true,
			item: realtime.HistoryItem{Type: "message", Role: t.Role, Text: t.Text}})
	}
	for id, i := range h.index {
		h.index[id] = i + len(turns)
	}
	h.turns = append(old, h.turns...)
}

// thisCall is what was said on this call, as heard, for the memory store:
// the caller's and the bot's words, without the earlier calls' turns, the
// tool calls or the notes.
func (h *history) thisCall(callID string) []memory.Turn {
	var out []memory.Turn
	for i := range h.turns {
		t := &h.turns[i]
		if t.remembered || t.item.Type != "message" || (t.item.Role != "user" && t.item.Role != "assistant") {
			continue
		}
		if text := t.asHeard(); text != "" {
			out = append(out, memory.Turn{Role: t.item.Role, Text: text, At: t.at, CallID: callID})
		}
	}
	return out
}

// awaitingBot reports whether the conversation's last word is not the
// bot's: the caller (or a key, or a tool result) is waiting for an answer.
func (h *history) awaitingBot() bool {
	for i := len(h.turns) - 1; i >= 0; i-- {
		t := &h.turns[i]
		switch {
		case t.item.Type == "function_call_output", t.item.Role == "user":
			return true
		case t.item.Role == "assistant" && t.item.Type == "message":
			return t.heardMS >= 0 && t.heardMS < t.receivedMS // cut off: the answer is owed
		}
	}
	return false
}
