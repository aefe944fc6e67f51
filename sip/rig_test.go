package sip

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/clock"
	"github.com/voicebot/voicebot/internal/testpeer"
)

// The SIP behaviour tests run a real UA on loopback with a Handler double
// (bot) that answers or rejects as told, does no media and records what
// each call saw, and drive it with internal/testpeer's Caller and PBX, which
// write SIP by hand and record what arrives on the wire. Time-dependent
// logic runs on a fake clock the test moves (tick).

// wait bounds every wait of these tests; none of them is a timing assertion.
const wait = 5 * time.Second

// fakeRTPPort is the RTP port the bot answers with: nothing listens there,
// as the bot does no media.
const fakeRTPPort = 40000

// tick is a fake clock that also records the deadline of every timer made
// on it, so a test can wait until the code under test is waiting before
// moving the clock.
type tick struct {
	*clock.Fake
	mu        sync.Mutex
	deadlines []time.Time
	seen      int // deadlines already matched by await
}

var start = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

func newTick() *tick { return &tick{Fake: clock.NewFake(start)} }

func (k *tick) NewTimer(d time.Duration) clock.Timer {
	at := k.Now().Add(d)
	k.mu.Lock()
	k.deadlines = append(k.deadlines, at)
	k.mu.Unlock()
	return k.Fake.NewTimer(d)
}

// await waits until a timer due at `at` has been made since the last
// await, and returns.
func (k *tick) await(t *testing.T, at time.Time) {
	t.Helper()
	waitFor(t, "a timer due at +"+at.Sub(start).String(), func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		for i := k.seen; i < len(k.deadlines); i++ {
			if k.deadlines[i].Equal(at) {
				k.seen = i + 1
				return true
			}
		}
		return false
	})
}

// next waits for the next timer made since the last await or next and
// returns its deadline.
func (k *tick) next(t *testing.T) time.Time {
	t.Helper()
	var at time.Time
	waitFor(t, "a timer", func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.seen < len(k.deadlines) {
			at = k.deadlines[k.seen]
			k.seen++
			return true
		}
		return false
	})
	return at
}

// behaviour is what the bot does with a call; rec is where it records.
type behaviour func(ctx context.Context, c *Call, rec *callRecord)

// callRecord is what the bot saw of one call.
type callRecord struct {
	call     *Call
	events   chan Event
	answered chan error    // Answer's result
	done     chan struct{} // closed when the handler has returned
}

// event waits for the call's next event.
func (r *callRecord) event(t *testing.T) Event {
	t.Helper()
	select {
	case e := <-r.events:
		return e
	case <-time.After(wait):
		t.Fatal("no event")
		return Event{}
	}
}

// answer waits for Answer's result.
func (r *callRecord) answer(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.answered:
		return err
	case <-time.After(wait):
		t.Fatal("Answer did not return")
		return nil
	}
}

// ended waits until the call has ended and returns why.
func (r *callRecord) ended(t *testing.T) EndReason {
	t.Helper()
	select {
	case <-r.call.Context().Done():
	case <-time.After(wait):
		t.Fatalf("the call did not end (state %s)", r.call.State())
	}
	return r.call.EndReason()
}

// answerAndHold answers the call and keeps it until it ends.
func answerAndHold(ctx context.Context, c *Call, rec *callRecord) {
	err := c.Answer(ctx, fakeRTPPort)
	rec.answered <- err
	if err == nil {
		<-ctx.Done()
	}
}

// rig is a UA under test with its bot, clock and log, and the peers a test
// made, which it closes after the UA has stopped.
type rig struct {
	t      *testing.T
	ua     *UA
	clk    *tick
	logs   *syncBuffer
	calls  chan *callRecord
	behave behaviour

	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	mu     sync.Mutex
	peers  []interface{ Close() }
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

// newRig starts a UA on 127.0.0.1 (UDP, an ephemeral port, PCMU and PCMA,
// the fake clock) with cfg's other settings, whose calls go to behave
// (answerAndHold when nil).
func newRig(t *testing.T, cfg Config, behave behaviour) *rig {
	t.Helper()
	if !cfg.Listen.IsValid() {
		cfg.Listen = netip.MustParseAddrPort("127.0.0.1:0")
	}
	if len(cfg.Transports) == 0 {
		cfg.Transports = []string{"udp"}
	}
	if len(cfg.Codecs) == 0 {
		cfg.Codecs = []Codec{pcmu, pcma}
	}
	r := &rig{t: t, logs: &syncBuffer{}, calls: make(chan *callRecord, 64), behave: behave, done: make(chan error, 1)}
	if cfg.Clock == nil {
		r.clk = newTick()
		cfg.Clock = r.clk
	}
	if r.behave == nil {
		r.behave = answerAndHold
	}
	cfg.Log = zerolog.New(r.logs).Level(zerolog.DebugLevel)
	ua, err := New(cfg, r.handle)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r.ua = ua
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- ua.Serve(ctx) }()
	select {
	case <-ua.Ready():
	case err := <-r.done:
		cancel()
		t.Fatalf("Serve: %v", err)
	}
	t.Cleanup(r.stop)
	return r
}

func (r *rig) handle(ctx context.Context, c *Call) {
	rec := &callRecord{call: c, events: make(chan Event, 64), answered: make(chan error, 1), done: make(chan struct{})}
	c.OnEvent(func(e Event) {
		select {
		case rec.events <- e:
		default:
			r.t.Errorf("event dropped: %+v", e)
		}
	})
	defer close(rec.done)
	r.calls <- rec
	r.behave(ctx, c, rec)
}

// stop stops the UA (its calls end, with BYEs to the peers still there),
// then closes the peers.
func (r *rig) stop() {
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				r.t.Errorf("Serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			r.t.Error("the UA did not stop within 15 s")
		}
		r.mu.Lock()
		peers := r.peers
		r.mu.Unlock()
		for _, p := range peers {
			p.Close()
		}
		if r.t.Failed() {
			r.t.Logf("UA log:\n%s", r.logs.String())
		}
	})
}

// call waits for the next call handed to the bot.
func (r *rig) call() *callRecord {
	r.t.Helper()
	select {
	case rec := <-r.calls:
		return rec
	case <-time.After(wait):
		r.t.Fatal("no call reached the handler")
		return nil
	}
}

// noCall checks that no call reached the handler.
func (r *rig) noCall() {
	r.t.Helper()
	select {
	case rec := <-r.calls:
		r.t.Errorf("a call reached the handler: %s from %s", rec.call.ID(), rec.call.From())
	default:
	}
}

// caller is a new testpeer.Caller aimed at the UA.
func (r *rig) caller() *testpeer.Caller {
	r.t.Helper()
	c, err := testpeer.New(r.ua.Addr())
	if err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.peers = append(r.peers, c)
	r.mu.Unlock()
	return c
}

// newPBX starts a testpeer.PBX (registrar and callee) for account 1001.
// Start it before the rig whose config names it: cleanups run last first,
// so it is closed after the UA has stopped (and un-registered).
func newPBX(t *testing.T, setup func(*testpeer.PBX)) *testpeer.PBX {
	t.Helper()
	p, err := testpeer.NewPBX("1001", pbxPassword)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	if setup != nil {
		p.Set(setup)
	}
	return p
}

const pbxPassword = "pbx-password-xyzzy"

// established places a call from c, waits for the bot to answer it and
// for the caller's ACK to reach the UA, and returns both sides.
func (r *rig) established(c *testpeer.Caller, extra ...string) (*sip.Response, *callRecord) {
	r.t.Helper()
	res, err := c.Invite("", wait, extra...)
	if err != nil || res.StatusCode != 200 {
		r.t.Fatalf("INVITE: %v %v", res, err)
	}
	rec := r.call()
	if err := rec.answer(r.t); err != nil {
		r.t.Fatalf("Answer: %v", err)
	}
	return res, rec
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// requestFrom waits until a peer has received n requests of method from
// the UA (of lists them: a Caller's RequestsOf, a PBX's Requests) and
// returns the last.
func requestFrom(t *testing.T, of func(method string) []*sip.Request, method string, n int) *sip.Request {
	t.Helper()
	var got []*sip.Request
	waitFor(t, method+" from the UA", func() bool {
		got = of(method)
		return len(got) >= n
	})
	return got[n-1]
}

// header is a message's header value, "" when absent.
func header(m interface{ GetHeader(string) sip.Header }, name string) string {
	if h := m.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// rawPeer is a bare UDP socket: it sends whatever bytes it is given (the
// broken messages a Caller will not write) and shows every message that
// comes back, provisional answers included.
type rawPeer struct {
	t      *testing.T
	conn   *net.UDPConn
	target netip.AddrPort
}

func (r *rig) raw() *rawPeer {
	r.t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		r.t.Fatal(err)
	}
	p := &rawPeer{t: r.t, conn: conn, target: r.ua.Addr()}
	r.mu.Lock()
	r.peers = append(r.peers, p)
	r.mu.Unlock()
	return p
}

func (p *rawPeer) Close() { p.conn.Close() }

func (p *rawPeer) addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (p *rawPeer) send(msg string) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDPAddrPort([]byte(msg), p.target); err != nil {
		p.t.Fatal(err)
	}
}

// read returns the next SIP message that arrives within timeout, nil if
// none does; datagrams that do not parse are skipped.
func (p *rawPeer) read(timeout time.Duration) sip.Message {
	buf := make([]byte, 65535)
	deadline := time.Now().Add(timeout)
	for {
		_ = p.conn.SetReadDeadline(deadline)
		n, _, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return nil
		}
		if m, err := sip.ParseMessage(append([]byte(nil), buf[:n]...)); err == nil {
			return m
		}
	}
}

// response waits for the next response with code (skipping others).
func (p *rawPeer) response(code int) *sip.Response {
	p.t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if res, ok := p.read(time.Until(deadline)).(*sip.Response); ok && res.StatusCode == code {
			return res
		}
	}
	p.t.Fatalf("no %d", code)
	return nil
}

// request writes a request from the raw peer: method to the UA in the
// call callID, with the To tag (none when ""), CSeq, extra header lines, and
// a body of type ct.
func (p *rawPeer) request(method, callID, toTag string, cseq int, ct, body string, extra ...string) string {
	var b strings.Builder
	to := "<sip:bot@" + p.target.String() + ">"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	branch := strings.ToLower(method)
	if method == "CANCEL" {
		branch = "invite" // a CANCEL names the INVITE's transaction
	}
	fmt.Fprintf(&b, "%s sip:bot@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s-%d-%s;rport\r\n", method, p.target, p.addr(), callID, cseq, branch)
	fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: <sip:raw@127.0.0.1>;tag=raw-%s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\n", callID, to, callID, cseq, method)
	fmt.Fprintf(&b, "Contact: <sip:raw@%s>\r\n", p.addr())
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	if ct != "" {
		fmt.Fprintf(&b, "Content-Type: %s\r\n", ct)
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.String()
}

// offer is an SDP offer of PCMU and telephone-event with RTP at a.
func offer(a netip.AddrPort, direction string, version int) string {
	return fmt.Sprintf("v=0\r\no=peer 1 %d IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=%s\r\n",
		version, a.Addr(), a.Addr(), a.Port(), direction)
}

// ackFailure acknowledges a non-2xx final answer to an INVITE the raw peer
// sent: in the INVITE's transaction (its branch), with the answer's To.
func (p *rawPeer) ackFailure(res *sip.Response) {
	p.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "ACK sip:bot@%s SIP/2.0\r\nVia: %s\r\nMax-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\n", p.target, res.Via().Value(), res.From().Value(), res.To().Value())
	fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d ACK\r\nContent-Length: 0\r\n\r\n", res.CallID().Value(), res.CSeq().SeqNo)
	p.send(b.String())
}

// send sends an in-dialog request from c and returns its final answer: the
// one with the request's CSeq (a retransmitted answer to an earlier request
// is skipped).
func send(t *testing.T, c *testpeer.Caller, method, ct, body string, extra ...string) *sip.Response {
	t.Helper()
	req := c.Request(method, ct, body, extra...)
	msg, err := sip.ParseMessage(req)
	if err != nil {
		t.Fatal(err)
	}
	seq := msg.(*sip.Request).CSeq().SeqNo
	if err := c.SendRaw(req); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(wait)
	for {
		res, err := c.FinalFor(method, time.Until(deadline))
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if res.CSeq().SeqNo == seq {
			return res
		}
	}
}

// sendTaken is send, tried again while the answer is 491: the UA may not
// yet have finished with the previous INVITE of the dialog when the next
// arrives (each request runs in a goroutine of its own).
func sendTaken(t *testing.T, c *testpeer.Caller, method, ct, body string, extra ...string) *sip.Response {
	t.Helper()
	var res *sip.Response
	waitFor(t, method+" taken", func() bool {
		res = send(t, c, method, ct, body, extra...)
		return res.StatusCode != 491
	})
	return res
}
