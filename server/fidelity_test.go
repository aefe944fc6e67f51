package server

import (
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/internal/testpeer"
	"github.com/voicebot/voicebot/realtime/realtimetest"
	"github.com/voicebot/voicebot/sound"
)

// What the real Realtime API does that our own tests did not: the demo
// model answers as it does, so each of these would have failed before.

const persona = "Eres el agente de ACME. Habla siempre en español y di tu nombre."

// responsesOf returns the session's responses asked for with prefix.
func responsesOf(s *realtimetest.Session, prefix string) []realtimetest.ResponseInfo {
	var out []realtimetest.ResponseInfo
	for _, r := range s.Responses() {
		if strings.HasPrefix(r.Request, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// The greeting and the goodbye at the time limit are prompted responses:
// they keep the agent's persona (response.instructions replace the
// session's), the demo follows their prompts, and the call ends once the
// goodbye is said.
func TestPromptedResponsesKeepThePersona(t *testing.T) {
	r := startRig(t, func(c *config.Config) {
		c.Agent.Instructions = persona
		c.Calls.MaxDuration = config.Duration(3 * time.Second)
		c.Calls.MaxDurationWarning = config.Duration(time.Second)
	}, nil)
	c := r.caller()
	if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	answered := time.Now()
	waitForBye(t, c, 10*time.Second)
	took := time.Since(answered)
	sess := r.server.Sessions()[0]
	if sess.Instructions() != persona {
		t.Errorf("session instructions %q", sess.Instructions())
	}
	greetings, goodbyes := responsesOf(sess, "greeting_"), responsesOf(sess, "goodbye_")
	if len(greetings) != 1 || len(goodbyes) != 1 {
		t.Fatalf("responses %+v", sess.Responses())
	}
	for _, resp := range []realtimetest.ResponseInfo{greetings[0], goodbyes[0]} {
		if !strings.HasPrefix(resp.Instructions, persona) || resp.Prompt == "" {
			t.Errorf("response %s ran with instructions %q", resp.Request, resp.Instructions)
		}
	}
	if greetings[0].Prompt != config.Default().Agent.GreetingPrompt {
		t.Errorf("greeting prompt %q", greetings[0].Prompt)
	}
	if goodbyes[0].Transcript != "Goodbye!" {
		t.Errorf("the demo did not follow the goodbye prompt: it said %q", goodbyes[0].Transcript)
	}
	// 3 s, then 0.8 s of goodbye tones and the last packet's way out.
	if took > 5500*time.Millisecond {
		t.Errorf("the call ended %v after the answer, with a 3 s limit", took)
	}
}

// At the drain deadline every call is asked to end politely: the demo
// says goodbye (it used to replay its greeting and echo on) and the call
// ends right after.
func TestDrainDeadlineSaysGoodbyeAndEnds(t *testing.T) {
	r := startRig(t, func(c *config.Config) {
		c.Agent.Instructions = persona
		c.Shutdown.DrainTimeout = config.Duration(time.Second)
	}, nil)
	c := r.caller()
	if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	waitFor(t, "greeting", 5*time.Second, func() bool { return rmsOf(audible(c.Received())) > 100 })
	time.Sleep(time.Second) // the greeting is over
	drained := time.Now()
	r.voicebot.Drain()
	waitForBye(t, c, 10*time.Second)
	if took := time.Since(drained); took > 3500*time.Millisecond {
		t.Errorf("the call ended %v after the drain began (1 s deadline, 0.8 s goodbye)", took)
	}
	sess := r.server.Sessions()[0]
	goodbyes := responsesOf(sess, "goodbye_")
	if len(goodbyes) != 1 || goodbyes[0].Transcript != "Goodbye!" || !strings.HasPrefix(goodbyes[0].Instructions, persona) {
		t.Fatalf("goodbye: %+v", sess.Responses())
	}
	if n := len(sess.Responses()); n != 2 {
		t.Errorf("%d responses, want the greeting and the goodbye: %+v", n, sess.Responses())
	}
}

// A response that fails is asked for again once: the caller hears the
// greeting all the same.
func TestFailedResponseIsAskedForAgain(t *testing.T) {
	r := startRig(t, nil, nil)
	r.server.FailNextResponses(1, "failed")
	c := r.caller()
	if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	waitFor(t, "greeting", 5*time.Second, func() bool { return rmsOf(audible(c.Received())) > 100 })
	sess := r.server.Sessions()[0]
	resps := sess.Responses()
	if len(resps) != 2 || resps[0].Status != "failed" || !strings.HasPrefix(resps[1].Request, "retry_") || resps[1].Prompt != resps[0].Prompt {
		t.Fatalf("responses %+v", resps)
	}
	if code, err := c.Bye(5 * time.Second); err != nil || code != 200 {
		t.Fatalf("BYE: %d %v", code, err)
	}
	waitFor(t, "the outcome logged", 3*time.Second, func() bool {
		return strings.Contains(r.logs.String(), "model: response failed; asking again")
	})
}

// A model that fails every response makes voicebot neither loop nor
// leave the caller in silence: the retry fails too, the caller hears the
// apology and is hung up on.
func TestModelFailingEveryResponseEndsWithTheApology(t *testing.T) {
	r := startRig(t, nil, nil)
	r.server.FailNextResponses(-1, "failed")
	c := r.caller()
	if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	waitForBye(t, c, 15*time.Second)
	apology := sound.Apology()
	if best, _ := testpeer.BestCorrelation(audible(c.Received()), apology[8000:16000]); best < 0.9 {
		t.Errorf("apology not heard before the BYE: best correlation %.2f", best)
	}
	if n := len(r.server.Sessions()[0].ReceivedOfType("response.create")); n != 2 {
		t.Errorf("%d response.create sent, want the greeting and one retry", n)
	}
	waitFor(t, "call log", 3*time.Second, func() bool {
		return strings.Contains(r.logs.String(), `"outcome":"model_failed","sip_code":0,"detail":"model failed to answer"`)
	})
}

// A response the content filter stopped before it said anything is not
// asked for again (the filter would stop it the same way) and does not end
// the call: the caller goes on, and is answered.
func TestFilteredResponseIsNotRetried(t *testing.T) {
	r := startRig(t, nil, nil)
	r.server.FailNextResponses(1, "incomplete")
	c := r.caller()
	if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	sess := r.server.Sessions()[0]
	waitFor(t, "the greeting's outcome", 5*time.Second, func() bool { return len(sess.Responses()) == 1 && sess.Responses()[0].Status != "" })
	speech := testpeer.Speech(1.2, 5)
	c.SendAudio(speech, 100, 16000, 0xCAFE)
	waitForEcho(t, c, 0, speech, 8*time.Second)
	if resps := sess.Responses(); len(resps) != 2 || resps[0].Status != "incomplete" || resps[1].Request != "" {
		t.Errorf("responses %+v, want the filtered greeting and the answer to the caller", resps)
	}
	if code, err := c.Bye(5 * time.Second); err != nil || code != 200 {
		t.Fatalf("BYE: %d %v", code, err)
	}
}

// The service ends a session at its maximum duration with session_expired
// and a close, whatever expires_at said: the call moves to a new session at
// once, with the conversation, and is not counted as a lost connection.
func TestSessionExpiredIsReplacedAtOnce(t *testing.T) {
	r := startRig(t, nil, nil)
	c := r.caller()
	if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	waitFor(t, "greeting", 5*time.Second, func() bool { return rmsOf(audible(c.Received())) > 100 })
	time.Sleep(time.Second)
	r.server.Sessions()[0].Expire()
	waitFor(t, "a replacement session", 5*time.Second, func() bool { return len(r.server.Sessions()) >= 2 })
	second := r.server.Sessions()[1]
	waitFor(t, "the greeting replayed", 3*time.Second, func() bool {
		items := createdItems(t, second)
		return len(items) == 1 && itemText(items[0]) == "beep"
	})
	speech := testpeer.Speech(1.2, 5)
	before := len(c.Received())
	c.SendAudio(speech, 100, 16000, 0xCAFE)
	waitForEcho(t, c, before, speech, 8*time.Second)
	if code, err := c.Bye(5 * time.Second); err != nil || code != 200 {
		t.Fatalf("BYE: %d %v", code, err)
	}
	waitFor(t, "call log", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), `"message":"call: ended"`) })
	logs := r.logs.String()
	if !strings.Contains(logs, "model: expired session replaced") || strings.Contains(logs, "connection lost; reconnecting") {
		t.Errorf("the expiry was not handled as a rollover")
	}
}

// api.openai.com answers a beta handshake with beta_api_shape_disabled and
// closes: the call is refused with the reason and the fix in the log.
func TestBetaShapeRefusedByTheServer(t *testing.T) {
	r := startRig(t, func(c *config.Config) { c.Realtime.Dialect = "beta"; c.Agent.Voice = "alloy" }, nil,
		func(o *realtimetest.Options) { o.RefuseBeta = true; o.Voices = nil })
	c := r.caller()
	res, err := c.Invite("", 5*time.Second)
	if err != nil || res.StatusCode != 503 {
		t.Fatalf("INVITE: %v %v, want 503", res, err)
	}
	waitFor(t, "the reason logged", 3*time.Second, func() bool {
		return strings.Contains(r.logs.String(), "set realtime.dialect: ga")
	})
}
