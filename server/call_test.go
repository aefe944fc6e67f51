package server

import (
	"context"
	"errors"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/voicebot/voicebot/bridge"
	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/internal/testpeer"
	"github.com/voicebot/voicebot/realtime"
	"github.com/voicebot/voicebot/realtime/realtimetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rig is a running voicebot with its own model server.
type rig struct {
	t      testing.TB
	sip    netip.AddrPort
	api    string // the API's address, when configured
	once   sync.Once
	server *realtimetest.Server
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
	// voicebot is the server under test: its Drain is the first SIGTERM,
	// its Reload SIGHUP, which reads next.
	voicebot *Server
	next     func() (config.Config, error)
	// notLast: another rig of the test runs on after this one stops; the
	// last one stopped checks that nothing of either is left.
	notLast bool
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tone returns PCM16 at 24 kHz: the greeting the test model speaks.
func tone(seconds, freq float64) []int16 {
	out := make([]int16, int(seconds*24000))
	for i := range out {
		out[i] = int16(8000 * math.Sin(2*math.Pi*freq*float64(i)/24000))
	}
	return out
}

func startRig(t testing.TB, mutate func(*config.Config), model func(url string) modelDialer, server ...func(*realtimetest.Options)) *rig {
	t.Helper()
	cfg := config.Default()
	cfg.SIP.Listen = "127.0.0.1:0"
	cfg.Media.PortMin, cfg.Media.PortMax = 31000, 31999
	cfg.Log.Level = "debug"
	cfg.Log.Format = "json"
	// The memory store (caller memory, conversations) goes with the test.
	cfg.Memory.Path = filepath.Join(t.TempDir(), "memory.db")
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	opts := realtimetest.Options{Greeting: tone(0.6, 440), GreetingText: "beep", Speed: 4, ChunkMS: 100,
		Voices: []string{"marin", "cedar"}}
	for _, o := range server {
		o(&opts)
	}
	srv := realtimetest.NewServer(opts)
	url, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dialect, _ := realtime.ParseDialect(cfg.Realtime.Dialect)
	ep, _ := realtime.BuildEndpoint(realtime.EndpointConfig{Provider: realtime.Custom, Dialect: dialect, URL: url})
	var m modelDialer = dialer{cfg: realtime.DialConfig{Endpoint: ep, Dialect: dialect}}
	if model != nil {
		m = model(url)
	}
	logs := &syncBuffer{}
	log := zerolog.New(logs).Level(zerolog.DebugLevel)
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{t: t, server: srv, logs: logs, cancel: cancel, done: make(chan error, 1)}
	r.next = func() (config.Config, error) { return cfg, nil }
	vb, err := New(cfg, log, Options{Model: m, ReloadConfig: func() (config.Config, error) { return r.next() }})
	if err != nil {
		cancel()
		srv.Close() // or its goroutines fail the next tests' leak checks
		t.Fatalf("New: %v", err)
	}
	r.voicebot, r.sip, r.api = vb, vb.SIPAddr(), vb.APIAddr()
	go func() { r.done <- vb.Run(ctx) }()
	select {
	case <-vb.Ready():
	case err := <-r.done:
		cancel()
		srv.Close()
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(r.stop)
	return r
}

type modelDialer = bridge.Model

func (r *rig) stop() { r.once.Do(r.stopOnce) }

func (r *rig) stopOnce() {
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("serve returned %v", err)
		}
	case <-time.After(15 * time.Second):
		r.t.Error("voicebot did not stop within 15 s")
	}
	r.server.Close()
	// Whatever the test did, voicebot sent the model nothing the real
	// service would refuse, and no response ran without the agent's
	// instructions.
	for _, v := range r.server.Violations() {
		r.t.Errorf("model protocol: %s", v)
	}
	// Once voicebot has stopped, nothing of it may still run.
	// The test's own peers (a PBX made before the rig) may outlive it.
	// A benchmark's rig stops on the benchmark's goroutine, with the runner's
	// waiting above it.
	if r.notLast {
		return
	}
	if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/voicebot/voicebot/internal/testpeer.(*PBX).readSIP"),
		goleak.IgnoreAnyFunction("github.com/voicebot/voicebot/internal/testpeer.(*PBX).readRTP"),
		goleak.IgnoreTopFunction("testing.(*B).run1"), goleak.IgnoreTopFunction("testing.(*B).doBench")); err != nil {
		r.t.Errorf("goroutines left after voicebot stopped: %v", err)
	}
	if r.t.Failed() {
		r.t.Logf("voicebot log:\n%s", r.logs.String())
	}
}

func (r *rig) caller() *testpeer.Caller {
	c, err := testpeer.New(r.sip)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(c.Close)
	return c
}

func waitFor(t testing.TB, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitForBye waits until voicebot has sent the caller a BYE.
func waitForBye(t *testing.T, c *testpeer.Caller, timeout time.Duration) {
	t.Helper()
	waitFor(t, "BYE from voicebot", timeout, func() bool {
		for _, req := range c.Requests() {
			if req.Method == "BYE" {
				return true
			}
		}
		return false
	})
}

func audible(pkts []testpeer.Packet) []int16 {
	var out []int16
	for _, p := range pkts {
		out = append(out, p.Audio...)
	}
	return out
}

func rmsOf(x []int16) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / math.Max(1, float64(len(x))))
}

// A whole call: greeting, the caller speaks and then stops sending RTP (as
// phones with silence suppression do), the model hears the turn end, the
// echo comes back as RTP, and the call ends with the caller's BYE.
func TestCallEndToEnd(t *testing.T) {
	for _, dialect := range []string{"ga", "beta"} {
		t.Run(dialect, func(t *testing.T) {
			r := startRig(t, func(c *config.Config) { c.Realtime.Dialect = dialect }, nil)
			c := r.caller()
			res, err := c.Invite("", 5*time.Second)
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("INVITE: %v %v", res, err)
			}
			if ct := res.GetHeader("Content-Type"); ct == nil || ct.Value() != "application/sdp" {
				t.Fatalf("200 OK without SDP content type")
			}
			// The greeting (a 440 Hz tone) arrives as RTP within a second or so.
			waitFor(t, "greeting audio", 5*time.Second, func() bool { return rmsOf(audible(c.Received())) > 100 })

			sess := r.server.Sessions()[0]
			if sess.Dialect().String() != dialect {
				t.Fatalf("server saw dialect %s", sess.Dialect())
			}
			up, err := sess.WaitFor("session.update", time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if dialect == "ga" && !strings.Contains(string(up.Raw), `"type":"realtime"`) {
				t.Errorf("GA session.update lacks session.type: %s", up.Raw)
			}
			if dialect == "beta" && !strings.Contains(string(up.Raw), `"input_audio_format":"pcm16"`) {
				t.Errorf("beta session.update lacks input_audio_format: %s", up.Raw)
			}
			if _, err := sess.WaitFor("response.create", time.Second); err != nil {
				t.Fatal("no greeting response.create")
			}
			time.Sleep(800 * time.Millisecond) // let the greeting finish playing

			speech := testpeer.Speech(1.5, 3)
			before := len(c.Received())
			c.SendAudio(speech, 100, 16000, 0xCAFE)
			// Then nothing: no RTP at all. voicebot must pad with silence so the
			// model's VAD ends the turn and answers.
			waitFor(t, "echo reply", 8*time.Second, func() bool {
				got := audible(c.Received()[before:])
				best, _ := testpeer.BestCorrelation(got, speech[2000:10000])
				return best > 0.8
			})
			if n := sess.SpeechStarts(); n != 1 {
				t.Errorf("model heard %d utterances, want 1", n)
			}
			code, err := c.Bye(5 * time.Second)
			if err != nil || code != 200 {
				t.Fatalf("BYE: %d %v", code, err)
			}
			select {
			case <-sess.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("model session still open after BYE")
			}
			waitFor(t, "call log", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), `"message":"call: ended"`) })
			logs := r.logs.String()
			for _, want := range []string{`"who":"caller"`, `"who":"bot"`, `"outcome":"caller_hung_up"`} {
				if !strings.Contains(logs, want) {
					t.Errorf("log lacks %s", want)
				}
			}
		})
	}
}

// RTP packets are continuous and paced: sequence numbers and timestamps step
// by one frame, and the stream never pauses while the bot is silent.
func TestRTPStreamIsContinuous(t *testing.T) {
	r := startRig(t, nil, nil)
	c := r.caller()
	if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	time.Sleep(2 * time.Second)
	pkts := c.Received()
	if len(pkts) < 80 {
		t.Fatalf("only %d packets in 2 s", len(pkts))
	}
	markers := 0
	if pkts[0].Header.Marker {
		markers++
	}
	for i := 1; i < len(pkts); i++ {
		if pkts[i].Header.SequenceNumber != pkts[i-1].Header.SequenceNumber+1 {
			t.Fatalf("sequence gap at %d", i)
		}
		if pkts[i].Header.Timestamp-pkts[i-1].Header.Timestamp != 160 {
			t.Fatalf("timestamp step %d at %d", pkts[i].Header.Timestamp-pkts[i-1].Header.Timestamp, i)
		}
		if pkts[i].Header.Marker {
			markers++
		}
		if pkts[i].Header.SSRC != pkts[0].Header.SSRC {
			t.Fatal("SSRC changed")
		}
	}
	if markers != 1 {
		t.Errorf("%d marker bits; want exactly one (the greeting's talkspurt)", markers)
	}
	_, _ = c.Bye(5 * time.Second)
}

// slowModel never connects until the test lets it: the call stays ringing.
type slowModel struct{ release chan struct{} }

func (m slowModel) Dial(ctx context.Context, _ string) (*realtime.Conn, error) {
	select {
	case <-m.release:
		return nil, errors.New("refused")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestCancelBeforeAnswer(t *testing.T) {
	m := slowModel{release: make(chan struct{})}
	defer close(m.release)
	r := startRig(t, nil, func(string) modelDialer { return m })
	c := r.caller()
	invite := c.Request("INVITE", "application/sdp", c.Offer())
	_ = c.SendRaw(invite)
	time.Sleep(300 * time.Millisecond)
	// CANCEL carries the INVITE's branch and CSeq number.
	cancel := strings.Replace(string(invite), "INVITE sip:", "CANCEL sip:", 1)
	cancel = strings.Replace(cancel, " INVITE\r\n", " CANCEL\r\n", 1)
	cancel = cancel[:strings.Index(cancel, "Content-Type:")] + "Content-Length: 0\r\n\r\n"
	_ = c.SendRaw([]byte(cancel))
	seen := map[int]bool{}
	for len(seen) < 2 {
		res, err := c.Final(5 * time.Second)
		if err != nil {
			t.Fatalf("after CANCEL, got %v: %v", seen, err)
		}
		seen[res.StatusCode] = true
	}
	if !seen[200] || !seen[487] {
		t.Errorf("got %v, want 200 (CANCEL) and 487 (INVITE)", seen)
	}
}

func TestModelUnreachableGives503(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "ws://" + ln.Addr().String() + "/v1/realtime"
	ln.Close()
	r := startRig(t, func(c *config.Config) { c.Realtime.ConnectTimeout = config.Duration(2 * time.Second) }, func(string) modelDialer {
		ep, _ := realtime.BuildEndpoint(realtime.EndpointConfig{Provider: realtime.Custom, URL: dead})
		return dialer{cfg: realtime.DialConfig{Endpoint: ep}}
	})
	c := r.caller()
	res, err := c.Invite("", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 503 {
		t.Errorf("got %d, want 503", res.StatusCode)
	}
	if !strings.Contains(r.logs.String(), "model unreachable") {
		t.Error("no log line about the unreachable model")
	}
}

// With reconnecting turned off (budget 0s), a model that goes away
// mid-call ends it: voicebot hangs up with a BYE and frees the call.
func TestModelLossHangsUp(t *testing.T) {
	r := startRig(t, func(c *config.Config) { c.Realtime.Reconnect.Budget = 0 }, nil)
	c := r.caller()
	if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	waitFor(t, "model session", 3*time.Second, func() bool { return len(r.server.Sessions()) == 1 })
	r.server.Sessions()[0].Drop()
	waitForBye(t, c, 10*time.Second)
}

// A caller that never ACKs the 200 OK must not hold the call forever.
func TestNoAckEndsTheCall(t *testing.T) {
	r := startRig(t, func(c *config.Config) { c.SIP.AckTimeout = config.Duration(time.Second) }, nil)
	c := r.caller()
	_ = c.SendRaw(c.Request("INVITE", "application/sdp", c.Offer()))
	oks := 0
	deadline := time.After(6 * time.Second)
	for oks < 2 {
		select {
		case <-deadline:
			t.Fatalf("saw %d 200 OKs; want retransmissions", oks)
		default:
		}
		res, err := c.Final(time.Second)
		if err == nil && res.StatusCode == 200 {
			oks++
			c.ToTag, _ = res.To().Params.Get("tag")
		}
	}
	waitForBye(t, c, 6*time.Second)
	waitFor(t, "call cleanup", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), "no ACK") })
}

// RTP from anyone but the negotiated peer is dropped, and a zero-length or
// garbage datagram does no harm: the model never hears the stranger.
func TestRTPFromStrangerIsDropped(t *testing.T) {
	r := startRig(t, func(c *config.Config) { c.Agent.Greeting = false }, nil)
	c := r.caller()
	if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	stranger := r.caller() // another socket on the same host: another port
	stranger.RemoteRTP, stranger.Codec = c.RemoteRTP, c.Codec
	// The genuine caller speaks first (this locks the source), then a stranger talks.
	c.SendAudio(testpeer.Silence(0.2), 1, 0, 1)
	_, _ = stranger.RTP.WriteToUDPAddrPort(nil, c.RemoteRTP)
	_, _ = stranger.RTP.WriteToUDPAddrPort([]byte("not rtp"), c.RemoteRTP)
	stranger.SendAudio(testpeer.Speech(1.0, 1), 500, 0, 99)
	time.Sleep(1500 * time.Millisecond)
	sess := r.server.Sessions()[0]
	if n := sess.SpeechStarts(); n != 0 {
		t.Fatalf("the model heard the stranger (%d utterances)", n)
	}
	_, _ = c.Bye(5 * time.Second)
	waitFor(t, "call log", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), `"message":"call: ended"`) })
	// 52 datagrams came from the stranger: an empty one, a garbage one and 50 RTP packets.
	if !strings.Contains(r.logs.String(), `"strangers":52,`) {
		t.Errorf("stranger packets not counted")
	}
}

// A model that refuses our session.update (here: a voice it does not have)
// refuses the call clearly instead of answering into a broken session.
func TestRefusedSessionConfigGives503(t *testing.T) {
	r := startRig(t, func(c *config.Config) { c.Agent.Voice = "robot" }, nil)
	c := r.caller()
	res, err := c.Invite("", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 503 {
		t.Errorf("got %d, want 503", res.StatusCode)
	}
	waitFor(t, "log line", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), "model refused the session configuration") })
	if !strings.Contains(r.logs.String(), "robot") {
		t.Error("the log does not say what was refused")
	}
}

// The greeting is generated while the phone rings: even from a model that
// takes 300 ms to its first audio, the caller's very first RTP packet is the
// greeting (with the talkspurt marker), not silence while the model thinks.
func TestGreetingIsReadyAtAnswer(t *testing.T) {
	r := startRig(t, nil, nil, func(o *realtimetest.Options) { o.FirstAudioDelay = 300 * time.Millisecond })
	c := r.caller()
	if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	waitFor(t, "first packets", 3*time.Second, func() bool { return len(c.Received()) >= 3 })
	first := c.Received()[0]
	if !first.Header.Marker || rmsOf(first.Audio) < 100 {
		t.Errorf("the first packet after answering is not the greeting (marker %v, rms %.0f)", first.Header.Marker, rmsOf(first.Audio))
	}
	_, _ = c.Bye(5 * time.Second)
}
