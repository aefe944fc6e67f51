package converse

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/voicebot/voicebot/clock"
	"github.com/voicebot/voicebot/internal/testredis"
	"github.com/voicebot/voicebot/memory"
	"github.com/voicebot/voicebot/realtime"
	"github.com/voicebot/voicebot/realtime/realtimetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type dialer struct{ cfg realtime.DialConfig }

func (d dialer) Dial(ctx context.Context, _ string) (*realtime.Conn, error) {
	return realtime.Dial(ctx, d.cfg)
}

// rig is a service on the demo model and a store, on a fake clock.
type rig struct {
	t     *testing.T
	model *realtimetest.Server
	store memory.Backend
	clk   *clock.Fake
	svc   *Service
}

type rigOptions struct {
	dialect realtime.Dialect
	store   memory.Backend // default: SQLite in a temp dir
	model   *realtimetest.Server
	url     string // the model's
	idle    time.Duration
	tools   func(ctx context.Context, name, args string) (string, error)
}

// startModel runs a demo model streaming at speed times real time.
func startModel(t *testing.T, speed float64) (*realtimetest.Server, string) {
	t.Helper()
	m := realtimetest.NewServer(realtimetest.Options{Speed: speed, ChunkMS: 100, GreetingText: "hello"})
	url, err := m.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m, url
}

func closed(s *realtimetest.Session) bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	if o.model == nil {
		o.model, o.url = startModel(t, 20)
	}
	if o.store == nil {
		s, err := memory.Open(memory.Config{Store: "sqlite", Path: filepath.Join(t.TempDir(), "m.db"), Timeout: 2 * time.Second}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		o.store = s
	}
	ep, _ := realtime.BuildEndpoint(realtime.EndpointConfig{Provider: realtime.Custom, Dialect: o.dialect, URL: o.url})
	r := &rig{t: t, model: o.model, store: o.store, clk: clock.NewFake(time.Unix(1_800_000_000, 0))}
	agent := Agent{Name: "default", Session: realtime.SessionConfig{Instructions: "You are the test agent.", Voice: "marin",
		Transcription: &realtime.Transcription{Model: "gpt-4o-mini-transcribe"}}, RunTool: o.tools}
	r.svc = New(Config{
		Model: dialer{realtime.DialConfig{Endpoint: ep, Dialect: o.dialect}}, Store: o.store, Clock: r.clk, IdleSession: o.idle,
		Agent: func(name string) (Agent, bool) {
			if name != "" && name != "default" {
				return Agent{}, false
			}
			return agent, true
		},
	})
	t.Cleanup(r.svc.Close)
	return r
}

// answer is what one turn emitted.
type answer struct {
	events     []string
	text       string
	transcript string
	audioBytes int
	done       Event
}

func (r *rig) turn(id string, in Input) (answer, error) {
	var a answer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := r.svc.Turn(ctx, id, in, func(ev Event) {
		a.events = append(a.events, ev.Type)
		switch ev.Type {
		case EventTextDelta:
			a.text += ev.Text
		case EventTranscript:
			a.transcript = ev.Text
		case EventAudioDelta:
			a.audioBytes += len(ev.Audio)
		case EventDone:
			a.done = ev
		}
	})
	return a, err
}

func (r *rig) create() string {
	c, err := r.svc.Create(context.Background(), "", "")
	if err != nil {
		r.t.Fatal(err)
	}
	return c.ID
}

func speech(seconds float64) []int16 {
	out := make([]int16, int(seconds*24000))
	for i := range out {
		t := float64(i) / 24000
		out[i] = int16(6000 * math.Sin(2*math.Pi*180*t) * (0.6 + 0.4*math.Sin(2*math.Pi*3*t)))
	}
	return out
}

func TestTextTurnIsAnsweredAndKept(t *testing.T) {
	for _, d := range []realtime.Dialect{realtime.GA, realtime.Beta} {
		t.Run(d.String(), func(t *testing.T) {
			r := newRig(t, rigOptions{dialect: d})
			id := r.create()
			a, err := r.turn(id, Input{Text: "What are your opening hours?"})
			if err != nil {
				t.Fatal(err)
			}
			if a.done.Type != EventDone || a.done.Text == "" || a.done.Text != strings.TrimSpace(a.text) || a.audioBytes == 0 ||
				a.done.AudioMS != a.audioBytes/48 || a.events[len(a.events)-1] != EventDone {
				t.Fatalf("answer %+v", a)
			}
			if !strings.Contains(a.done.Text, "opening hours") {
				t.Errorf("the demo's answer %q does not echo the text it heard", a.done.Text)
			}
			_, turns, err := r.svc.Get(context.Background(), id)
			if err != nil || len(turns) != 2 || turns[0].Role != "user" || turns[0].Text != "What are your opening hours?" ||
				turns[1].Role != "assistant" || turns[1].Text != a.done.Text {
				t.Fatalf("kept %+v, %v", turns, err)
			}
			sess := r.model.Sessions()[0]
			up, err := sess.WaitFor("session.update", time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(up.Raw), `"turn_detection":null`) {
				t.Errorf("the session was not set up for push to talk (no VAD): %s", up.Raw)
			}
			if v := r.model.Violations(); len(v) > 0 {
				t.Errorf("the model saw protocol violations: %+v", v)
			}
		})
	}
}

func TestTextOnlyAnswerHasNoAudio(t *testing.T) {
	for _, d := range []realtime.Dialect{realtime.GA, realtime.Beta} {
		t.Run(d.String(), func(t *testing.T) {
			r := newRig(t, rigOptions{dialect: d})
			id := r.create()
			a, err := r.turn(id, Input{Text: "hello", TextOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			if a.audioBytes != 0 || a.done.AudioMS != 0 || !strings.Contains(a.done.Text, "hello") || a.done.Text != strings.TrimSpace(a.text) {
				t.Fatalf("answer %+v: want text only", a)
			}
			want := `"output_modalities":["text"]`
			if d == realtime.Beta {
				want = `"modalities":["text"]`
			}
			rc := r.model.Sessions()[0].ReceivedOfType("response.create")
			if len(rc) != 1 || !strings.Contains(string(rc[0].Raw), want) {
				t.Errorf("response.create %v does not ask for text only", rc)
			}
			if v := r.model.Violations(); len(v) > 0 {
				t.Errorf("violations: %+v", v)
			}
		})
	}
}

func TestAudioTurnIsTranscribed(t *testing.T) {
	r := newRig(t, rigOptions{})
	id := r.create()
	a, err := r.turn(id, Input{Audio: speech(1.5)})
	if err != nil {
		t.Fatal(err)
	}
	if a.transcript == "" || a.audioBytes == 0 || a.events[0] != EventTranscript {
		t.Fatalf("answer %+v: want the transcript first, then the spoken answer", a)
	}
	_, turns, _ := r.svc.Get(context.Background(), id)
	if len(turns) == 0 || turns[0].Text != a.transcript {
		t.Errorf("kept %+v: want the user's turn as transcribed (%q)", turns, a.transcript)
	}
	if _, err := r.turn(id, Input{Audio: speech(0.05)}); !errors.Is(err, ErrShortAudio) {
		t.Errorf("50 ms of audio: %v", err)
	}
	if _, err := r.turn(id, Input{}); !errors.Is(err, ErrEmptyTurn) {
		t.Errorf("an empty turn: %v", err)
	}
}

// A quick follow-up uses the open session; once it has been idle, the
// next turn gets a fresh session with the conversation replayed.
func TestIdleSessionThenReplay(t *testing.T) {
	r := newRig(t, rigOptions{idle: 30 * time.Second})
	id := r.create()
	if _, err := r.turn(id, Input{Text: "first question"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.turn(id, Input{Text: "second question"}); err != nil {
		t.Fatal(err)
	}
	if n := len(r.model.Sessions()); n != 1 {
		t.Fatalf("%d model sessions for two quick turns, want 1", n)
	}
	r.clk.Advance(31 * time.Second)
	waitFor(t, func() bool { return closed(r.model.Sessions()[0]) }, "the idle session to close")
	a, err := r.turn(id, Input{Text: "third question"})
	if err != nil {
		t.Fatal(err)
	}
	sessions := r.model.Sessions()
	if len(sessions) != 2 {
		t.Fatalf("%d model sessions, want a new one after the idle time", len(sessions))
	}
	var replayed []string
	for _, ev := range sessions[1].ReceivedOfType("conversation.item.create") {
		replayed = append(replayed, string(ev.Raw))
	}
	if len(replayed) != 5 || !strings.Contains(replayed[0], "first question") || !strings.Contains(replayed[2], "second question") ||
		!strings.Contains(replayed[1], `"role":"assistant"`) || !strings.Contains(replayed[4], "third question") {
		t.Fatalf("the new session got %d items: %v", len(replayed), replayed)
	}
	if !strings.Contains(a.done.Text, "third question") {
		t.Errorf("answer %q", a.done.Text)
	}
	_, turns, _ := r.svc.Get(context.Background(), id)
	if len(turns) != 6 {
		t.Errorf("%d turns kept, want 6", len(turns))
	}
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestOneTurnAtATime(t *testing.T) {
	model, url := startModel(t, 1)
	r := newRig(t, rigOptions{model: model, url: url})
	id := r.create()
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var once sync.Once
		_ = r.svc.Turn(context.Background(), id, Input{Audio: speech(1)}, func(Event) { once.Do(func() { close(started) }) })
	}()
	<-started
	if _, err := r.turn(id, Input{Text: "me too"}); !errors.Is(err, ErrBusy) {
		t.Errorf("a second turn while one runs: %v, want ErrBusy", err)
	}
	other := r.create()
	if _, err := r.turn(other, Input{Text: "another conversation", TextOnly: true}); err != nil {
		t.Errorf("another conversation's turn: %v", err)
	}
	wg.Wait()
}

// A client that goes away mid-answer leaves nothing in the conversation,
// and its model session is closed.
func TestClientGoneMidTurn(t *testing.T) {
	model, url := startModel(t, 1)
	r := newRig(t, rigOptions{model: model, url: url})
	id := r.create()
	ctx, cancel := context.WithCancel(context.Background())
	err := r.svc.Turn(ctx, id, Input{Audio: speech(2)}, func(ev Event) {
		if ev.Type == EventAudioDelta {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("turn: %v", err)
	}
	waitFor(t, func() bool { return closed(model.Sessions()[0]) }, "the model session to close")
	if _, turns, _ := r.svc.Get(context.Background(), id); len(turns) != 0 {
		t.Errorf("kept %+v of a turn whose client went away", turns)
	}
}

func TestConversationsExpireWhenIdle(t *testing.T) {
	r := newRig(t, rigOptions{})
	id := r.create()
	if _, err := r.turn(id, Input{Text: "hello", TextOnly: true}); err != nil {
		t.Fatal(err)
	}
	r.clk.Advance(59 * time.Minute)
	if _, _, err := r.svc.Get(context.Background(), id); err != nil {
		t.Fatalf("after 59 idle minutes: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	armed := r.clk.Armed()
	go func() { defer close(done); r.svc.Sweep(ctx, time.Minute) }()
	waitFor(t, func() bool { return r.clk.Armed() > armed }, "the sweep to wait for its next round")
	r.clk.Advance(time.Minute)
	if _, _, err := r.svc.Get(context.Background(), id); !errors.Is(err, ErrNotFound) {
		t.Errorf("after an idle hour: %v, want ErrNotFound", err)
	}
	waitFor(t, func() bool {
		_, _, err := r.store.Conversation(context.Background(), id)
		return errors.Is(err, memory.ErrNoConversation)
	}, "the sweep to delete the conversation")
	cancel()
	<-done
	if _, err := r.turn(id, Input{Text: "hello?"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("a turn of an expired conversation: %v", err)
	}
}

func TestDeleteAndUnknown(t *testing.T) {
	r := newRig(t, rigOptions{})
	id := r.create()
	if _, err := r.turn(id, Input{Text: "hello", TextOnly: true}); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Delete(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Delete(context.Background(), id); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting twice: %v", err)
	}
	if _, err := r.turn(id, Input{Text: "hello"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("a deleted conversation's turn: %v", err)
	}
	if _, err := r.svc.Create(context.Background(), "nobody", ""); !errors.Is(err, ErrUnknownAgent) {
		t.Errorf("an unknown agent: %v", err)
	}
}

// Two instances sharing Redis: either continues the other's conversation,
// the history replayed into its own session.
func TestTwoInstancesShareConversations(t *testing.T) {
	redis := testredis.Start(t)
	open := func() memory.Backend {
		s, err := memory.Open(memory.Config{Store: "redis", Redis: memory.RedisConfig{Addr: redis.Addr}, ConversationTTL: time.Hour,
			Timeout: 2 * time.Second}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a := newRig(t, rigOptions{store: open(), idle: time.Minute})
	b := newRig(t, rigOptions{store: open(), idle: time.Minute})
	b.clk.Set(a.clk.Now())
	id := a.create()
	if _, err := a.turn(id, Input{Text: "my order number is 4711", TextOnly: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.turn(id, Input{Text: "where is it?", TextOnly: true}); err != nil {
		t.Fatal(err)
	}
	items := b.model.Sessions()[0].ReceivedOfType("conversation.item.create")
	if len(items) != 3 || !strings.Contains(string(items[0].Raw), "4711") {
		t.Fatalf("instance b's session got %d items: %v", len(items), items)
	}
	// a's session is still open but no longer has the whole conversation:
	// it is not used for the next turn.
	if _, err := a.turn(id, Input{Text: "thanks", TextOnly: true}); err != nil {
		t.Fatal(err)
	}
	if n := len(a.model.Sessions()); n != 2 {
		t.Errorf("instance a used %d sessions, want a fresh one with b's turn replayed", n)
	}
	_, turns, err := b.svc.Get(context.Background(), id)
	if err != nil || len(turns) != 6 {
		t.Errorf("%d turns seen from b, want 6 (%v)", len(turns), err)
	}
}

func TestToolsRunAndTheModelGetsTheAnswer(t *testing.T) {
	var calls []string
	r := newRig(t, rigOptions{tools: func(_ context.Context, name, args string) (string, error) {
		calls = append(calls, name+" "+args)
		return `{"status":"shipped"}`, nil
	}})
	r.svc.cfg.Agent = func(string) (Agent, bool) {
		return Agent{Name: "default", Session: realtime.SessionConfig{Instructions: "x", Tools: []realtime.Tool{{Name: "order_status",
			Description: "Look up an order", Parameters: []byte(`{"type":"object","properties":{"order":{"type":"string"}}}`)}}},
			RunTool: func(_ context.Context, name, args string) (string, error) {
				calls = append(calls, name+" "+args)
				return `{"status":"shipped"}`, nil
			}}, true
	}
	id := r.create()
	a, err := r.turn(id, Input{Text: "please use order_status", TextOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || !strings.Contains(strings.Join(a.events, ","), EventToolCall) {
		t.Fatalf("tool calls %v, events %v", calls, a.events)
	}
	outs := r.model.Sessions()[0].ReceivedOfType("conversation.item.create")
	if len(outs) < 2 || !strings.Contains(string(outs[len(outs)-1].Raw), "shipped") {
		t.Errorf("the model was not given the tool's answer: %v", outs)
	}
}

func TestTooManyTurnsAtOnce(t *testing.T) {
	model, url := startModel(t, 1)
	r := newRig(t, rigOptions{model: model, url: url})
	r.svc.cfg.MaxTurns = 1
	id, other := r.create(), r.create()
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var once sync.Once
		_ = r.svc.Turn(context.Background(), id, Input{Audio: speech(1)}, func(Event) { once.Do(func() { close(started) }) })
	}()
	<-started
	if _, err := r.turn(other, Input{Text: "hello"}); !errors.Is(err, ErrOverloaded) {
		t.Errorf("a turn over the bound: %v, want ErrOverloaded", err)
	}
	<-done
	if _, err := r.turn(other, Input{Text: "hello", TextOnly: true}); err != nil {
		t.Errorf("once the other turn ended: %v", err)
	}
}
