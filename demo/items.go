package demo

import (
	"encoding/json"
	"fmt"

	"github.com/voicebot/voicebot/realtime"
)

// Conversation items: create, truncate, delete.

func (s *Session) onTruncate(data []byte, eventID string) {
	var ev struct {
		ItemID       string `json:"item_id"`
		ContentIndex int    `json:"content_index"`
		AudioEndMS   *int   `json:"audio_end_ms"`
	}
	if err := json.Unmarshal(data, &ev); err != nil || ev.AudioEndMS == nil || *ev.AudioEndMS < 0 {
		s.sendError("invalid_value", "Invalid truncate event.", "audio_end_ms", eventID)
		return
	}
	s.mu.Lock()
	it := s.items[ev.ItemID]
	var errCode, errMsg string
	switch {
	case it == nil:
		errCode, errMsg = "item_truncate_invalid_item_id", "Item with item_id not found: "+ev.ItemID
	case it.role != "assistant" || !it.hasAudio || it.audioMS == 0:
		errCode, errMsg = "unsupported_content_type", "Only model output audio messages can be truncated"
	case *ev.AudioEndMS > it.audioMS:
		errCode, errMsg = "invalid_value", fmt.Sprintf("Audio content of %dms is already shorter than %dms", it.audioMS, *ev.AudioEndMS)
	default:
		it.audioMS = *ev.AudioEndMS
		it.truncated = true
		it.transcript = ""
	}
	s.mu.Unlock()
	if errCode != "" {
		s.sendError(errCode, errMsg, "", eventID)
		return
	}
	s.send(map[string]any{"type": "conversation.item.truncated", "item_id": ev.ItemID, "content_index": ev.ContentIndex, "audio_end_ms": *ev.AudioEndMS})
}

func (s *Session) onItemCreate(data []byte, eventID string) {
	var ev struct {
		PreviousItemID *string         `json:"previous_item_id"`
		Item           json.RawMessage `json:"item"`
	}
	var it struct {
		ID      string  `json:"id"`
		Type    string  `json:"type"`
		Role    string  `json:"role"`
		CallID  string  `json:"call_id"`
		Output  *string `json:"output"`
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(data, &ev); err != nil || json.Unmarshal(ev.Item, &it) != nil {
		s.sendError("invalid_value", "Invalid item.", "item", eventID)
		return
	}
	if it.Type == "message" {
		for _, c := range it.Content {
			ok := false
			switch it.Role {
			case "user", "system":
				ok = c.Type == "input_text" || c.Type == "input_audio" && it.Role == "user"
			case "assistant":
				ok = (s.dialect == realtime.GA && c.Type == "output_text") || (s.dialect == realtime.Beta && c.Type == "text")
			}
			if !ok {
				s.sendError("invalid_value", fmt.Sprintf("Invalid value: '%s' for a %s message.", c.Type, it.Role), "item.content[0].type", eventID)
				return
			}
		}
	}
	if it.Type == "function_call_output" && (it.CallID == "" || it.Output == nil) {
		s.sendError("missing_required_parameter", "A function_call_output item needs call_id and output.", "item", eventID)
		return
	}
	s.mu.Lock()
	if it.Type == "function_call_output" && !s.hasCallLocked(it.CallID) {
		s.mu.Unlock()
		s.sendError("invalid_value", "No function call with call_id "+it.CallID+" in the conversation.", "item.call_id", eventID)
		return
	}
	if it.Type == "function_call_output" {
		if s.pendingTool != "" {
			s.pendingTool += "; "
		}
		s.pendingTool += *it.Output
	}
	if it.ID == "" {
		it.ID = s.newIDLocked("item")
	}
	prev := s.lastItemLocked()
	if ev.PreviousItemID != nil && *ev.PreviousItemID != "root" {
		if _, ok := s.items[*ev.PreviousItemID]; !ok {
			s.mu.Unlock()
			s.sendError("invalid_value", "Previous item not found: "+*ev.PreviousItemID, "previous_item_id", eventID)
			return
		}
		prev = *ev.PreviousItemID
	}
	s.addItemLocked(&item{id: it.ID, role: it.Role, kind: it.Type, callID: it.CallID})
	if it.Type == "message" && it.Role == "assistant" {
		// History: the turns before an assistant message were answered.
		s.pendingText, s.pendingTool = "", ""
	}
	if it.Type == "message" && it.Role == "user" && len(it.Content) > 0 && it.Content[0].Type == "input_text" {
		if s.pendingText != "" {
			s.pendingText += " "
		}
		s.pendingText += it.Content[0].Text
	}
	s.mu.Unlock()
	var obj map[string]any
	_ = json.Unmarshal(ev.Item, &obj)
	obj["id"], obj["object"], obj["status"] = it.ID, "realtime.item", "completed"
	s.send(map[string]any{"type": s.name("conversation.item.added"), "previous_item_id": nullable(prev), "item": obj})
	if s.dialect == realtime.GA {
		s.send(map[string]any{"type": "conversation.item.done", "previous_item_id": nullable(prev), "item": obj})
	}
}

func (s *Session) hasCallLocked(callID string) bool {
	for _, it := range s.items {
		if it.kind == "function_call" && it.callID == callID {
			return true
		}
	}
	return false
}

func (s *Session) onItemDelete(data []byte, eventID string) {
	var ev struct {
		ItemID string `json:"item_id"`
	}
	_ = json.Unmarshal(data, &ev)
	s.mu.Lock()
	_, ok := s.items[ev.ItemID]
	if ok {
		delete(s.items, ev.ItemID)
		for i, id := range s.order {
			if id == ev.ItemID {
				s.order = append(s.order[:i], s.order[i+1:]...)
				break
			}
		}
	}
	s.mu.Unlock()
	if !ok {
		s.sendError("item_delete_invalid_item_id", "Item with item_id not found: "+ev.ItemID, "item_id", eventID)
		return
	}
	s.send(map[string]any{"type": "conversation.item.deleted", "item_id": ev.ItemID})
}
