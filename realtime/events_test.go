package realtime

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func sampleSession() SessionConfig {
	return SessionConfig{
		Model: "gpt-realtime", Instructions: "Be brief.", Voice: "marin",
		InputFormat: PCM16, OutputFormat: PCMU,
		Transcription:  &Transcription{Model: "gpt-4o-mini-transcribe", Language: "en"},
		NoiseReduction: "near_field",
		TurnDetection: &TurnDetection{Type: "server_vad", Threshold: 0.5, PrefixPaddingMS: 300, SilenceDurationMS: 500,
			CreateResponse: true, InterruptResponse: true},
		Tools: []Tool{{Name: "end_call", Description: "Hang up.", Parameters: json.RawMessage(`{"type":"object","properties":{}}`)}},
	}
}

// golden compares got (re-indented) with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "  "); err != nil {
		t.Fatalf("%s: not JSON: %v", name, err)
	}
	pretty.WriteByte('\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("%s differs from golden:\n%s\nwant:\n%s", name, pretty.Bytes(), want)
	}
}

func TestClientEventsGolden(t *testing.T) {
	for _, d := range []Dialect{GA, Beta} {
		prefix := d.String() + "_"
		ev, err := d.SessionUpdate("evt_1", sampleSession())
		if err != nil {
			t.Fatal(err)
		}
		golden(t, prefix+"session_update.json", ev)
		ev, _ = d.ResponseCreate("evt_2", ResponseRequest{Instructions: "Be brief.\n\nGreet the caller.", Metadata: map[string]string{"voicebot_request": "evt_2"}})
		golden(t, prefix+"response_create.json", ev)
		ev, _ = d.ResponseCancel("evt_3", "resp_1")
		golden(t, prefix+"response_cancel.json", ev)
		ev, _ = d.ItemTruncate("evt_4", "item_1", 0, 1234)
		golden(t, prefix+"item_truncate.json", ev)
		ev, _ = d.AssistantText("evt_5", "Earlier I said hello.")
		golden(t, prefix+"assistant_text.json", ev)
		ev, _ = d.UserText("evt_6", "The caller pressed 5")
		golden(t, prefix+"user_text.json", ev)
	}
}

// The dialects must differ exactly where the protocol says they do.
func TestSessionUpdateShapes(t *testing.T) {
	ga, _ := GA.SessionUpdate("e", sampleSession())
	beta, _ := Beta.SessionUpdate("e", sampleSession())
	var g, b struct {
		Session map[string]any `json:"session"`
	}
	_ = json.Unmarshal(ga, &g)
	_ = json.Unmarshal(beta, &b)
	if g.Session["type"] != "realtime" || g.Session["temperature"] != nil || g.Session["modalities"] != nil {
		t.Errorf("GA session: %v", g.Session)
	}
	audio := g.Session["audio"].(map[string]any)
	in := audio["input"].(map[string]any)["format"].(map[string]any)
	if in["type"] != "audio/pcm" || in["rate"] != float64(24000) {
		t.Errorf("GA input format %v", in)
	}
	if b.Session["type"] != nil || b.Session["input_audio_format"] != "pcm16" || b.Session["output_audio_format"] != "g711_ulaw" {
		t.Errorf("beta session: %v", b.Session)
	}
	td := b.Session["turn_detection"].(map[string]any)
	for _, k := range []string{"threshold", "prefix_padding_ms", "silence_duration_ms", "create_response", "interrupt_response"} {
		if _, ok := td[k]; !ok {
			t.Errorf("turn_detection lacks %s: omitted fields fall back to server defaults", k)
		}
	}
}

func TestAppendInputAudio(t *testing.T) {
	audio := []byte{1, 2, 3, 4, 5, 250}
	ev := AppendInputAudio(nil, 42, audio)
	var got struct {
		Type, EventID, Audio string
	}
	if err := json.Unmarshal(ev, &struct {
		Type    *string `json:"type"`
		EventID *string `json:"event_id"`
		Audio   *string `json:"audio"`
	}{&got.Type, &got.EventID, &got.Audio}); err != nil {
		t.Fatal(err)
	}
	dec, _ := base64.StdEncoding.DecodeString(got.Audio)
	if got.Type != "input_audio_buffer.append" || got.EventID != "a42" || !bytes.Equal(dec, audio) {
		t.Errorf("got %+v", got)
	}
	if len(ev) > AppendInputAudioLen(len(audio)) {
		t.Errorf("AppendInputAudioLen too small")
	}
	buf := make([]byte, 0, AppendInputAudioLen(960))
	pcm := make([]byte, 960)
	if n := testing.AllocsPerRun(100, func() { buf = AppendInputAudio(buf[:0], 7, pcm) }); n != 0 {
		t.Errorf("%v allocations per append event", n)
	}
}

// Both dialects' server events land on the same Kind with the same fields.
func TestDecodeBothDialects(t *testing.T) {
	audio := base64.StdEncoding.EncodeToString([]byte{1, 0, 2, 0})
	cases := []struct {
		raw  string
		kind Kind
		chk  func(ServerEvent) bool
	}{
		{`{"type":"response.output_audio.delta","event_id":"e1","response_id":"r1","item_id":"i1","output_index":0,"content_index":0,"delta":"` + audio + `"}`,
			KindAudioDelta, func(e ServerEvent) bool {
				return e.ItemID == "i1" && e.ResponseID == "r1" && bytes.Equal(e.Audio, []byte{1, 0, 2, 0})
			}},
		{`{"type":"response.audio.delta","event_id":"e1","response_id":"r1","item_id":"i1","output_index":0,"content_index":1,"delta":"` + audio + `"}`,
			KindAudioDelta, func(e ServerEvent) bool { return e.ContentIndex == 1 && len(e.Audio) == 4 }},
		// An escaped string defeats the fast path; the slow path must agree.
		{`{"type":"response.output_audio.delta","item_id":"i\u0031","response_id":"r1","delta":"` + audio + `"}`,
			KindAudioDelta, func(e ServerEvent) bool { return e.ItemID == "i1" && len(e.Audio) == 4 }},
		{`{"type":"response.output_audio_transcript.done","item_id":"i1","transcript":"hello"}`, KindTranscriptDone, func(e ServerEvent) bool { return e.Text == "hello" }},
		{`{"type":"response.audio_transcript.done","item_id":"i1","transcript":"hello"}`, KindTranscriptDone, func(e ServerEvent) bool { return e.Text == "hello" }},
		{`{"type":"response.output_audio_transcript.delta","item_id":"i1","delta":"hel"}`, KindTranscriptDelta, func(e ServerEvent) bool { return e.Text == "hel" }},
		{`{"type":"conversation.item.created","item":{"id":"i9","type":"message","role":"user"}}`, KindItemAdded, func(e ServerEvent) bool { return e.ItemID == "i9" && e.Item.Role == "user" }},
		{`{"type":"conversation.item.added","previous_item_id":null,"item":{"id":"i9","type":"message","role":"assistant"}}`, KindItemAdded, func(e ServerEvent) bool { return e.ItemID == "i9" }},
		{`{"type":"input_audio_buffer.speech_started","audio_start_ms":1200,"item_id":"i2"}`, KindSpeechStarted, func(e ServerEvent) bool { return e.AudioStartMS == 1200 && e.ItemID == "i2" }},
		{`{"type":"input_audio_buffer.speech_stopped","audio_end_ms":2500,"item_id":"i2"}`, KindSpeechStopped, func(e ServerEvent) bool { return e.AudioEndMS == 2500 }},
		{`{"type":"response.done","response":{"id":"r1","status":"cancelled","status_details":{"type":"cancelled","reason":"turn_detected"},"output":[]}}`,
			KindResponseDone, func(e ServerEvent) bool {
				return e.ResponseID == "r1" && e.Response.StatusDetails.Reason == "turn_detected"
			}},
		{`{"type":"error","error":{"type":"invalid_request_error","code":"response_cancel_not_active","message":"no","param":null,"event_id":"c5"}}`,
			KindError, func(e ServerEvent) bool { return e.Err.Code == "response_cancel_not_active" && e.Err.EventID == "c5" }},
		{`{"type":"error"}`, KindError, func(e ServerEvent) bool { return e.Err != nil }},
		{`{"type":"session.created","session":{"id":"sess_1","model":"gpt-realtime","expires_at":1700000000}}`, KindSessionCreated,
			func(e ServerEvent) bool { return e.Session.ExpiresAt == 1700000000 }},
		{`{"type":"conversation.item.input_audio_transcription.completed","item_id":"i2","content_index":0,"transcript":"hi there"}`,
			KindInputTranscript, func(e ServerEvent) bool { return e.Text == "hi there" }},
		{`{"type":"response.function_call_arguments.done","call_id":"c1","name":"end_call","arguments":"{}"}`,
			KindFunctionArgumentsDone, func(e ServerEvent) bool { return e.CallID == "c1" && e.Name == "end_call" }},
		{`{"type":"conversation.item.truncated","item_id":"i1","content_index":0,"audio_end_ms":900}`, KindItemTruncated, func(e ServerEvent) bool { return e.AudioEndMS == 900 }},
		{`{"type":"mcp_list_tools.in_progress"}`, KindUnknown, func(e ServerEvent) bool { return e.Type == "mcp_list_tools.in_progress" }},
	}
	d := NewDecoder(4)
	for _, c := range cases {
		ev, err := d.Decode([]byte(c.raw))
		if err != nil {
			t.Errorf("%s: %v", c.raw, err)
			continue
		}
		if ev.Kind != c.kind || !c.chk(ev) {
			t.Errorf("%s: decoded %+v", c.raw, ev)
		}
		ev.Release()
	}
}

func TestDecodeBadInput(t *testing.T) {
	d := NewDecoder(4)
	for _, raw := range []string{
		``, `null`, `[]`, `{}`, `{"type":""}`, `{"type":42}`, `not json`, `{"type":"response.output_audio.delta","delta":"%%%notbase64"}`,
		`{"type":"response.audio.delta","delta":"AAA"}`,
	} {
		if _, err := d.Decode([]byte(raw)); !errors.Is(err, ErrMalformedEvent) {
			t.Errorf("%q: err %v, want ErrMalformedEvent", raw, err)
		}
	}
}

func TestAudioDeltaDecodesWithoutAllocating(t *testing.T) {
	pcm := make([]byte, 4800) // 100 ms at 24 kHz
	raw := []byte(`{"type":"response.output_audio.delta","event_id":"event_123","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0,"delta":"` +
		base64.StdEncoding.EncodeToString(pcm) + `"}`)
	d := NewDecoder(4)
	ev, _ := d.Decode(raw) // warm the pool and the id cache
	ev.Release()
	allocs := testing.AllocsPerRun(100, func() {
		ev, err := d.Decode(raw)
		if err != nil || len(ev.Audio) != len(pcm) {
			t.Fatal("decode failed")
		}
		ev.Release()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per audio delta", allocs)
	}
}

func TestBuildEndpoint(t *testing.T) {
	cases := []struct {
		cfg        EndpointConfig
		url        string
		header     string
		value      string
		betaHeader bool
	}{
		{EndpointConfig{Provider: OpenAI, Model: "gpt-realtime", APIKey: "k"}, "wss://api.openai.com/v1/realtime?model=gpt-realtime", "Authorization", "Bearer k", false},
		{EndpointConfig{Provider: OpenAI, Dialect: Beta, Model: "gpt-4o-realtime-preview", APIKey: "k"}, "wss://api.openai.com/v1/realtime?model=gpt-4o-realtime-preview", "Authorization", "Bearer k", true},
		{EndpointConfig{Provider: Azure, AzureEndpoint: "https://res.openai.azure.com/", AzureDeployment: "rt", APIKey: "k"}, "wss://res.openai.azure.com/openai/v1/realtime?model=rt", "api-key", "k", false},
		{EndpointConfig{Provider: Azure, Dialect: Beta, AzureEndpoint: "https://res.openai.azure.com", AzureDeployment: "rt", APIKey: "k"},
			"wss://res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=rt", "api-key", "k", false},
		{EndpointConfig{Provider: Custom, URL: "ws://127.0.0.1:9/x"}, "ws://127.0.0.1:9/x", "Authorization", "", false},
	}
	for _, c := range cases {
		ep, err := BuildEndpoint(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if ep.URL != c.url || ep.Header.Get(c.header) != c.value || (ep.Header.Get("OpenAI-Beta") != "") != c.betaHeader {
			t.Errorf("%+v: got %s %v", c.cfg, ep.URL, ep.Header)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"type":"response.output_audio.delta","item_id":"i","response_id":"r","delta":"AAAA"}`))
	f.Add([]byte(`{"type":"response.done","response":{"id":"r","status":"completed","output":[{"id":"i","type":"message"}]}}`))
	f.Add([]byte(`{"type":"error","error":{"code":null}}`))
	f.Add([]byte(`{"type" : "response.audio.delta" , "delta" : "" }`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(2)
		ev, err := d.Decode(data)
		if err != nil {
			return
		}
		if ev.Kind == KindAudioDelta && ev.Audio == nil {
			t.Fatal("audio delta without audio")
		}
		// The fast path and encoding/json must agree on what they both accept.
		if ev.Kind == KindAudioDelta {
			var w struct {
				Type  string `json:"type"`
				Delta string `json:"delta"`
			}
			if json.Unmarshal(data, &w) != nil {
				t.Fatalf("fast path accepted what encoding/json rejects: %q", data)
			}
			dec, err := base64.StdEncoding.DecodeString(w.Delta)
			if err != nil || !bytes.Equal(dec, ev.Audio) {
				t.Fatalf("fast path audio differs for %q", data)
			}
		}
		ev.Release()
	})
}
