package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/webhook"
)

// Every call that ends is told to the call-ended webhook, signed: who,
// when, how it ended, what was said.
func TestCallEndedWebhook(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	var sigs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies, sigs = append(bodies, b), append(sigs, r.Header.Get(webhook.SignatureHeader))
		mu.Unlock()
	}))
	defer srv.Close()
	r := startRig(t, func(c *config.Config) {
		c.Webhooks.CallEnded = config.CallEndedWebhook{URL: srv.URL + "/hooks/call-ended", Secret: "crm-secret", Timeout: config.Duration(2 * time.Second), Retries: 1}
	}, nil)
	talkAndHangUp(t, r, "+15550100", 3)
	waitFor(t, "the webhook", 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(bodies) == 1 })
	mu.Lock()
	body, sig := bodies[0], sigs[0]
	mu.Unlock()
	if sig != webhook.Sign([]byte("crm-secret"), body) {
		t.Errorf("signature %q does not sign the body", sig)
	}
	var got webhook.CallEnded
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Direction != "inbound" || got.Caller != "+15550100" || got.Outcome != "caller_hung_up" || got.AnsweredAt == nil ||
		got.DurationMS < 1000 || got.EndedAt.Before(*got.AnsweredAt) || got.CallID == "" || got.Agent != "default" {
		t.Errorf("call_ended %s", body)
	}
	roles := ""
	for _, turn := range got.Transcript {
		roles += turn.Role[:1]
	}
	if !strings.HasPrefix(roles, "a") || !strings.Contains(roles, "u") {
		t.Errorf("transcript %+v: want the greeting, then the caller", got.Transcript)
	}
	if strings.Contains(string(body), "crm-secret") {
		t.Error("the secret is in the body")
	}
}
