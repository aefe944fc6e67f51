package peers

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/voicebot/voicebot/sound"
)

// browser is headless Chromium driven over the DevTools protocol: the
// page runs in real time (a fake microphone plays a file), and the test
// reads the page's state as it goes.
type browser struct {
	ws  *websocket.Conn
	seq int
}

// openBrowser starts Chromium on url with a fake microphone playing mic.
func openBrowser(t *testing.T, url, mic string) *browser {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		"--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--use-file-for-fake-audio-capture="+mic,
		"--autoplay-policy=no-user-gesture-required", url)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	devtools := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := regexp.MustCompile(`DevTools listening on ws://([^/]+)/`).FindStringSubmatch(sc.Text()); m != nil {
				devtools <- m[1]
			}
		}
	}()
	var host string
	select {
	case host = <-devtools:
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not open its DevTools port")
	}
	var pages []struct {
		Type, URL, WebSocketDebuggerURL string
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		res, err := http.Get("http://" + host + "/json/list")
		if err == nil {
			_ = json.NewDecoder(res.Body).Decode(&pages)
			res.Body.Close()
		}
		found := false
		for _, p := range pages {
			if p.Type == "page" && strings.Contains(p.URL, "/ui") {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no page in chromium: %v %+v", err, pages)
		}
	}
	for _, p := range pages {
		if p.Type == "page" && strings.Contains(p.URL, "/ui") {
			ws, _, err := websocket.DefaultDialer.Dial(p.WebSocketDebuggerURL, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ws.Close() })
			return &browser{ws: ws}
		}
	}
	t.Fatal("unreachable")
	return nil
}

// eval runs a JavaScript expression in the page and returns its value.
func (b *browser) eval(t *testing.T, expr string) any {
	t.Helper()
	b.seq++
	req := map[string]any{"id": b.seq, "method": "Runtime.evaluate", "params": map[string]any{"expression": expr, "returnByValue": true}}
	if err := b.ws.WriteJSON(req); err != nil {
		t.Fatal(err)
	}
	_ = b.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var res struct {
			ID     int `json:"id"`
			Result struct {
				Result struct {
					Value any `json:"value"`
				} `json:"result"`
			} `json:"result"`
		}
		if err := b.ws.ReadJSON(&res); err != nil {
			t.Fatal(err)
		}
		if res.ID == b.seq {
			return res.Result.Result.Value
		}
	}
}

// The page's Talk view, in a real browser with a fake microphone: holding
// the button records the caller, the turn goes to the demo model, and the
// page shows the answer and plays its audio.
func TestTalkViewInChromium(t *testing.T) {
	need(t, "chromium")
	vb := startVoicebot(t, 34400, withAPI())
	mic := filepath.Join(t.TempDir(), "mic.wav")
	pcm := make([]int16, 48000*4)
	for i := range pcm {
		x := float64(i) / 48000
		pcm[i] = int16(9000 * math.Sin(2*math.Pi*160*x) * (0.6 + 0.4*math.Sin(2*math.Pi*3*x)))
	}
	if err := os.WriteFile(mic, sound.EncodeWAV(pcm, 48000), 0o600); err != nil {
		t.Fatal(err)
	}
	b := openBrowser(t, "http://"+vb.api+"/ui#token="+apiToken+"&talk=2", mic)
	var state map[string]any
	for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		v := b.eval(t, `({answer: (document.querySelector("#dialogue .answered") || {}).textContent || "",
			you: (document.querySelector("#dialogue .who-caller") || {}).textContent || "",
			played: Number(document.querySelector("#dialogue").dataset.playedMs || 0),
			status: document.querySelector("#talkstatus").textContent})`)
		state, _ = v.(map[string]any)
		if state != nil && state["answer"] != "" {
			break
		}
	}
	if state == nil || state["answer"] == "" {
		t.Fatalf("the page shows no answer: %v\n%s", state, lastLines(vb.logs(), 20))
	}
	if you := fmt.Sprint(state["you"]); !strings.Contains(you, "seconds of speech") {
		t.Errorf("the caller's turn shows as %q, want the demo's transcript of the recording", you)
	}
	if played, _ := state["played"].(float64); played <= 0 {
		t.Errorf("no answer audio was played: %v", state)
	}
	if !strings.Contains(fmt.Sprint(state["status"]), "answered") {
		t.Errorf("status %q", state["status"])
	}
	if !strings.Contains(vb.logs(), "conversation: turn answered") {
		t.Error("voicebot did not log the turn")
	}
}
