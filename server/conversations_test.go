package server

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/sound"
)

func conversationRig(t *testing.T, mutate ...func(*config.Config)) *rig {
	return startRig(t, func(c *config.Config) {
		c.API.Listen, c.API.Token = "127.0.0.1:0", apiToken
		c.Agent.TranscriptionModel = "gpt-4o-mini-transcribe"
		for _, m := range mutate {
			m(c)
		}
	}, nil)
}

// post sends a turn and returns the response.
func post(t *testing.T, r *rig, path, contentType, accept string, body []byte) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+r.api+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apiToken)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

// sse reads a Server-Sent Events stream to its end: event names and data.
func sse(t *testing.T, body io.Reader) (names []string, data []map[string]any) {
	t.Helper()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	var name string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			var d map[string]any
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &d); err != nil {
				t.Fatalf("event %s: data %q is not JSON", name, line)
			}
			names, data = append(names, name), append(data, d)
		}
	}
	return names, data
}

func speechWAV(seconds float64, rate int, channels int) []byte {
	n := int(seconds * float64(rate))
	pcm := make([]int16, n)
	for i := range pcm {
		t := float64(i) / float64(rate)
		pcm[i] = int16(7000 * math.Sin(2*math.Pi*170*t) * (0.6 + 0.4*math.Sin(2*math.Pi*3*t)))
	}
	wav := sound.EncodeWAV(pcm, rate)
	if channels == 1 {
		return wav
	}
	// Stereo: the same samples on both channels.
	st := make([]int16, 2*n)
	for i, v := range pcm {
		st[2*i], st[2*i+1] = v, v
	}
	b := sound.EncodeWAV(st, rate)
	b[22] = 2                                                                                               // channels
	b[28], b[29], b[30], b[31] = byteAt(4*rate, 0), byteAt(4*rate, 1), byteAt(4*rate, 2), byteAt(4*rate, 3) // byte rate
	b[32] = 4                                                                                               // block align
	return b
}

func byteAt(v, i int) byte { return byte(v >> (8 * i)) }

func TestConversationOverHTTP(t *testing.T) {
	r := conversationRig(t)
	code, created := apiCall(t, r, "POST", "/v1/conversations", apiToken, map[string]string{"agent": ""})
	id, _ := created["id"].(string)
	if code != http.StatusCreated || id == "" {
		t.Fatalf("create: %d %v", code, created)
	}

	// Text, streamed.
	res := post(t, r, "/v1/conversations/"+id+"/turns", "application/json", "text/event-stream", []byte(`{"text":"do you open on Sundays?"}`))
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" || res.Header.Get("Conversation-ID") != id {
		t.Fatalf("turn: %d %v", res.StatusCode, res.Header)
	}
	names, data := sse(t, res.Body)
	joined := strings.Join(names, " ")
	if !strings.Contains(joined, "text.delta") || !strings.Contains(joined, "audio.delta") || names[len(names)-1] != "done" {
		t.Fatalf("events %v", names)
	}
	done := data[len(data)-1]
	if text, _ := done["text"].(string); !strings.Contains(text, "Sundays") || done["audio_ms"].(float64) <= 0 {
		t.Errorf("done %v", done)
	}
	for i, n := range names {
		if n == "audio.delta" {
			if b, err := base64.StdEncoding.DecodeString(data[i]["audio"].(string)); err != nil || len(b)%2 != 0 {
				t.Fatalf("audio.delta is not base64 PCM16: %v", err)
			}
		}
	}

	// Audio (a 44.1 kHz stereo WAV), answered as one JSON object.
	res = post(t, r, "/v1/conversations/"+id+"/turns", "audio/wav", "application/json", speechWAV(1.2, 44100, 2))
	var whole map[string]any
	_ = json.NewDecoder(res.Body).Decode(&whole)
	if res.StatusCode != 200 || whole["text"] == "" {
		t.Fatalf("audio turn: %d %v", res.StatusCode, whole)
	}
	wav, err := base64.StdEncoding.DecodeString(whole["audio"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if pcm, err := sound.DecodeWAV(wav, 24000, 60); err != nil || len(pcm) < 2400 {
		t.Fatalf("the answer's WAV: %d samples, %v", len(pcm), err)
	}

	// Multipart, text-only answer, WAV asked for: a WAV of nothing.
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("file", "hello.wav")
	_, _ = fw.Write(speechWAV(1, 16000, 1))
	mw.Close()
	res = post(t, r, "/v1/conversations/"+id+"/turns?output=text", mw.FormDataContentType(), "application/json", form.Bytes())
	whole = nil
	_ = json.NewDecoder(res.Body).Decode(&whole)
	if res.StatusCode != 200 || whole["audio"] != nil || whole["text"] == "" {
		t.Fatalf("multipart text-only turn: %d %v", res.StatusCode, whole)
	}

	code, got := apiCall(t, r, "GET", "/v1/conversations/"+id, apiToken, nil)
	turns, _ := got["turns"].([]any)
	if code != 200 || got["agent"] != "default" || len(turns) != 6 {
		t.Fatalf("get: %d %v", code, got)
	}
	first := turns[0].(map[string]any)
	if first["role"] != "user" || first["text"] != "do you open on Sundays?" || first["at"] == "" {
		t.Errorf("first turn %v", first)
	}
	if second := turns[2].(map[string]any); !strings.Contains(second["text"].(string), "seconds of speech") {
		t.Errorf("the audio turn was kept as %v, want its transcript", second)
	}

	if code, _ := apiCall(t, r, "DELETE", "/v1/conversations/"+id, apiToken, nil); code != http.StatusNoContent {
		t.Errorf("delete: %d", code)
	}
	if code, _ := apiCall(t, r, "GET", "/v1/conversations/"+id, apiToken, nil); code != http.StatusNotFound {
		t.Errorf("get after delete: %d", code)
	}
	if v := r.server.Violations(); len(v) > 0 {
		t.Errorf("the model saw violations: %+v", v)
	}
}

func TestTurnWithoutIDStartsAConversation(t *testing.T) {
	r := conversationRig(t)
	res := post(t, r, "/v1/turns", "application/json", "audio/wav", []byte(`{"text":"hello there"}`))
	id := res.Header.Get("Conversation-ID")
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || id == "" || res.Header.Get("Content-Type") != "audio/wav" {
		t.Fatalf("turn: %d %v", res.StatusCode, res.Header)
	}
	if pcm, err := sound.DecodeWAV(body, 24000, 60); err != nil || len(pcm) == 0 {
		t.Fatalf("the answer as WAV: %d samples, %v", len(pcm), err)
	}
	res = post(t, r, "/v1/conversations/"+id+"/turns", "application/json", "", []byte(`{"text":"and again","output":"text"}`))
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	if res.StatusCode != 200 || !strings.Contains(out["text"].(string), "again") {
		t.Fatalf("the follow-up: %d %v", res.StatusCode, out)
	}
}

func TestConversationRefusals(t *testing.T) {
	r := conversationRig(t, func(c *config.Config) {
		c.Conversations.MaxBody = 64 << 10
		c.Conversations.MaxAudio = config.Duration(2e9)
	})
	_, created := apiCall(t, r, "POST", "/v1/conversations", apiToken, nil)
	id := created["id"].(string)
	turn := "/v1/conversations/" + id + "/turns"
	cases := []struct {
		name, path, ctype string
		body              []byte
		want              int
	}{
		{"unknown id", "/v1/conversations/conv_nope/turns", "application/json", []byte(`{"text":"hi"}`), 404},
		{"empty body", turn, "audio/wav", nil, 400},
		{"empty text", turn, "application/json", []byte(`{"text":"  "}`), 400},
		{"not JSON", turn, "application/json", []byte(`{"text":`), 400},
		{"not audio", turn, "audio/wav", []byte("this is not a wav file at all"), 415},
		{"wrong type", turn, "text/plain", []byte("hello"), 415},
		{"no type", turn, "", []byte("hello"), 415},
		{"too large", turn, "audio/wav", make([]byte, 65<<10), 413},
		{"too long", turn, "audio/wav", speechWAV(3, 8000, 1), 413},
		{"unknown agent", "/v1/turns?agent=nobody", "application/json", []byte(`{"text":"hi"}`), 400},
	}
	for _, c := range cases {
		res := post(t, r, c.path, c.ctype, "", c.body)
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		if res.StatusCode != c.want || out["error"] == nil || out["error"] == "" {
			t.Errorf("%s: %d %v, want %d with an error", c.name, res.StatusCode, out, c.want)
		}
	}
	if code, _ := apiCall(t, r, "GET", "/v1/conversations/"+id, "", nil); code != http.StatusUnauthorized {
		t.Errorf("without the token: %d", code)
	}
	if _, turns := apiCall(t, r, "GET", "/v1/conversations/"+id, apiToken, nil); len(turns["turns"].([]any)) != 0 {
		t.Errorf("refused turns were kept: %v", turns)
	}
}

// The three curl commands the README gives a newcomer work as written.
func TestConversationWithCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("VBTEST_PEERS") == "require" {
			t.Fatal("curl is not installed (the test command installs it: ./test.sh)")
		}
		t.Skip("curl is not installed")
	}
	r := conversationRig(t)
	dir := t.TempDir()
	wavPath := filepath.Join(dir, "question.wav")
	if err := os.WriteFile(wavPath, speechWAV(1, 16000, 1), 0o600); err != nil {
		t.Fatal(err)
	}
	curl := func(args ...string) string {
		t.Helper()
		args = append([]string{"-sS", "--fail-with-body", "-H", "Authorization: Bearer " + apiToken}, args...)
		out, err := exec.Command("curl", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	base := "http://" + r.api
	// 1. Text in, the answer streamed.
	out := curl("-N", "-i", "-H", "Accept: text/event-stream", "-H", "Content-Type: application/json",
		"-d", `{"text":"hello"}`, base+"/v1/turns")
	id := ""
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Conversation-ID: "); ok {
			id = v
		}
	}
	if id == "" || !strings.Contains(out, "event: text.delta") || !strings.Contains(out, "event: done") {
		t.Fatalf("curl 1:\n%s", out)
	}
	// 2. A recording in, the spoken answer out as a WAV.
	answer := filepath.Join(dir, "answer.wav")
	curl("-H", "Content-Type: audio/wav", "-H", "Accept: audio/wav", "--data-binary", "@"+wavPath, "-o", answer,
		base+"/v1/conversations/"+id+"/turns")
	b, _ := os.ReadFile(answer)
	if pcm, err := sound.DecodeWAV(b, 24000, 60); err != nil || len(pcm) == 0 {
		t.Fatalf("curl 2: the answer %d bytes: %v", len(b), err)
	}
	// 3. The conversation so far.
	out = curl(base + "/v1/conversations/" + id)
	if !strings.Contains(out, `"role":"user"`) || !strings.Contains(out, `"text":"hello"`) {
		t.Fatalf("curl 3: %s", out)
	}
}
