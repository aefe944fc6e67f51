package server

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/internal/testpeer"
	"github.com/voicebot/voicebot/media"
)

// sseEvents reads a Server-Sent Events stream into types and data, until it ends.
func sseEvents(t *testing.T, res *http.Response, out chan<- map[string]any) {
	defer close(out)
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var ev map[string]any
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Errorf("bad event %s", data)
				return
			}
			out <- ev
		}
	}
}

// A call's record: the live feed (SSE) carries its events as they happen,
// transcript deltas included; the JSONL log has the transcript of both
// sides and the outcome; the stereo WAV has the caller on the left and
// the bot on the right, in time: the bot's echo comes after the speech.
func TestCallRecordsAndLiveEvents(t *testing.T) {
	dir := t.TempDir()
	r := startRig(t, func(c *config.Config) {
		c.API.Listen, c.API.Token = "127.0.0.1:0", apiToken
		c.Records.Dir, c.Records.WAV = dir, true
	}, nil)
	c := r.caller()
	if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	req, _ := http.NewRequest("GET", "http://"+r.api+"/v1/calls/"+c.CallID+"/events", nil)
	if res, _ := http.DefaultClient.Do(req); res == nil || res.StatusCode != 401 {
		t.Fatalf("events without the token: %v", res)
	} else {
		res.Body.Close()
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := client.Do(req)
	if err != nil || res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %v %v", res, err)
	}
	defer res.Body.Close()
	events := make(chan map[string]any, 1000)
	go sseEvents(t, res, events)

	waitFor(t, "greeting", 5*time.Second, func() bool { return rmsOf(audible(c.Received())) > 100 })
	time.Sleep(800 * time.Millisecond)
	speech := testpeer.Speech(1.2, 3)
	spokeAt := time.Now()
	before := len(c.Received())
	c.SendAudio(speech, 100, 16000, 0xCAFE)
	waitForEcho(t, c, before, speech, 8*time.Second)
	time.Sleep(1500 * time.Millisecond)
	if code, err := c.Bye(5 * time.Second); err != nil || code != 200 {
		t.Fatalf("BYE: %d %v", code, err)
	}
	var types []string
	texts := map[string]string{}
	timeout := time.After(5 * time.Second)
collect:
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				break collect // the stream ends with the call
			}
			types = append(types, ev["type"].(string))
			if ev["type"] == "transcript" {
				texts[ev["who"].(string)] += ev["text"].(string) + "|"
			}
		case <-timeout:
			t.Fatalf("the stream did not end with the call; got %v", types)
		}
	}
	joined := strings.Join(types, ",")
	for _, want := range []string{"call", "answered", "transcript_delta", "transcript", "ended"} {
		if !strings.Contains(joined, want) {
			t.Errorf("live feed lacks %s: %v", want, types)
		}
	}
	if types[len(types)-1] != "ended" || !strings.Contains(texts["bot"], "beep") || !strings.Contains(texts["caller"], "seconds of speech") {
		t.Errorf("feed %v, transcripts %v", types, texts)
	}

	logs, _ := filepath.Glob(filepath.Join(dir, "*", "*.jsonl"))
	if len(logs) != 1 {
		t.Fatalf("event logs %v", logs)
	}
	b, _ := os.ReadFile(logs[0])
	for _, want := range []string{`"type":"call"`, `"who":"bot"`, `"who":"caller"`, `"outcome":"caller_hung_up"`, `"direction":"inbound"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("event log lacks %s", want)
		}
	}
	if strings.Contains(string(b), "transcript_delta") {
		t.Error("deltas belong to the live feed, not the log")
	}
	txt, _ := os.ReadFile(strings.TrimSuffix(logs[0], ".jsonl") + ".txt")
	if !strings.Contains(string(txt), "] bot: beep") || !strings.Contains(string(txt), "] caller: (") {
		t.Errorf("transcript file:\n%s", txt)
	}
	wav, err := os.ReadFile(strings.TrimSuffix(logs[0], ".jsonl") + ".wav")
	if err != nil {
		t.Fatal(err)
	}
	if binary.LittleEndian.Uint16(wav[22:]) != 2 {
		t.Fatal("not stereo")
	}
	var left, right []int16
	for i := 44; i+3 < len(wav); i += 4 {
		left = append(left, int16(binary.LittleEndian.Uint16(wav[i:])))
		right = append(right, int16(binary.LittleEndian.Uint16(wav[i+2:])))
	}
	said := media.PCMU.Decode(nil, media.PCMU.Encode(nil, speech))
	needle := said[len(said)/5 : len(said)*4/5]
	bestL, offL := testpeer.BestCorrelation(left, needle)
	bestR, offR := testpeer.BestCorrelation(right, needle)
	t.Logf("caller's speech on the left at %.2f s (%.3f), its echo on the right at %.2f s (%.3f)",
		float64(offL)/8000, bestL, float64(offR)/8000, bestR)
	if bestL < 0.9 || bestR < 0.8 {
		t.Fatalf("speech left %.3f, echo right %.3f", bestL, bestR)
	}
	if offR <= offL {
		t.Errorf("the echo (%d) is not after the speech (%d): the channels are not aligned", offR, offL)
	}
	_ = spokeAt
	if rmsOf(right[:8000/2]) < 100 {
		t.Error("the greeting is not at the start of the bot's channel")
	}
}

// A stream outlives the API server's 10 s read and write timeouts: it
// lasts as long as its call.
func TestLiveEventsOutlastServerTimeouts(t *testing.T) {
	r := startRig(t, func(c *config.Config) { c.API.Listen, c.API.Token = "127.0.0.1:0", apiToken }, nil)
	c := r.caller()
	if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	req, _ := http.NewRequest("GET", "http://"+r.api+"/v1/calls/"+c.CallID+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := client.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("events: %v %v", res, err)
	}
	defer res.Body.Close()
	events := make(chan map[string]any, 1000)
	go sseEvents(t, res, events)
	time.Sleep(12 * time.Second)
	c.PressKey('5', 101, 10, 1000, 0xCAFE)
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the stream ended before the call")
			}
			if ev["type"] == "key" {
				c.Bye(5 * time.Second)
				return
			}
		case <-deadline:
			t.Fatal("no key event 12 s into the stream")
		}
	}
}
