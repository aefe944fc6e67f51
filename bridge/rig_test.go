package bridge

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/clock"
	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/metrics"
	"github.com/voicebot/voicebot/outcome"
	"github.com/voicebot/voicebot/realtime"
	"github.com/voicebot/voicebot/realtime/realtimetest"
)

// The rig runs whole calls through Bridge.Handle, as the SIP side does: a
// recorded Call, the test peer model (realtimetest) over a real WebSocket,
// the call's RTP on real loopback sockets with a phone socket standing in
// for the caller, and the call's clock (media pacing, timers, limits) a
// fake one in the test's hand. What the tests look at is what the far end
// would see: the Call's requests (ringing, answer, refusal, hang-up,
// transfer), the RTP the phone receives, the events the model received,
// and the metrics and log lines the call leaves.
//
// Received RTP carries the kernel's arrival time (wall clock), which the
// fake clock outruns: the media pads the model's input with silence as if
// the caller had paused. Tests look at what the model heard (its VAD), not
// at how many milliseconds it got.

// rigCall is the SIP side of a rig call; safe for concurrent use.
type rigCall struct {
	mu          sync.Mutex
	log         []string // Ringing, Answer, Refuse:<why>, Hangup, Transfer:<uri>, in order
	port        int      // the local RTP port Answer was given
	observer    Observer
	transferErr error
	// onTransfer, when set, runs as the transfer is asked for.
	onTransfer func()
	// answer, when set, runs in Answer (an outbound call's callee).
	answer func(ctx context.Context, port int) error
	// ended is how the signalling says the call ended (zero: it goes on).
	ended outcome.End
}

func (c *rigCall) Outcome() outcome.End {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended
}

func (c *rigCall) ID() string { return "rig-call-1" }

func (c *rigCall) note(s string) {
	c.mu.Lock()
	c.log = append(c.log, s)
	c.mu.Unlock()
}

func (c *rigCall) Ringing() error { c.note("Ringing"); return nil }

func (c *rigCall) Answer(ctx context.Context, port int) error {
	c.mu.Lock()
	c.port = port
	answer := c.answer
	c.mu.Unlock()
	if answer != nil {
		if err := answer(ctx, port); err != nil {
			c.note("Answer failed")
			return err
		}
	}
	c.note("Answer")
	return nil
}

func (c *rigCall) Refuse(why Refusal) error { c.note("Refuse:" + string(why)); return nil }
func (c *rigCall) Hangup() error            { c.note("Hangup"); return nil }

func (c *rigCall) Transfer(_ context.Context, target string) error {
	c.note("Transfer:" + target)
	c.mu.Lock()
	hook, err := c.onTransfer, c.transferErr
	c.mu.Unlock()
	if hook != nil {
		hook()
	}
	return err
}

func (c *rigCall) Observe(o Observer) {
	c.mu.Lock()
	c.observer = o
	c.mu.Unlock()
}

// requests returns what the bridge asked of the call, in order.
func (c *rigCall) requests() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.log...)
}

func (c *rigCall) saw(req string) bool {
	for _, r := range c.requests() {
		if r == req {
			return true
		}
	}
	return false
}

func (c *rigCall) obs() Observer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.observer
}

// demoDialer dials the test peer; failNext dials fail before reaching it.
type demoDialer struct {
	cfg realtime.DialConfig

	mu       sync.Mutex
	dials    int
	failNext int
	block    chan struct{} // when set, Dial waits for it or its ctx
}

func (d *demoDialer) Dial(ctx context.Context, _ string) (*realtime.Conn, error) {
	d.mu.Lock()
	d.dials++
	fail, block := d.failNext > 0, d.block
	if fail {
		d.failNext--
	}
	d.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if fail {
		return nil, errors.New("dial refused by the test")
	}
	return realtime.Dial(ctx, d.cfg)
}

func (d *demoDialer) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dials
}

// phone is the caller's RTP endpoint: it keeps what the bridge sends it.
type phone struct {
	conn  *net.UDPConn
	codec media.Codec
	enc   media.Encoder // the stream it sends (G.722 carries state)
	mu    sync.Mutex
	got   []rtp.Packet
	done  chan struct{}
	seq   uint16
}

func newPhone(t *testing.T, codec media.Codec) *phone {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &phone{conn: conn, codec: codec, enc: codec.NewEncoder(), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 2048)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			var pkt rtp.Packet
			if pkt.Unmarshal(append([]byte(nil), buf[:n]...)) == nil {
				p.mu.Lock()
				p.got = append(p.got, pkt)
				p.mu.Unlock()
			}
		}
	}()
	return p
}

func (p *phone) close() {
	p.conn.Close()
	<-p.done
}

func (p *phone) addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// audio is how many packets of audio (not silence, not DTMF) the phone got.
func (p *phone) audio() int {
	if p.codec.Stateful() {
		// G.722's silence is no fixed byte: it is what the stream's
		// encoder makes of zeros. Audio is what decodes to a level.
		n := 0
		for _, l := range p.levels(0) {
			if l > 100 {
				n++
			}
		}
		return n
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, pkt := range p.got {
		if pkt.PayloadType != p.codec.PayloadType {
			continue
		}
		for _, b := range pkt.Payload {
			if b != p.codec.Silence()[0] {
				n++
				break
			}
		}
	}
	return n
}

// framesOf is how many frames the phone got that are all of one sample
// value (a flat test signal, told apart from any other audio).
func (p *phone) framesOf(v int16) int {
	want := p.codec.Encode(nil, []int16{v})[0]
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, pkt := range p.got {
		if pkt.PayloadType != p.codec.PayloadType || len(pkt.Payload) == 0 {
			continue
		}
		if bytes.Count(pkt.Payload, []byte{want}) == len(pkt.Payload) {
			n++
		}
	}
	return n
}

// flat is ms of one sample value at 8 kHz: a signal framesOf recognises.
func flat(ms int, v int16) []int16 {
	out := make([]int16, ms*8)
	for i := range out {
		out[i] = v
	}
	return out
}

// levels is the RMS of each audio frame the phone got, from its packet
// from on, decoded with its codec (one decoder over the whole stream, as a
// phone decodes G.722).
func (p *phone) levels(from int) []float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []float64
	dec := p.codec.NewDecoder()
	for i, pkt := range p.got {
		if pkt.PayloadType != p.codec.PayloadType {
			continue
		}
		pcm := dec.Decode(nil, pkt.Payload)
		if i < from {
			continue
		}
		sum := 0.0
		for _, v := range pcm {
			sum += float64(v) * float64(v)
		}
		out = append(out, math.Sqrt(sum/float64(max(len(pcm), 1))))
	}
	return out
}

// loudest is the highest frame level the phone got from packet from on.
func (p *phone) loudest(from int) float64 {
	top := 0.0
	for _, l := range p.levels(from) {
		top = max(top, l)
	}
	return top
}

func (p *phone) setCodec(c media.Codec) {
	p.mu.Lock()
	p.codec, p.enc = c, c.NewEncoder()
	p.mu.Unlock()
}

// heard is the phone's received audio in its codec, decoded as one stream.
func (p *phone) heard() []int16 {
	p.mu.Lock()
	defer p.mu.Unlock()
	dec := p.codec.NewDecoder()
	var pcm []int16
	for _, pkt := range p.got {
		if pkt.PayloadType == p.codec.PayloadType {
			pcm = dec.Decode(pcm, pkt.Payload)
		}
	}
	return pcm
}

func (p *phone) packets() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.got)
}

// payloadsOfType returns the payloads of the packets of one payload type.
func (p *phone) payloadsOfType(pt uint8) [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out [][]byte
	for _, pkt := range p.got {
		if pkt.PayloadType == pt {
			out = append(out, pkt.Payload)
		}
	}
	return out
}

// talk sends n 20 ms frames of the caller to port: a loud tone, or silence.
func (p *phone) talk(port, n int, loud bool) {
	amplitude := 0.0
	if loud {
		amplitude = 9000
	}
	p.talkAt(port, n, amplitude)
}

// talkAt sends n 20 ms frames of a 300 Hz tone of amplitude to port.
func (p *phone) talkAt(port, n int, amplitude float64) { p.tone(port, n, 300, amplitude) }

// tone sends n 20 ms frames of a tone at freq Hz of amplitude to port.
func (p *phone) tone(port, n int, freq, amplitude float64) {
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)))
	pcm := make([]int16, p.codec.FrameSamples)
	for i := 0; i < n; i++ {
		for j := range pcm {
			pcm[j] = int16(amplitude * math.Sin(2*math.Pi*freq*float64(int(p.seq)*p.codec.FrameSamples+j)/float64(p.codec.SampleRate)))
		}
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: p.codec.PayloadType, SequenceNumber: p.seq,
			Timestamp: uint32(p.seq) * p.codec.FrameTimestamp(), SSRC: 0x5eed}, Payload: p.enc.Encode(nil, pcm)}
		p.seq++
		b, _ := pkt.Marshal()
		_, _ = p.conn.WriteToUDP(b, to)
	}
}

// key presses a key as RFC 4733 telephone events: a start, then the end
// packet three times, as phones send it.
func (p *phone) key(port int, digit rune) {
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)))
	event := byte(strings.IndexRune("0123456789*#", digit))
	ts := uint32(p.seq) * p.codec.FrameTimestamp()
	for i, end := range []bool{false, true, true, true} {
		flags, dur := byte(10), uint16(800)
		if end {
			flags |= 0x80
			dur = 1600
		}
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 101, SequenceNumber: p.seq, Timestamp: ts, Marker: i == 0, SSRC: 0x5eed},
			Payload: []byte{event, flags, byte(dur >> 8), byte(dur)}}
		p.seq++
		b, _ := pkt.Marshal()
		_, _ = p.conn.WriteToUDP(b, to)
	}
}

// keysSent decodes the RFC 4733 events the phone got into the keys pressed.
func (p *phone) keysSent() string {
	var keys []byte
	lastEnd := -1
	for i, pl := range p.payloadsOfType(101) {
		if len(pl) < 4 {
			continue
		}
		if pl[1]&0x80 != 0 {
			if lastEnd != i-1 { // the first of an event's end packets
				keys = append(keys, "0123456789*#ABCD"[pl[0]&15])
			}
			lastEnd = i
		}
	}
	return string(keys)
}

// syncBuffer is a log sink for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

type rig struct {
	t      *testing.T
	clk    *clock.Fake
	srv    *realtimetest.Server
	model  *demoDialer
	ports  *media.Ports
	mx     *metrics.Metrics
	logs   *syncBuffer
	b      *Bridge
	call   *rigCall
	phone  *phone
	setup  Setup
	t0     time.Time // the fake clock's start
	hangup context.CancelFunc
	done   chan struct{}
	end    outcome.End // what Handle returned, once done is closed
}

// rigOptions adjust a rig before its call starts.
type rigOptions struct {
	config  func(*Config)
	profile func(*Profile)
	server  func(*realtimetest.Options)
	setup   func(*Setup)
	// dialect of the model session (default GA).
	dialect realtime.Dialect
}

// rigGreetingMS is how long the test peer greets (a tone).
const rigGreetingMS = 400

// newRig builds the call's world; start runs the call.
func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	opts := realtimetest.Options{Greeting: tone24(rigGreetingMS, 440), GreetingText: "Hello, rig caller.", Speed: 8, ChunkMS: 100}
	if o.server != nil {
		o.server(&opts)
	}
	srv := realtimetest.NewServer(opts)
	url, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep, err := realtime.BuildEndpoint(realtime.EndpointConfig{Provider: realtime.Custom, Dialect: o.dialect, URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Truncate(time.Second) // the model's expires_at is on the wall clock
	r := &rig{t: t, srv: srv, clk: clock.NewFake(t0), t0: t0, logs: &syncBuffer{}, mx: metrics.New(),
		call: &rigCall{}, model: &demoDialer{cfg: realtime.DialConfig{Endpoint: ep, Dialect: o.dialect, Logger: zerolog.Nop()}}}
	r.ports, err = media.NewPorts(netip.MustParseAddr("127.0.0.1"), 33000, 33999)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Model: r.model, Ports: r.ports, Clock: r.clk, Metrics: r.mx, ConnectTimeout: 5 * time.Second,
		Log: zerolog.New(r.logs).Level(zerolog.DebugLevel)}
	if o.config != nil {
		o.config(&cfg)
	}
	r.b = New(cfg)
	p := &Profile{Name: "rig", Greeting: true, GreetingPrompt: "Greet the caller.",
		Session: realtime.SessionConfig{Instructions: "You are the rig's agent.",
			TurnDetection: &realtime.TurnDetection{Type: "server_vad", Threshold: 0.5, PrefixPaddingMS: 300, SilenceDurationMS: 500,
				CreateResponse: true, InterruptResponse: true}},
		Tools:           []string{ToolEndCall, ToolTransfer, ToolSendDTMF},
		TransferTargets: map[string]TransferTarget{"operator": {URI: "sip:0@pbx.example"}, "sales": {URI: "sip:sales@pbx.example"}}}
	if o.profile != nil {
		o.profile(p)
	}
	r.phone = newPhone(t, media.PCMU)
	r.setup = Setup{Profile: p, Caller: "+15550100", Called: "100",
		Media: CallMedia{Remote: r.phone.addr(), Codec: media.PCMU, DTMFPayloadType: 101, Signalling: netip.MustParseAddr("127.0.0.1")}}
	if o.setup != nil {
		o.setup(&r.setup)
	}
	t.Cleanup(r.close)
	return r
}

func tone24(ms int, freq float64) []int16 {
	out := make([]int16, ms*24)
	for i := range out {
		out[i] = int16(8000 * math.Sin(2*math.Pi*freq*float64(i)/24000))
	}
	return out
}

// start runs the call: Handle, as the SIP side calls it for a new call.
func (r *rig) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.hangup, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		r.end = r.b.Handle(ctx, r.call, r.setup)
	}()
}

// ended reports whether Handle has returned.
func (r *rig) ended() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// waitFor polls cond in real time, the fake clock standing still: for
// what the model and the sockets do by themselves.
func (r *rig) waitFor(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s; the call asked %v\nlog:\n%s", what, r.call.requests(), r.logs.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// runUntil moves the call's clock on, 20 ms at a time, until cond holds:
// for what the call does as time passes (playout, timers, limits).
func (r *rig) runUntil(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s (fake clock at +%v); the call asked %v\nlog:\n%s", what,
				r.clk.Now().Sub(r.t0), r.call.requests(), r.logs.String())
		}
		r.clk.Advance(20 * time.Millisecond)
		time.Sleep(time.Millisecond) // the call's goroutines take their turn
	}
}

// run moves the call's clock on by d, 20 ms at a time.
func (r *rig) run(d time.Duration) {
	end := r.clk.Now().Add(d)
	for r.clk.Now().Before(end) {
		r.clk.Advance(20 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
}

// answered waits for the call to be answered and returns its RTP port.
func (r *rig) answered() int {
	r.t.Helper()
	r.waitFor("the answer", func() bool { return r.call.saw("Answer") })
	r.call.mu.Lock()
	defer r.call.mu.Unlock()
	return r.call.port
}

// greeted answers the call and plays the greeting to the phone.
func (r *rig) greeted() int {
	r.t.Helper()
	port := r.answered()
	r.runUntil("the greeting to play", func() bool { return r.phone.audio() >= rigGreetingMS/20 })
	return port
}

// finish waits for Handle to return, moving the clock on meanwhile.
func (r *rig) finish() {
	r.t.Helper()
	r.runUntil("the call to end", r.ended)
}

// session returns the model session i (0: the first), once it exists.
func (r *rig) session(i int) *realtimetest.Session {
	r.t.Helper()
	r.waitFor("model session "+strconv.Itoa(i+1), func() bool { return len(r.srv.Sessions()) > i })
	return r.srv.Sessions()[i]
}

// asked waits, moving the clock on, until the session has been asked for
// n responses.
func (r *rig) asked(s *realtimetest.Session, n int) {
	r.t.Helper()
	r.runUntil(strconv.Itoa(n)+" response.create", func() bool { return len(s.ReceivedOfType("response.create")) >= n })
}

// spoken waits, the clock standing still, until the model has finished
// its response n (0: the first): all its audio is then with the call, and
// what the caller hears of it is up to the call.
func (r *rig) spoken(s *realtimetest.Session, n int) {
	r.t.Helper()
	r.waitFor("response "+strconv.Itoa(n+1)+" to be made", func() bool {
		rs := s.Responses()
		return len(rs) > n && rs[n].Status != ""
	})
}

// metric returns the value of one series ("name{labels}" as exposed), 0 if absent.
func (r *rig) metric(series string) float64 {
	rec := httptest.NewRecorder()
	r.mx.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// endedWith reports whether the call ended with o: what Handle returned
// and what the metrics counted.
func (r *rig) endedWith(o outcome.Outcome) bool {
	dir := "inbound"
	if r.setup.Outbound {
		dir = "outbound"
	}
	<-r.done
	if r.end.Outcome != o {
		r.t.Logf("Handle returned %+v, want %s", r.end, o)
		return false
	}
	return r.metric(`voicebot_calls_total{agent="`+r.setup.Profile.Name+`",direction="`+dir+`",outcome="`+string(o)+`"}`) == 1
}

func (r *rig) close() {
	if r.hangup != nil {
		r.hangup()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			r.t.Errorf("Handle did not return after the caller hung up")
		}
	}
	r.srv.Close()
	r.phone.close()
	if n := r.ports.InUse(); n != 0 {
		r.t.Errorf("%d RTP ports still in use after the call", n)
	}
	for _, v := range r.srv.Violations() {
		r.t.Errorf("model protocol: %s", v)
	}
	if r.t.Failed() {
		r.t.Logf("call log:\n%s", r.logs.String())
	}
}
