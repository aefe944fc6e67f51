package realtime_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/voicebot/voicebot/realtime"
	"github.com/voicebot/voicebot/realtime/realtimetest"
)

// The demo model answers as the real service does to what voicebot might
// get wrong: these are the behaviours the bridge's tests lean on.

func startDemo(t *testing.T, opts realtimetest.Options) (*realtimetest.Server, string) {
	t.Helper()
	srv := realtimetest.NewServer(opts)
	t.Cleanup(srv.Close)
	url, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return srv, url
}

// send returns a sender of an encoded event to c: send(t, c)(d.ResponseCreate(...)).
func send(t *testing.T, c *realtime.Conn) func([]byte, error) {
	return func(ev []byte, err error) {
		t.Helper()
		if err == nil {
			err = c.Send(ev)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// A field the reference does not have is refused as the service refuses
// it, and recorded; a session's model cannot be changed.
func TestDemoRefusesWhatTheServiceRefuses(t *testing.T) {
	srv, url := startDemo(t, realtimetest.Options{})
	c := dial(t, url, realtime.GA, "")
	defer c.Close()
	send(t, c)([]byte(`{"type":"session.update","event_id":"s1","session":{"type":"realtime","temperature":0.8}}`), nil)
	if e := next(t, c, realtime.KindError); e.Err.Code != "unknown_parameter" || e.Err.Param != "session.temperature" || e.Err.EventID != "s1" {
		t.Errorf("got %+v", e.Err)
	}
	send(t, c)(realtime.GA.SessionUpdate("s2", realtime.SessionConfig{Model: "gpt-realtime", Voice: "marin"}))
	if e := next(t, c, realtime.KindError); e.Err.Param != "session.model" {
		t.Errorf("a model other than the URL's (demo): %+v", e.Err)
	}
	send(t, c)(realtime.GA.SessionUpdate("s3", realtime.SessionConfig{Model: "demo", Voice: "marin"}))
	next(t, c, realtime.KindSessionUpdated)
	v := srv.Violations()
	if len(v) != 1 || v[0].Kind != "schema" || v[0].EventID != "s1" {
		t.Errorf("violations %v", v)
	}
}

// response.instructions replace the session's for that response: the demo
// records which governed it, flags a response without the session's, and
// follows the prompt; metadata comes back in response.created and done.
func TestDemoRecordsWhatGovernedAResponse(t *testing.T) {
	srv, url := startDemo(t, realtimetest.Options{Speed: 50})
	for _, d := range []realtime.Dialect{realtime.GA, realtime.Beta} {
		c := dial(t, url, d, "")
		send(t, c)(d.SessionUpdate("s1", realtime.SessionConfig{Instructions: "You are ACME.", Voice: "alloy"}))
		next(t, c, realtime.KindSessionUpdated)
		send(t, c)(d.ResponseCreate("r1", realtime.ResponseRequest{Instructions: "Greet the caller.", Metadata: map[string]string{"k": "r1"}}))
		created := next(t, c, realtime.KindResponseCreated)
		done := next(t, c, realtime.KindResponseDone)
		if created.Response.MetadataValue("k") != "r1" || done.Response.MetadataValue("k") != "r1" {
			t.Errorf("%s: metadata not echoed: %s / %s", d, created.Response.Metadata, done.Response.Metadata)
		}
		send(t, c)(d.ResponseCreate("r2", realtime.ResponseRequest{Instructions: "You are ACME.\n\nSay a short goodbye."}))
		next(t, c, realtime.KindResponseDone)
		send(t, c)(d.ResponseCreate("r3", realtime.ResponseRequest{}))
		if done := next(t, c, realtime.KindResponseDone); done.Response.MetadataValue("k") != "" {
			t.Errorf("%s: metadata on a response that asked none", d)
		}
		c.Close()
		s := srv.Sessions()[len(srv.Sessions())-1]
		rs := s.Responses()
		if len(rs) != 3 || rs[0].Instructions != "Greet the caller." || rs[1].Prompt != "Say a short goodbye." ||
			rs[1].Transcript != "Goodbye!" || rs[2].Instructions != "You are ACME." || rs[2].Prompt != "" {
			t.Errorf("%s: responses %+v", d, rs)
		}
		v := s.Violations()
		if len(v) != 1 || v[0].Kind != "persona" || v[0].EventID != "r1" {
			t.Errorf("%s: violations %v", d, v)
		}
	}
}

// Responses fail as the service's do; session_expired is sent and the
// session closed; a beta handshake is refused as api.openai.com does.
func TestDemoFailureModes(t *testing.T) {
	srv, url := startDemo(t, realtimetest.Options{Speed: 50, RefuseBeta: true})
	c := dial(t, url, realtime.GA, "")
	defer c.Close()
	srv.FailNextResponses(1, "failed")
	send(t, c)(realtime.GA.ResponseCreate("r1", realtime.ResponseRequest{}))
	done := next(t, c, realtime.KindResponseDone)
	if r := done.Response; r.Status != "failed" || r.StatusDetails.Error == nil || r.StatusDetails.Error.Type != "server_error" {
		t.Errorf("failed response %+v", r)
	}
	send(t, c)(realtime.GA.ResponseCreate("r2", realtime.ResponseRequest{}))
	if done := next(t, c, realtime.KindResponseDone); done.Response.Status != "completed" {
		t.Errorf("the next response %s", done.Response.Status)
	}
	srv.Sessions()[0].Expire()
	if e := next(t, c, realtime.KindError); e.Err.Code != realtime.CodeSessionExpired {
		t.Errorf("expiry %+v", e.Err)
	}
	for range c.Events() {
	}

	b := dial(t, url, realtime.Beta, "")
	defer b.Close()
	if e := next(t, b, realtime.KindError); e.Err.Code != realtime.CodeBetaShapeDisabled {
		t.Errorf("beta: %+v", e.Err)
	}
	for range b.Events() {
	}
	if err := b.Err(); err == nil || !strings.Contains(err.Error(), "4000") {
		t.Errorf("beta close: %v", err)
	}
	var se *realtimetest.SchemaError
	if err := realtimetest.ValidateClientEvent(realtime.GA, []byte(`{"type":"nope"}`)); !errors.As(err, &se) {
		t.Errorf("unknown event type: %v", err)
	}
}

// The demo model checks every event it is sent, from whoever connects
// (voicebot -serve-demo listens for anyone): no input may make the check
// panic or hang, every refusal is a SchemaError (the demo turns it into
// the service's error event), and what it accepts is a JSON object with a
// type.
func FuzzClientEventSchema(f *testing.F) {
	for _, d := range []realtime.Dialect{realtime.GA, realtime.Beta} {
		ev, _ := d.SessionUpdate("s", realtime.SessionConfig{Model: "m", Voice: "alloy", Instructions: "x",
			TurnDetection: &realtime.TurnDetection{Type: "server_vad", Threshold: 0.5}, Transcription: &realtime.Transcription{Model: "t"},
			Tools: []realtime.Tool{{Name: "end_call"}}})
		f.Add(ev)
		ev, _ = d.ResponseCreate("r", realtime.ResponseRequest{Instructions: "x", Metadata: map[string]string{"k": "v"}})
		f.Add(ev)
		ev, _ = d.ItemCreate("i", realtime.HistoryItem{Role: "assistant", Text: "hi"})
		f.Add(ev)
	}
	f.Add([]byte(`{"type":"conversation.item.truncate","item_id":"i","content_index":0,"audio_end_ms":1e999}`))
	f.Add([]byte(`{"type":"session.update","session":{"type":"realtime","audio":{"input":{"format":{"type":"audio/pcm","rate":-1}}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, d := range []realtime.Dialect{realtime.GA, realtime.Beta} {
			if err := realtimetest.ValidateClientEvent(d, data); err != nil {
				var se *realtimetest.SchemaError
				if !errors.As(err, &se) || se.Code == "" {
					t.Errorf("%s: %q refused with %v, not a SchemaError with a code", d, data, err)
				}
				continue
			}
			var head struct {
				Type string `json:"type"`
			}
			if err := json.Unmarshal(data, &head); err != nil || head.Type == "" {
				t.Errorf("%s accepted %q", d, data)
			}
		}
	})
}
