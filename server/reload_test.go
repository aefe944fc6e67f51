package server

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/config"
)

// SIGHUP reloads routes and profiles: a call in progress keeps its agent
// and is not dropped, the next call gets the new routing, and a broken
// file changes nothing.
func TestReloadSwapsRoutingWithoutDroppingCalls(t *testing.T) {
	r := startRig(t, nil, nil)
	first := r.caller()
	if res, err := first.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	waitFor(t, "first session", 3*time.Second, func() bool { return len(r.server.Sessions()) == 1 })

	next, err := config.Parse([]byte(`
sip: {listen: "127.0.0.1:0"}
media: {port_min: 31000, port_max: 31999}
log: {level: debug, format: json}
profiles:
  night: {instructions: "You are the night desk."}
routes:
  - {to: "bot", profile: night}
`))
	if err != nil {
		t.Fatal(err)
	}
	r.next = func() (config.Config, error) { return next, nil }
	r.voicebot.Reload()
	waitFor(t, "reload", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), "reload: routes and profiles replaced") })

	second := r.caller()
	if res, err := second.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE after reload: %v %v", res, err)
	}
	waitFor(t, "second session", 3*time.Second, func() bool { return len(r.server.Sessions()) == 2 })
	up, err := r.server.Sessions()[1].WaitFor("session.update", 3*time.Second)
	if err != nil || !strings.Contains(string(up.Raw), "You are the night desk.") {
		t.Errorf("the call after the reload did not get the new profile: %s", up.Raw)
	}
	first0, _ := r.server.Sessions()[0].WaitFor("session.update", time.Second)
	if strings.Contains(string(first0.Raw), "night desk") {
		t.Error("the call in progress changed profile")
	}

	// A configuration that does not load changes nothing.
	r.next = func() (config.Config, error) { return config.Config{}, errors.New("config: line 3: bad indentation") }
	r.voicebot.Reload()
	waitFor(t, "refused reload", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), "reload: configuration refused") })

	// Both calls are still up and answer a BYE.
	for i, c := range []interface {
		Bye(time.Duration) (int, error)
	}{first, second} {
		if code, err := c.Bye(5 * time.Second); err != nil || code != 200 {
			t.Errorf("call %d after the reloads: BYE %d %v", i+1, code, err)
		}
	}
	if strings.Contains(r.logs.String(), `"sections"`) {
		t.Log("sections needing a restart were named:", r.logs.String()[strings.Index(r.logs.String(), `"sections"`):][:80])
	}
}

// Every section a reload does not apply is named, so an operator is not
// left thinking a SIGHUP took it: the records and the audio mode too.
func TestRestartNeededNamesWhatAReloadKeeps(t *testing.T) {
	a := config.Default()
	b := a
	b.Records.Dir = "/var/lib/voicebot/records"
	b.Audio.Transcode = "passthrough"
	b.Conversations.TTL = config.Duration(2 * time.Hour)
	b.Agent.Instructions = "reloaded" // a reload applies this
	got := strings.Join(restartNeeded(a, b), ",")
	if got != "audio,conversations,records" {
		t.Errorf("restart needed for %q, want audio,conversations,records", got)
	}
}
