package server

import (
	"encoding/json"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/internal/testpeer"
	"github.com/voicebot/voicebot/realtime/realtimetest"
)

// isAudio tells bot audio from the silence frames voicebot sends between
// talkspurts.
func isAudio(p testpeer.Packet) bool {
	for _, s := range p.Audio {
		if s > 8 || s < -8 {
			return true
		}
	}
	return false
}

func fiveSecondGreeting(o *realtimetest.Options) {
	o.Greeting, o.GreetingText = tone(5, 440), "a five second tone"
}

// The model speaks for 5 s; 2 s in, the caller talks over it. What the
// caller receives must stop within one frame of the model's speech_started,
// and the truncate must say exactly how much the caller got.
func TestBargeInStopsWithinAFrameAndTruncatesExactly(t *testing.T) {
	for _, dialect := range []string{"ga", "beta"} {
		t.Run(dialect, func(t *testing.T) {
			r := startRig(t, func(c *config.Config) { c.Realtime.Dialect = dialect }, nil, fiveSecondGreeting)
			c := r.caller()
			if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
				t.Fatalf("INVITE: %v %v", res, err)
			}
			countAudio := func() int {
				n := 0
				for _, p := range c.Received() {
					if isAudio(p) {
						n++
					}
				}
				return n
			}
			waitFor(t, "2 s of the bot's speech", 6*time.Second, func() bool { return countAudio() >= 100 })
			c.SendAudio(testpeer.Speech(1.0, 2), 1, 0, 77)
			sess := r.server.Sessions()[0]
			tr, err := sess.WaitFor("conversation.item.truncate", 3*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond) // anything still in flight arrives

			var speechStarted time.Time
			for _, ev := range sess.Sent() {
				if ev.Type == "input_audio_buffer.speech_started" {
					speechStarted = ev.At
					break
				}
			}
			if speechStarted.IsZero() {
				t.Fatal("the model never heard the caller")
			}
			// The greeting's talkspurt: from its marker to the next marker.
			pkts := c.Received()
			heard, lastAudio := 0, time.Time{}
			started := false
			for _, p := range pkts {
				if p.Header.Marker {
					if started {
						break // the next talkspurt (the echo) is another answer
					}
					started = true
				}
				if started && isAudio(p) {
					heard++
					lastAudio = p.At
				}
			}
			late := lastAudio.Sub(speechStarted)
			t.Logf("speech_started left the model at +0; the last bot audio packet arrived at %+v; the caller heard %d ms", late, heard*20)
			if late > 20*time.Millisecond {
				t.Errorf("bot audio arrived %v after speech_started (more than one frame)", late)
			}
			var ev struct {
				ItemID     string `json:"item_id"`
				AudioEndMS int    `json:"audio_end_ms"`
			}
			_ = json.Unmarshal(tr.Raw, &ev)
			if d := ev.AudioEndMS - heard*20; d < -20 || d > 20 {
				t.Errorf("truncated at %d ms, the caller heard %d ms", ev.AudioEndMS, heard*20)
			}
			if heard*20 >= 5000 || heard*20 < 1900 {
				t.Errorf("the caller heard %d ms of a 5 s answer interrupted 2 s in", heard*20)
			}
			_, _ = c.Bye(5 * time.Second)
		})
	}
}

// BenchmarkBargeInStopLatency measures, over b.N calls on loopback, the time
// from the model sending speech_started to the last bot audio packet the
// caller receives (0 when the stop beat the next packet). Run 100 with:
//
//	go test ./server -run '^$' -bench BargeInStopLatency -benchtime 100x
func BenchmarkBargeInStopLatency(b *testing.B) {
	r := startRig(b, func(c *config.Config) { c.Log.Level = "info" }, nil, func(o *realtimetest.Options) {
		o.Greeting, o.GreetingText = tone(3, 440), "tone"
	})
	speech := testpeer.Speech(0.3, 1)
	var stops []time.Duration
	for i := 0; b.Loop(); i++ {
		c := r.caller()
		if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
			b.Fatalf("INVITE: %v %v", res, err)
		}
		waitFor(b, "bot audio", 5*time.Second, func() bool {
			n := 0
			for _, p := range c.Received() {
				if isAudio(p) {
					n++
				}
			}
			return n >= 10+i%10 // vary the point of interruption
		})
		c.SendAudio(speech, 1, 0, 5)
		sess := r.server.Sessions()[len(r.server.Sessions())-1]
		if _, err := sess.WaitFor("conversation.item.truncate", 3*time.Second); err != nil {
			b.Fatal(err)
		}
		time.Sleep(60 * time.Millisecond)
		var started time.Time
		for _, ev := range sess.Sent() {
			if ev.Type == "input_audio_buffer.speech_started" {
				started = ev.At
				break
			}
		}
		var last time.Time
		seen := false
		for _, p := range c.Received() {
			if p.Header.Marker && seen {
				break
			}
			seen = seen || p.Header.Marker
			if seen && isAudio(p) {
				last = p.At
			}
		}
		if os.Getenv("VBTEST_VERBOSE") != "" {
			b.Logf("last bot audio %+v relative to speech_started", last.Sub(started))
		}
		stops = append(stops, max(0, last.Sub(started)))
		_, _ = c.Bye(5 * time.Second)
		c.Close()
	}
	sort.Slice(stops, func(i, j int) bool { return stops[i] < stops[j] })
	pct := func(p float64) float64 {
		return float64(stops[min(len(stops)-1, int(p*float64(len(stops))))]) / 1e6
	}
	b.ReportMetric(pct(0.5), "p50-stop-ms")
	b.ReportMetric(pct(0.99), "p99-stop-ms")
	b.ReportMetric(float64(stops[len(stops)-1])/1e6, "max-stop-ms")
}
