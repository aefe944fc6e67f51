package server

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/internal/testpeer"
	"github.com/voicebot/voicebot/realtime/realtimetest"
	"github.com/voicebot/voicebot/sound"
)

// createdItems are the conversation.item.create items a session received.
func createdItems(t *testing.T, s *realtimetest.Session) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range s.ReceivedOfType("conversation.item.create") {
		var ev struct {
			Item map[string]any `json:"item"`
		}
		if err := json.Unmarshal(r.Raw, &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev.Item)
	}
	return out
}

func itemText(it map[string]any) string {
	parts, _ := it["content"].([]any)
	var b strings.Builder
	for _, p := range parts {
		if m, ok := p.(map[string]any); ok {
			s, _ := m["text"].(string)
			b.WriteString(s)
		}
	}
	return b.String()
}

// echoOf waits until the caller hears speech back.
func waitForEcho(t *testing.T, c *testpeer.Caller, from int, speech []int16, timeout time.Duration) {
	t.Helper()
	waitFor(t, "echo of the caller's speech", timeout, func() bool {
		got := audible(c.Received()[from:])
		best, _ := testpeer.BestCorrelation(got, speech[len(speech)/5:len(speech)*4/5])
		return best > 0.8
	})
}

// The model connection drops mid-call and the first reconnects are
// refused: the caller hears the filler, what they say meanwhile reaches the
// new session, the new session gets the conversation so far as text, and
// the call goes on with it.
func TestModelDropResumesConversation(t *testing.T) {
	for _, dialect := range []string{"ga", "beta"} {
		t.Run(dialect, func(t *testing.T) {
			r := startRig(t, func(c *config.Config) {
				c.Realtime.Dialect = dialect
				c.Realtime.Reconnect.Budget = config.Duration(8 * time.Second)
			}, nil)
			c := r.caller()
			if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
				t.Fatalf("INVITE: %v %v", res, err)
			}
			waitFor(t, "greeting", 5*time.Second, func() bool { return rmsOf(audible(c.Received())) > 100 })
			time.Sleep(800 * time.Millisecond)
			first := r.server.Sessions()[0]

			// One turn each, so there is a conversation to resume.
			speech1 := testpeer.Speech(1.5, 3)
			before := len(c.Received())
			seq, ts := c.SendAudio(speech1, 100, 16000, 0xCAFE)
			waitForEcho(t, c, before, speech1, 8*time.Second)
			time.Sleep(1500 * time.Millisecond) // the echo plays out, its transcript is done

			// Three handshakes refused: about 1.75 s of backoff in all.
			r.server.RefuseNext(3)
			dropAt := len(c.Received())
			first.Drop()
			time.Sleep(300 * time.Millisecond)
			speech2 := testpeer.Speech(1.2, 7)
			c.SendAudio(speech2, seq, ts, 0xCAFE) // said while the model is away

			waitFor(t, "a second session", 6*time.Second, func() bool { return len(r.server.Sessions()) == 2 })
			second := r.server.Sessions()[1]
			// The caller heard "One moment, please." while it reconnected.
			gap := audible(c.Received()[dropAt:])
			moment := sound.Moment()
			if best, _ := testpeer.BestCorrelation(gap, moment[2000:6000]); best < 0.9 {
				t.Errorf("filler not heard during the gap: best correlation %.2f", best)
			}

			// The history came back as text, in order, as the caller heard it.
			waitFor(t, "replayed history", 3*time.Second, func() bool { return len(createdItems(t, second)) >= 3 })
			items := createdItems(t, second)
			var roles, texts []string
			for _, it := range items {
				roles = append(roles, it["role"].(string))
				texts = append(texts, itemText(it))
			}
			if strings.Join(roles[:3], ",") != "assistant,user,assistant" {
				t.Errorf("replayed roles %v, want assistant,user,assistant first", roles)
			}
			if texts[0] != "beep" || !strings.Contains(texts[1], "seconds of speech") || !strings.Contains(texts[2], "echo of") {
				t.Errorf("replayed texts %q", texts)
			}
			// What the caller said during the gap reached the new session and is answered.
			waitForEcho(t, c, dropAt, speech2, 8*time.Second)
			if second.SpeechStarts() < 1 {
				t.Errorf("the new session heard no speech")
			}
			// And the conversation goes on.
			time.Sleep(1500 * time.Millisecond)
			speech3 := testpeer.Speech(1.2, 11)
			before = len(c.Received())
			c.SendAudio(speech3, seq+200, ts+40000, 0xCAFE)
			waitForEcho(t, c, before, speech3, 8*time.Second)
			if code, err := c.Bye(5 * time.Second); err != nil || code != 200 {
				t.Fatalf("BYE: %d %v", code, err)
			}
			waitFor(t, "call log", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), `"message":"call: ended"`) })
			if !strings.Contains(r.logs.String(), "model: session back, conversation resumed") {
				t.Error("no resume in the log")
			}
		})
	}
}

// When the model stays away past the budget the caller hears the apology
// and is hung up on.
func TestModelGoneApologisesAndHangsUp(t *testing.T) {
	r := startRig(t, func(c *config.Config) {
		c.Realtime.Reconnect.Budget = config.Duration(time.Second)
	}, nil)
	c := r.caller()
	if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	waitFor(t, "greeting", 5*time.Second, func() bool { return rmsOf(audible(c.Received())) > 100 })
	r.server.RefuseNext(1000)
	from := len(c.Received())
	r.server.Sessions()[0].Drop()
	waitForBye(t, c, 15*time.Second)
	apology := sound.Apology()
	if best, _ := testpeer.BestCorrelation(audible(c.Received()[from:]), apology[8000:16000]); best < 0.9 {
		t.Errorf("apology not heard before the BYE: best correlation %.2f", best)
	}
	waitFor(t, "call log", 3*time.Second, func() bool {
		return strings.Contains(r.logs.String(), `"outcome":"model_failed","sip_code":0,"detail":"model connection lost"`)
	})
}

// A session that would expire is replaced at a quiet moment: the call
// never meets the expiry, and the new session has the conversation.
func TestSessionRollsOverBeforeExpiry(t *testing.T) {
	r := startRig(t, nil, nil, func(o *realtimetest.Options) { o.SessionLifetime = 6 * time.Second })
	c := r.caller()
	start := time.Now()
	if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	waitFor(t, "greeting", 5*time.Second, func() bool { return rmsOf(audible(c.Received())) > 100 })
	// The 6 s session is replaced half way, once the greeting is over.
	waitFor(t, "a replacement session", 6*time.Second, func() bool { return len(r.server.Sessions()) >= 2 })
	second := r.server.Sessions()[1]
	waitFor(t, "the greeting replayed", 3*time.Second, func() bool {
		items := createdItems(t, second)
		return len(items) == 1 && itemText(items[0]) == "beep"
	})
	select {
	case <-r.server.Sessions()[0].Done():
	case <-time.After(3 * time.Second):
		t.Fatal("the old session was not closed")
	}
	time.Sleep(time.Until(start.Add(6500 * time.Millisecond))) // past the first session's expiry
	speech := testpeer.Speech(1.2, 5)
	before := len(c.Received())
	c.SendAudio(speech, 100, 16000, 0xCAFE)
	waitForEcho(t, c, before, speech, 8*time.Second)
	heard := 0
	for _, s := range r.server.Sessions() {
		heard += s.SpeechStarts()
	}
	if heard != 1 {
		t.Errorf("sessions heard %d utterances in all, want 1", heard)
	}
	if code, err := c.Bye(5 * time.Second); err != nil || code != 200 {
		t.Fatalf("BYE: %d %v", code, err)
	}
	waitFor(t, "call log", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), `"message":"call: ended"`) })
	if strings.Contains(r.logs.String(), "session_expired") || strings.Contains(r.logs.String(), "connection lost") {
		t.Error("the call met the expiry")
	}
}

// When the budget runs out and a fallback target is set, the caller hears
// the apology and is transferred there (a human answers instead).
func TestModelGoneTransfersToTheFallback(t *testing.T) {
	r := startRig(t, func(c *config.Config) {
		withTargets(c)
		c.Agent.Greeting = true
		c.Realtime.Reconnect.Budget = config.Duration(time.Second)
		c.Realtime.Reconnect.FallbackTarget = "operator"
	}, nil)
	c := r.caller()
	notifier(c, 202, "SIP/2.0 200 OK\r\n")
	if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	waitFor(t, "greeting", 5*time.Second, func() bool { return rmsOf(audible(c.Received())) > 100 })
	r.server.RefuseNext(1000)
	r.server.Sessions()[0].Drop()
	waitFor(t, "REFER to the fallback", 15*time.Second, func() bool { return len(c.RequestsOf("REFER")) == 1 })
	if rt := c.RequestsOf("REFER")[0].GetHeader("Refer-To"); rt == nil || !strings.Contains(rt.Value(), "operator@") {
		t.Errorf("Refer-To %v", rt)
	}
	waitForBye(t, c, 5*time.Second)
	waitFor(t, "call log", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), `"outcome":"transferred"`) })
}
