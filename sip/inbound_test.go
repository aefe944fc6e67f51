package sip

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// An inbound call from INVITE to the caller's BYE: the 200 OK and its SDP
// answer, what the handler is told of the call, and the end.
func TestInboundCallAnsweredThenCallerHangsUp(t *testing.T) {
	var mu sync.Mutex
	var codes []int
	r := newRig(t, Config{UserAgent: "vb-test", OnResponse: func(code int) { mu.Lock(); codes = append(codes, code); mu.Unlock() }}, nil)
	c := r.caller()
	res, rec := r.established(c, "X-Account: 42", "Allow: INVITE, ACK, BYE, CANCEL, UPDATE")

	if tag, _ := res.To().Params.Get("tag"); tag == "" {
		t.Error("200 OK without a To tag")
	}
	port := strconv.Itoa(int(r.ua.Addr().Port()))
	if ct := res.Contact(); ct == nil || ct.Address.String() != "sip:voicebot@127.0.0.1:"+port {
		t.Errorf("Contact %v", ct)
	}
	for name, want := range map[string]string{"Allow": allowMethods, "Supported": supported, "Content-Type": "application/sdp", "Server": "vb-test"} {
		if got := header(res, name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if res.GetHeader("Session-Expires") != nil {
		t.Error("a session timer nobody asked for")
	}
	body := string(res.Body())
	for _, want := range []string{"c=IN IP4 127.0.0.1", "m=audio 40000 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000", "a=sendrecv"} {
		if !strings.Contains(body, want) {
			t.Errorf("answer lacks %q:\n%s", want, body)
		}
	}

	call := rec.call
	m := call.Media()
	if call.ID() != c.CallID || call.Direction() != Inbound || call.Direction().String() != "inbound" || call.FromUser() != "tester" ||
		call.ToUser() != "bot" || call.ToHeaderUser() != "bot" || call.Header("X-Account") != "42" || call.Header("X-None") != "" ||
		call.Transport() != "UDP" || call.RemoteSource() != c.SIP.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Errorf("the call: id %s dir %s from %s to %s/%s header %q transport %s source %v", call.ID(), call.Direction(), call.FromUser(),
			call.ToUser(), call.ToHeaderUser(), call.Header("X-Account"), call.Transport(), call.RemoteSource())
	}
	if !strings.HasPrefix(call.From(), "sip:tester@") || !strings.HasPrefix(call.To(), "sip:bot@") {
		t.Errorf("From %s To %s", call.From(), call.To())
	}
	if m.Remote != c.RTPAddr() || m.Codec != pcmu || m.DTMFPayloadType != 101 || m.Direction != "sendrecv" || m.OnHold() {
		t.Errorf("media %+v", m)
	}
	if call.State() != "answered" || call.AnsweredAt().IsZero() || call.EndReason() != "" || r.ua.ActiveCalls() != 1 {
		t.Errorf("state %s answered at %v end %q active %d", call.State(), call.AnsweredAt(), call.EndReason(), r.ua.ActiveCalls())
	}

	if code, err := c.Bye(wait); err != nil || code != 200 {
		t.Fatalf("BYE: %d %v", code, err)
	}
	if why := rec.ended(t); why != EndRemoteBye {
		t.Errorf("ended %q, want %q", why, EndRemoteBye)
	}
	<-rec.done
	waitFor(t, "the call counted out", func() bool { return r.ua.ActiveCalls() == 0 })
	if call.State() != "ended" || len(c.RequestsOf("BYE")) != 0 {
		t.Errorf("state %s; %d BYEs sent for a call the caller ended", call.State(), len(c.RequestsOf("BYE")))
	}
	if err := call.Ringing(); err != ErrCallEnded {
		t.Errorf("Ringing on an ended call: %v", err)
	}
	if err := call.Answer(context.Background(), fakeRTPPort); err != ErrCallEnded {
		t.Errorf("Answer on an ended call: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(codes) != "[100 200 200]" {
		t.Errorf("responses reported %v, want 100 (INVITE), 200 (INVITE), 200 (BYE)", codes)
	}
}

// The handler hangs up: a BYE in the dialog reaches the caller, to its
// Contact, with our tag in From and the caller's in To.
func TestInboundCallHungUpByTheHandler(t *testing.T) {
	hangup := make(chan error, 1)
	r := newRig(t, Config{}, func(ctx context.Context, c *Call, rec *callRecord) {
		rec.answered <- c.Answer(ctx, fakeRTPPort)
		hangup <- c.Hangup()
		if err := c.Hangup(); err != nil { // twice: nothing more
			t.Errorf("second Hangup: %v", err)
		}
	})
	c := r.caller()
	res, rec := r.established(c)
	select {
	case err := <-hangup:
		if err != nil {
			t.Errorf("Hangup: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Hangup did not return")
	}
	bye := requestFrom(t, c.RequestsOf, "BYE", 1)
	ourTag, _ := res.To().Params.Get("tag")
	if tag, _ := bye.From().Params.Get("tag"); tag != ourTag {
		t.Errorf("BYE From tag %q, want ours %q", tag, ourTag)
	}
	if tag, _ := bye.To().Params.Get("tag"); tag != c.FromTag {
		t.Errorf("BYE To tag %q, want the caller's %q", tag, c.FromTag)
	}
	if bye.CallID().Value() != c.CallID || bye.Recipient.User != "tester" {
		t.Errorf("BYE %s", bye.StartLine())
	}
	if why := rec.ended(t); why != EndLocalBye {
		t.Errorf("ended %q", why)
	}
}

// A handler that just returns after answering: the UA hangs up for it.
func TestHandlerReturningEndsTheCall(t *testing.T) {
	r := newRig(t, Config{}, func(ctx context.Context, c *Call, rec *callRecord) { rec.answered <- c.Answer(ctx, fakeRTPPort) })
	c := r.caller()
	_, rec := r.established(c)
	requestFrom(t, c.RequestsOf, "BYE", 1)
	if why := rec.ended(t); why != EndLocalBye {
		t.Errorf("ended %q", why)
	}
}

// Ringing sends 180 with our tag and Contact; Reject a final answer with the
// code and reason given, which the caller acknowledges.
func TestRingingThenReject(t *testing.T) {
	r := newRig(t, Config{}, func(ctx context.Context, c *Call, rec *callRecord) {
		if err := c.Ringing(); err != nil {
			t.Errorf("Ringing: %v", err)
		}
		if c.State() != "ringing" {
			t.Errorf("state %s", c.State())
		}
		if err := c.Reject(486, "Busy Here"); err != nil {
			t.Errorf("Reject: %v", err)
		}
		if err := c.Reject(500, "Again"); err != nil {
			t.Errorf("a second Reject: %v", err)
		}
	})
	p := r.raw()
	p.send(p.request("INVITE", "ring1", "", 1, "application/sdp", offer(p.addr(), "sendrecv", 1)))
	trying := p.response(100)
	if tag, _ := trying.To().Params.Get("tag"); tag != "" {
		t.Errorf("100 Trying with a To tag %q", tag)
	}
	ringing := p.response(180)
	tag, _ := ringing.To().Params.Get("tag")
	if tag == "" || ringing.Contact() == nil {
		t.Errorf("180 without a To tag or Contact:\n%s", ringing)
	}
	busy := p.response(486)
	if t2, _ := busy.To().Params.Get("tag"); t2 != tag || busy.Reason != "Busy Here" {
		t.Errorf("486 %q with tag %q, want the 180's %q", busy.Reason, t2, tag)
	}
	p.ackFailure(busy)
	rec := r.call()
	<-rec.done
	if why := rec.ended(t); why != EndRejected {
		t.Errorf("ended %q", why)
	}
	if n := r.ua.Rejections(); len(n) != 0 {
		t.Errorf("a call the handler rejected counted as refused by admission: %v", n)
	}
}

// A handler that returns without answering gets the call refused with 500.
func TestHandlerThatDoesNotAnswer(t *testing.T) {
	r := newRig(t, Config{}, func(context.Context, *Call, *callRecord) {})
	c := r.caller()
	res, err := c.Invite("", wait)
	if err != nil || res.StatusCode != 500 {
		t.Fatalf("INVITE: %v %v, want 500", res, err)
	}
	rec := r.call()
	if why := rec.ended(t); why != EndRejected {
		t.Errorf("ended %q", why)
	}
}

// A handler that panics ends its call as one that returns would: an
// unanswered call gets 500, an answered one a BYE; the reason is error, and
// the UA goes on.
func TestHandlerPanics(t *testing.T) {
	r := newRig(t, Config{}, func(ctx context.Context, c *Call, rec *callRecord) {
		if c.Header("X-Answer") != "" {
			rec.answered <- c.Answer(ctx, fakeRTPPort)
		}
		panic("handler bug")
	})
	c := r.caller()
	res, err := c.Invite("", wait)
	if err != nil || res.StatusCode != 500 {
		t.Fatalf("INVITE to a handler that panics: %v %v, want 500", res, err)
	}
	if why := r.call().ended(t); why != EndError {
		t.Errorf("unanswered: ended %q, want %q", why, EndError)
	}
	c2 := r.caller()
	_, rec := r.established(c2, "X-Answer: yes")
	requestFrom(t, c2.RequestsOf, "BYE", 1)
	if why := rec.ended(t); why != EndError {
		t.Errorf("answered: ended %q, want %q", why, EndError)
	}
	if !strings.Contains(r.logs.String(), "sip: call handler panicked") {
		t.Error("the panic was not logged")
	}
}

// CANCEL before the answer: 200 to the CANCEL, 487 to the INVITE, and the
// handler's context ends.
func TestCancelBeforeAnswer(t *testing.T) {
	r := newRig(t, Config{}, func(ctx context.Context, c *Call, rec *callRecord) {
		_ = c.Ringing()
		<-ctx.Done()
		if err := c.Answer(ctx, fakeRTPPort); err != ErrCallEnded {
			t.Errorf("Answer after CANCEL: %v", err)
		}
	})
	p := r.raw()
	p.send(p.request("INVITE", "cancel1", "", 1, "application/sdp", offer(p.addr(), "sendrecv", 1)))
	p.response(180)
	rec := r.call()
	p.send(p.request("CANCEL", "cancel1", "", 1, "", ""))
	seen := map[int]*sip.Response{}
	for len(seen) < 2 {
		res, ok := p.read(wait).(*sip.Response)
		if !ok {
			t.Fatalf("after CANCEL got %v", seen)
		}
		if res.StatusCode >= 200 {
			seen[res.StatusCode] = res
		}
	}
	if seen[200] == nil || seen[200].CSeq().MethodName != sip.CANCEL || seen[487] == nil || seen[487].CSeq().MethodName != sip.INVITE {
		t.Errorf("got %v, want 200 (CANCEL) and 487 (INVITE)", seen)
	}
	p.ackFailure(seen[487])
	if why := rec.ended(t); why != EndCancelled {
		t.Errorf("ended %q", why)
	}
	<-rec.done
}

// A caller that never ACKs the 200 OK: it is retransmitted, and once the
// ACK timeout is over the UA hangs up with a BYE.
func TestNoAckEndsTheCall(t *testing.T) {
	r := newRig(t, Config{AckTimeout: time.Second}, nil)
	c := r.caller()
	if err := c.SendRaw(c.Request("INVITE", "application/sdp", c.Offer())); err != nil {
		t.Fatal(err)
	}
	rec := r.call()
	first, err := c.FinalFor("INVITE", wait)
	if err != nil || first.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", first, err)
	}
	c.ToTag, _ = first.To().Params.Get("tag")
	again, err := c.FinalFor("INVITE", wait)
	if err != nil || again.StatusCode != 200 || string(again.Body()) != string(first.Body()) {
		t.Fatalf("no retransmission of the 200 OK: %v %v", again, err)
	}
	if err := rec.answer(t); err != errNoAck {
		t.Errorf("Answer: %v, want %v", err, errNoAck)
	}
	requestFrom(t, c.RequestsOf, "BYE", 1)
	if why := rec.ended(t); why != EndAckTimeout {
		t.Errorf("ended %q", why)
	}
}

// The INVITEs refused before any handler sees them, each with its code.
func TestInviteRefusals(t *testing.T) {
	r := newRig(t, Config{}, nil)
	g729 := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"
	video := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\n"
	for _, tc := range []struct {
		name, ct, body string
		extra          []string
		code           int
		header, value  string // a header the answer must carry (value: a substring)
	}{
		{"not sdp", "text/plain", "hello", nil, 415, "Accept", "application/sdp"},
		{"unparseable sdp", "application/sdp", "this is not sdp", nil, 400, "Warning", "malformed SDP"},
		{"no audio", "application/sdp", video, nil, 488, "Warning", "no usable audio"},
		{"no common codec", "application/sdp", g729, nil, 488, "Warning", "no common codec"},
		{"no body", "", "", nil, 488, "", ""},
		{"an extension we lack", "application/sdp", "", []string{"Require: 100rel, timer"}, 420, "Unsupported", "100rel"},
		{"Session-Expires below Min-SE", "application/sdp", "", []string{"Supported: timer", "Session-Expires: 30"}, 422, "Min-SE", "90"},
		{"Session-Expires garbage", "application/sdp", "", []string{"Session-Expires: soon"}, 400, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := r.caller()
			body := tc.body
			if tc.ct == "application/sdp" && body == "" {
				body = c.Offer()
			}
			if err := c.SendRaw(c.Request("INVITE", tc.ct, body, tc.extra...)); err != nil {
				t.Fatal(err)
			}
			res, err := c.FinalFor("INVITE", wait)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tc.code || res.Reason == "" {
				t.Errorf("%d %q, want %d with a reason", res.StatusCode, res.Reason, tc.code)
			}
			if tc.header != "" && !strings.Contains(header(res, tc.header), tc.value) {
				t.Errorf("%s: %q, want it to say %q", tc.header, header(res, tc.header), tc.value)
			}
		})
	}
	r.noCall()
}

// Requests outside any call: OPTIONS is answered with what we do, methods
// we know but do not serve get 405, unknown ones 501, in-dialog requests of
// a dialog we do not have 481, and a CANCEL of nothing 481.
func TestRequestsOutsideACall(t *testing.T) {
	r := newRig(t, Config{}, nil)
	c := r.caller()
	for _, junk := range []string{"", "\x00\x01\x02", "INVITE sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n", strings.Repeat("A", 4000)} {
		_ = c.SendRaw([]byte(junk))
	}
	for _, tc := range []struct {
		method string
		code   int
		allow  bool
	}{{"OPTIONS", 200, true}, {"REGISTER", 405, true}, {"SUBSCRIBE", 405, true}, {"FOOBAR", 501, true}, {"BYE", 481, false}, {"CANCEL", 481, false}} {
		res, err := c.Send(tc.method, "", "", wait)
		if err != nil {
			t.Fatalf("%s: %v", tc.method, err)
		}
		if res.StatusCode != tc.code {
			t.Errorf("%s: %d, want %d", tc.method, res.StatusCode, tc.code)
		}
		if got := header(res, "Allow"); tc.allow && got != allowMethods {
			t.Errorf("%s: Allow %q", tc.method, got)
		}
		if tc.method == "OPTIONS" && (header(res, "Accept") != "application/sdp" || header(res, "Supported") != supported) {
			t.Errorf("OPTIONS: Accept %q Supported %q", header(res, "Accept"), header(res, "Supported"))
		}
	}
	// In-dialog requests of a dialog the UA does not have.
	c.ToTag = "no-such-dialog"
	for _, m := range []string{"INVITE", "UPDATE", "INFO", "NOTIFY", "REFER", "BYE"} {
		body, ct := "", ""
		if m == "INVITE" {
			body, ct = c.Offer(), "application/sdp"
		}
		if res, err := c.Send(m, ct, body, wait); err != nil || res.StatusCode != 481 {
			t.Errorf("%s in an unknown dialog: %v %v", m, res, err)
		}
	}
	r.noCall()
	// And a call still goes through.
	c2 := r.caller()
	_, rec := r.established(c2)
	if code, err := c2.Bye(wait); err != nil || code != 200 {
		t.Errorf("BYE: %d %v", code, err)
	}
	rec.ended(t)
}

// Draining: calls in progress go on, new INVITEs and OPTIONS get 503 with
// Retry-After, and the UA stops once its context ends, hanging up the call
// that was left.
func TestDrain(t *testing.T) {
	r := newRig(t, Config{RetryAfter: 90 * time.Second}, nil)
	c := r.caller()
	_, rec := r.established(c)
	if r.ua.Draining() {
		t.Fatal("draining before Drain")
	}
	r.ua.Drain()
	r.ua.Drain()
	if !r.ua.Draining() {
		t.Fatal("not draining after Drain")
	}
	res, err := r.caller().Send("OPTIONS", "", "", wait)
	if err != nil || res.StatusCode != 503 || header(res, "Retry-After") != "90" {
		t.Errorf("OPTIONS while draining: %v %v", res, err)
	}
	res, err = r.caller().Invite("", wait)
	if err != nil || res.StatusCode != 503 || header(res, "Retry-After") != "90" || !strings.Contains(res.Reason, "shutting down") {
		t.Errorf("INVITE while draining: %v %v", res, err)
	}
	if got := r.ua.Rejections()[RejectShuttingDown]; got != 1 {
		t.Errorf("%d refusals counted as shutting down", got)
	}
	if _, err := r.ua.Place(PlaceRequest{To: "sip:x@127.0.0.1:9"}, func(context.Context, *Call) {}); err != ErrShuttingDown {
		t.Errorf("Place while draining: %v", err)
	}
	if rec.call.EndReason() != "" {
		t.Fatalf("the call in progress ended on Drain: %s", rec.call.EndReason())
	}
	r.stop()
	if why := rec.ended(t); why != EndShutdown {
		t.Errorf("ended %q, want %q", why, EndShutdown)
	}
	if len(c.RequestsOf("BYE")) != 1 {
		t.Errorf("%d BYEs at shutdown", len(c.RequestsOf("BYE")))
	}
}

// A request whose CSeq method is not its own is refused with 400 before
// any handler sees it; an ACK so is dropped.
func TestCSeqMethodMismatch(t *testing.T) {
	r := newRig(t, Config{}, nil)
	p := r.raw()
	inv := p.request("INVITE", "mismatch", "", 1, "application/sdp", offer(p.addr(), "sendrecv", 1))
	p.send(strings.Replace(inv, "CSeq: 1 INVITE", "CSeq: 1 BYE", 1))
	res, ok := p.read(wait).(*sip.Response)
	if !ok || res.StatusCode != 400 || !strings.Contains(res.Reason, "CSeq") {
		t.Fatalf("got %v, want 400", res)
	}
	r.noCall()
}

// In-dialog requests far out of order get 500 with Retry-After; the call
// goes on.
func TestInDialogCSeqOutOfOrder(t *testing.T) {
	r := newRig(t, Config{}, nil)
	c := r.caller()
	_, rec := r.established(c)
	for i := 0; i < 100; i++ { // the dialog's CSeq climbs
		c.Request("INFO", "", "")
	}
	if res, err := c.Send("INFO", "", "", wait); err != nil || res.StatusCode != 200 {
		t.Fatalf("INFO: %v %v", res, err)
	}
	stale := regexp.MustCompile(`CSeq: \d+ INFO`).ReplaceAllString(string(c.Request("INFO", "", "")), "CSeq: 2 INFO")
	if err := c.SendRaw([]byte(stale)); err != nil {
		t.Fatal(err)
	}
	res, err := c.FinalFor("INFO", wait)
	if err != nil || res.StatusCode != 500 || header(res, "Retry-After") == "" {
		t.Errorf("stale INFO: %v %v, want 500 with Retry-After", res, err)
	}
	if rec.call.EndReason() != "" {
		t.Error("the call ended")
	}
}
