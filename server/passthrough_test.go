package server

import (
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/internal/testpeer"
)

// audio.transcode: passthrough: the model is configured for the call's
// G.711 both ways (both dialects), and the call works as ever: greeting,
// the caller's speech to the model, its echo back.
func TestPassthroughCall(t *testing.T) {
	for _, dialect := range []string{"ga", "beta"} {
		t.Run(dialect, func(t *testing.T) {
			r := startRig(t, func(c *config.Config) {
				c.Realtime.Dialect = dialect
				c.Audio.Transcode = "passthrough"
			}, nil)
			c := r.caller()
			if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
				t.Fatalf("INVITE: %v %v", res, err)
			}
			waitFor(t, "greeting", 5*time.Second, func() bool { return rmsOf(audible(c.Received())) > 100 })
			up, err := r.server.Sessions()[0].WaitFor("session.update", time.Second)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"ga": `"format":{"type":"audio/pcmu"}`, "beta": `"input_audio_format":"g711_ulaw"`}[dialect]
			if !strings.Contains(string(up.Raw), want) {
				t.Fatalf("session.update is not G.711 (%s): %s", want, up.Raw)
			}
			time.Sleep(800 * time.Millisecond)
			speech := testpeer.Speech(1.2, 9)
			before := len(c.Received())
			c.SendAudio(speech, 100, 16000, 0xCAFE)
			waitForEcho(t, c, before, speech, 8*time.Second)
			if code, err := c.Bye(5 * time.Second); err != nil || code != 200 {
				t.Fatalf("BYE: %d %v", code, err)
			}
		})
	}
}
