package realtime_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/voicebot/voicebot/realtime"
	"github.com/voicebot/voicebot/realtime/realtimetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func dial(t *testing.T, url string, d realtime.Dialect, key string) *realtime.Conn {
	t.Helper()
	ep, err := realtime.BuildEndpoint(realtime.EndpointConfig{Provider: realtime.Custom, Dialect: d, URL: url, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := realtime.Dial(ctx, realtime.DialConfig{Endpoint: ep, Dialect: d})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// next returns the next event of kind, failing after timeout.
func next(t *testing.T, c *realtime.Conn, kind realtime.Kind) realtime.ServerEvent {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("connection closed waiting for kind %d: %v", kind, c.Err())
			}
			if ev.Kind == kind {
				return ev
			}
			ev.Release()
		case <-deadline:
			t.Fatalf("no event of kind %d", kind)
		}
	}
}

func TestConversationBothDialects(t *testing.T) {
	for _, d := range []realtime.Dialect{realtime.GA, realtime.Beta} {
		t.Run(d.String(), func(t *testing.T) {
			srv := realtimetest.NewServer(realtimetest.Options{Speed: 50, ChunkMS: 100})
			defer srv.Close()
			url, err := srv.Start("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			c := dial(t, url, d, "")
			defer c.Close()
			next(t, c, realtime.KindSessionCreated)
			upd, _ := d.SessionUpdate("s1", realtime.SessionConfig{Model: "demo", Voice: "marin",
				TurnDetection: &realtime.TurnDetection{Type: "server_vad", Threshold: 0.5, PrefixPaddingMS: 300, SilenceDurationMS: 500, CreateResponse: true, InterruptResponse: true}})
			if err := c.Send(upd); err != nil {
				t.Fatal(err)
			}
			next(t, c, realtime.KindSessionUpdated)

			// A bad append is answered with an error; the session goes on.
			_ = c.Send([]byte(`{"type":"input_audio_buffer.append","event_id":"bad1","audio":"%%%"}`))
			e := next(t, c, realtime.KindError)
			if e.Err.EventID != "bad1" || e.Err.Code != "invalid_value" {
				t.Errorf("error event %+v", e.Err)
			}
			rc, _ := d.ResponseCreate("r1", realtime.ResponseRequest{})
			_ = c.Send(rc)
			var itemID string
			audioBytes := 0
			for done := false; !done; {
				select {
				case ev := <-c.Events():
					switch ev.Kind {
					case realtime.KindAudioDelta:
						itemID = ev.ItemID
						audioBytes += len(ev.Audio)
					case realtime.KindResponseDone:
						done = true
						if ev.Response.Status != "completed" {
							t.Errorf("status %s", ev.Response.Status)
						}
					}
					ev.Release()
				case <-time.After(5 * time.Second):
					t.Fatal("response did not finish")
				}
			}
			greetingMS := len(realtimetest.DefaultGreeting()) / 24
			if audioBytes/48 != greetingMS {
				t.Errorf("received %d ms of audio, want %d", audioBytes/48, greetingMS)
			}
			// Truncating beyond the audio is refused, as the real service does.
			tr, _ := d.ItemTruncate("t1", itemID, 0, greetingMS+500)
			_ = c.Send(tr)
			if e := next(t, c, realtime.KindError); e.Err.EventID != "t1" {
				t.Errorf("truncate error %+v", e.Err)
			}
			tr, _ = d.ItemTruncate("t2", itemID, 0, 1000)
			_ = c.Send(tr)
			if e := next(t, c, realtime.KindItemTruncated); e.AudioEndMS != 1000 {
				t.Errorf("truncated %+v", e)
			}
			// Cancelling with nothing active is a benign error.
			cancel, _ := d.ResponseCancel("c1", "")
			_ = c.Send(cancel)
			if e := next(t, c, realtime.KindError); e.Err.Code != "response_cancel_not_active" {
				t.Errorf("cancel error %+v", e.Err)
			}
		})
	}
}

func TestGAServerRejectsBetaShapedSession(t *testing.T) {
	srv := realtimetest.NewServer(realtimetest.Options{})
	defer srv.Close()
	url, _ := srv.Start("127.0.0.1:0")
	c := dial(t, url, realtime.GA, "")
	defer c.Close()
	beta, _ := realtime.Beta.SessionUpdate("s1", realtime.SessionConfig{})
	_ = c.Send(beta)
	if e := next(t, c, realtime.KindError); e.Err.Param != "session.type" {
		t.Errorf("got %+v", e.Err)
	}
}

func TestHandshakeRefusedAndUnreachable(t *testing.T) {
	srv := realtimetest.NewServer(realtimetest.Options{APIKey: "right-key"})
	defer srv.Close()
	url, _ := srv.Start("127.0.0.1:0")
	ep, _ := realtime.BuildEndpoint(realtime.EndpointConfig{Provider: realtime.Custom, URL: url, APIKey: "wrong-key"})
	_, err := realtime.Dial(context.Background(), realtime.DialConfig{Endpoint: ep})
	var he *realtime.HandshakeError
	if !errors.As(err, &he) || he.Status != 401 {
		t.Fatalf("got %v, want a 401 handshake error", err)
	}
	if strings.Contains(err.Error(), "wrong-key") || strings.Contains(err.Error(), "right-key") {
		t.Errorf("error leaks the key: %v", err)
	}
	c := dial(t, url, realtime.GA, "right-key")
	c.Close()

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "ws://" + ln.Addr().String()
	ln.Close()
	ep, _ = realtime.BuildEndpoint(realtime.EndpointConfig{Provider: realtime.Custom, URL: dead})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := realtime.Dial(ctx, realtime.DialConfig{Endpoint: ep}); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
}

func TestServerDropEndsEvents(t *testing.T) {
	srv := realtimetest.NewServer(realtimetest.Options{})
	defer srv.Close()
	url, _ := srv.Start("127.0.0.1:0")
	c := dial(t, url, realtime.GA, "")
	defer c.Close()
	next(t, c, realtime.KindSessionCreated)
	for len(srv.Sessions()) == 0 {
		time.Sleep(time.Millisecond)
	}
	srv.Sessions()[0].Drop()
	for range c.Events() {
	}
	if c.Err() == nil {
		t.Error("no error after the server dropped the connection")
	}
	if err := c.Send([]byte(`{}`)); err == nil {
		// The writer may not have noticed yet; either way Close must return.
		t.Log("send after drop accepted (writer not yet failed)")
	}
}
