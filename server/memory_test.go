package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/internal/testpeer"
	"github.com/voicebot/voicebot/internal/testredis"
	"github.com/voicebot/voicebot/memory"
	"github.com/voicebot/voicebot/realtime/realtimetest"
)

// beforeGreeting is what a session was given ahead of the greeting's
// response.create: the items created, as role: text.
func beforeGreeting(t *testing.T, s *realtimetest.Session) []string {
	t.Helper()
	var out []string
	for _, r := range s.Received() {
		var ev struct {
			EventID string         `json:"event_id"`
			Item    map[string]any `json:"item"`
		}
		_ = json.Unmarshal(r.Raw, &ev)
		if r.Type == "response.create" && strings.HasPrefix(ev.EventID, "greeting_") {
			return out
		}
		if r.Type == "conversation.item.create" {
			out = append(out, ev.Item["role"].(string)+": "+itemText(ev.Item))
		}
	}
	t.Fatal("the session got no greeting")
	return nil
}

// greetingPrompt is the instructions of the greeting's response.create.
func greetingPrompt(t *testing.T, s *realtimetest.Session) string {
	for _, r := range s.ReceivedOfType("response.create") {
		var ev struct {
			EventID  string `json:"event_id"`
			Response struct {
				Instructions string `json:"instructions"`
			} `json:"response"`
		}
		_ = json.Unmarshal(r.Raw, &ev)
		if strings.HasPrefix(ev.EventID, "greeting_") {
			return ev.Response.Instructions
		}
	}
	return ""
}

// talkAndHangUp places a call from number, says something once the
// greeting is heard, waits for the echo, and hangs up.
func talkAndHangUp(t *testing.T, r *rig, number string, seed int, headers ...string) *realtimetest.Session {
	t.Helper()
	sessions := len(r.server.Sessions())
	c := r.caller()
	c.FromUser = number
	if res, err := c.Invite("", 5*time.Second, headers...); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE from %s: %v %v", number, res, err)
	}
	waitFor(t, "greeting", 5*time.Second, func() bool { return rmsOf(audible(c.Received())) > 100 })
	time.Sleep(800 * time.Millisecond)
	speech := testpeer.Speech(1.2, seed)
	before := len(c.Received())
	c.SendAudio(speech, 100, 16000, 0xCAFE)
	waitForEcho(t, c, before, speech, 8*time.Second)
	time.Sleep(1500 * time.Millisecond) // the echo plays out, its transcript is done
	if code, err := c.Bye(3 * time.Second); err != nil || code != 200 {
		t.Fatalf("BYE: %d %v", code, err)
	}
	waitFor(t, "the call's session", 3*time.Second, func() bool { return len(r.server.Sessions()) > sessions })
	return r.server.Sessions()[sessions]
}

// A caller who rings back is remembered: the new session gets the first
// call's turns as items before the greeting (which welcomes them back); a
// different number gets none; DELETE forgets; after the TTL, nothing.
func TestCallerIsRememberedAcrossCalls(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "memory.db")
	r := startRig(t, func(c *config.Config) {
		c.Agent.Memory.Enabled = true
		c.Memory.Path = dbPath
		c.Memory.TTL = config.Duration(8 * time.Second)
		c.API.Listen, c.API.Token = "127.0.0.1:0", apiToken
	}, nil)
	db, err := memory.OpenSQLite(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	kept := func(id string) int {
		turns, _ := db.Recent(context.Background(), id, time.Time{}, 100)
		return len(turns)
	}

	first := talkAndHangUp(t, r, "+1-555-0100", 3)
	if got := beforeGreeting(t, first); len(got) != 0 {
		t.Errorf("a first-time caller's session got %q before the greeting", got)
	}
	waitFor(t, "the first call kept", 3*time.Second, func() bool { return kept("+15550100") >= 3 })

	second := talkAndHangUp(t, r, "+15550100", 5)
	got := beforeGreeting(t, second)
	if len(got) < 3 || !strings.HasPrefix(got[0], "assistant: beep") || !strings.HasPrefix(got[1], "user: ") ||
		!strings.Contains(got[1], "seconds of speech") || !strings.HasPrefix(got[2], "assistant: ") || !strings.Contains(got[2], "echo of") {
		t.Errorf("the returning caller's session got %q before the greeting, want the first call's greeting, turn and answer", got)
	}
	if p := greetingPrompt(t, second); !strings.Contains(p, "welcome them back") {
		t.Errorf("returning caller greeted with %q", p)
	}
	if p := greetingPrompt(t, first); strings.Contains(p, "welcome") {
		t.Errorf("first-time caller greeted with %q", p)
	}

	stranger := talkAndHangUp(t, r, "+15550199", 7)
	if got := beforeGreeting(t, stranger); len(got) != 0 {
		t.Errorf("a different number's session got %q", got)
	}

	// The stranger asks to be forgotten.
	waitFor(t, "the stranger's call kept", 3*time.Second, func() bool { return kept("+15550199") > 0 })
	if code, _ := apiCall(t, r, "DELETE", "/v1/callers/"+url.PathEscape("+15550199")+"/memory", "", nil); code != 401 {
		t.Errorf("DELETE without the token: %d, want 401", code)
	}
	code, body := apiCall(t, r, "DELETE", "/v1/callers/"+url.PathEscape("+1 555 0199")+"/memory", apiToken, nil)
	if code != 200 || body["caller"] != "+15550199" || body["deleted_turns"].(float64) < 1 {
		t.Errorf("DELETE: %d %v", code, body)
	}
	if n := kept("+15550199"); n != 0 {
		t.Errorf("%d turns left after DELETE", n)
	}

	// Past the TTL the caller is a stranger again (and the sweep, every
	// TTL/4 here, has deleted the turns).
	time.Sleep(9 * time.Second)
	late := talkAndHangUp(t, r, "+15550100", 9)
	if got := beforeGreeting(t, late); len(got) != 0 {
		t.Errorf("after the TTL the session got %q", got)
	}
	turns, _ := db.Recent(context.Background(), "+15550100", time.Time{}, 100)
	for _, turn := range turns {
		if age := time.Since(turn.At); age > 11*time.Second { // TTL, a sweep interval, slack
			t.Errorf("a turn %v old is still stored: %+v", age.Round(time.Second), turn)
		}
	}
	// Four calls: one recalled, three with nothing to recall; the fourth's
	// turns may still be on their way to the store.
	waitFor(t, "the last call kept", 3*time.Second, func() bool { return kept("+15550100") > 0 })
	res, err := http.Get("http://" + r.api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{`voicebot_memory_total{event="recalled"} 1`, `voicebot_memory_total{event="new"} 3`, `voicebot_memory_total{event="kept"} 4`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// A profile may key memory on a header the IVR sets (an account id), not
// on the number: the same account from another phone is remembered, and a
// call without the header is not.
func TestMemoryByIdentityHeader(t *testing.T) {
	r := startRig(t, func(c *config.Config) {
		c.Agent.Memory.Enabled = true
		c.Agent.Memory.Identity = "X-Account-ID"
		c.Memory.Path = filepath.Join(t.TempDir(), "memory.db")
	}, nil)
	talkAndHangUp(t, r, "+15550100", 3, "X-Account-ID: ACCT-42")
	waitFor(t, "the call kept", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), "memory: call kept") })
	other := talkAndHangUp(t, r, "+15550177", 5, "X-Account-ID: acct-42")
	if got := beforeGreeting(t, other); len(got) < 3 {
		t.Errorf("the same account from another number got %q", got)
	}
	bare := talkAndHangUp(t, r, "+15550100", 7)
	if got := beforeGreeting(t, bare); len(got) != 0 {
		t.Errorf("a call without the header got %q", got)
	}
}

// A profile that does not opt in keeps nothing, and (with the
// conversation service off, which keeps its conversations there) creates
// no store.
func TestNoMemoryWithoutOptIn(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "memory.db")
	r := startRig(t, func(c *config.Config) {
		c.Memory.Path = dbPath
		c.API.Listen, c.API.Token = "127.0.0.1:0", apiToken
		c.Conversations.Enabled = false
	}, nil)
	talkAndHangUp(t, r, "+15550100", 3)
	second := talkAndHangUp(t, r, "+15550100", 5)
	if got := beforeGreeting(t, second); len(got) != 0 {
		t.Errorf("a profile without memory gave %q", got)
	}
	if _, err := os.Stat(dbPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a memory file was created: %s (%v)", dbPath, err)
	}
	if code, _ := apiCall(t, r, "DELETE", "/v1/callers/15550100/memory", apiToken, nil); code != 404 {
		t.Errorf("DELETE without a store: %d, want 404", code)
	}
}

// Redis stopped mid-run: calls still complete (without memory), the outage
// is logged once, and once Redis is back callers are remembered again.
func TestRedisOutageCostsOnlyMemory(t *testing.T) {
	redis := testredis.Start(t)
	r := startRig(t, func(c *config.Config) {
		c.Agent.Memory.Enabled = true
		c.Memory.Store = "redis"
		c.Memory.Redis.Addr = redis.Addr
	}, nil)
	talkAndHangUp(t, r, "+15550100", 3)
	waitFor(t, "the first call kept", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), "memory: call kept") })

	redis.Stop()
	for i, seed := range []int{5, 7} {
		s := talkAndHangUp(t, r, "+15550100", seed) // fails the test unless the call works
		if got := beforeGreeting(t, s); len(got) != 0 {
			t.Errorf("call %d during the outage got %q", i+2, got)
		}
	}
	if n := strings.Count(r.logs.String(), "memory: store unavailable"); n != 1 {
		t.Errorf("outage logged %d times, want once", n)
	}

	redis.Restart() // empty: no persistence
	talkAndHangUp(t, r, "+15550100", 9)
	waitFor(t, "kept after Redis came back", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), "memory: store back") })
	again := talkAndHangUp(t, r, "+15550100", 11)
	if got := beforeGreeting(t, again); len(got) < 3 {
		t.Errorf("after Redis came back the session got %q", got)
	}
}
