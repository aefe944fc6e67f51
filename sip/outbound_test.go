package sip

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/internal/testpeer"
	"github.com/voicebot/voicebot/outcome"
	"github.com/voicebot/voicebot/secret"
)

// calling is a UA with p as its trunk "pbx" (account 1001), and a session
// timer of its own when expires is set.
func calling(t *testing.T, setup func(*testpeer.PBX), cfg Config) (*rig, *testpeer.PBX) {
	t.Helper()
	p := newPBX(t, setup)
	cfg.Trunks = []Trunk{{Name: "pbx", Address: p.Addr().String(), Username: "1001", Password: secret.Value(pbxPassword), FromUser: "4000"}}
	return newRig(t, cfg, nil), p
}

// place places a call with req, handled by the rig's bot, and returns what
// the bot records of it.
func (r *rig) place(req PlaceRequest) *callRecord {
	r.t.Helper()
	c, err := r.ua.Place(req, r.handle)
	if err != nil {
		r.t.Fatalf("Place: %v", err)
	}
	rec := r.call()
	if rec.call != c {
		r.t.Fatal("the handler got another call")
	}
	return rec
}

// An outbound call through the trunk: the 407 is answered with digest, the
// answer is told to the handler, the 200 is acknowledged, and the callee's
// BYE ends the call.
func TestOutboundCall(t *testing.T) {
	r, p := calling(t, func(p *testpeer.PBX) { p.Challenge = 407 }, Config{})
	rec := r.place(PlaceRequest{To: "5551234", From: "4001"})
	call := rec.call
	if call.Direction() != Outbound || call.Direction().String() != "outbound" {
		t.Errorf("direction %s", call.Direction())
	}
	if err := rec.answer(t); err != nil {
		t.Fatalf("Answer: %v", err)
	}
	inv := p.Invites()
	if len(inv) != 2 {
		t.Fatalf("%d INVITEs, want 2 (challenged, then with credentials)", len(inv))
	}
	if inv[0].GetHeader("Proxy-Authorization") != nil || inv[1].GetHeader("Proxy-Authorization") == nil {
		t.Error("the credentials are not in the second INVITE only")
	}
	if inv[1].CSeq().SeqNo != inv[0].CSeq().SeqNo+1 || inv[1].CallID().Value() != inv[0].CallID().Value() || inv[1].CallID().Value() != call.ID() {
		t.Error("the second INVITE is not the same call's next request")
	}
	second := inv[1]
	if second.Recipient.User != "5551234" || second.From().Address.User != "4001" || second.Contact() == nil ||
		header(second, "Content-Type") != "application/sdp" || !strings.Contains(string(second.Body()), "m=audio 40000 RTP/AVP 0 8 101") {
		t.Errorf("INVITE:\n%s", second)
	}
	if call.FromUser() != "4001" || call.ToUser() != "5551234" {
		t.Errorf("from %s to %s", call.FromUser(), call.ToUser())
	}
	answered := rec.event(t)
	if answered.Media == nil || answered.Early {
		t.Errorf("event %+v, want the answer", answered)
	}
	pbxRTP := p.RTP.LocalAddr().String()
	if answered.Media.Remote.String() != pbxRTP || call.Media().Codec.Name != "PCMU" || call.State() != "answered" || call.AnsweredAt().IsZero() {
		t.Errorf("media %+v state %s", call.Media(), call.State())
	}
	if call.RemoteSource() != p.Addr() {
		t.Errorf("remote source %v", call.RemoteSource())
	}
	ack := requestFrom(t, p.Requests, "ACK", 2) // the 407's, then the 200's
	if ack.CSeq().SeqNo != second.CSeq().SeqNo || ack.GetHeader("Proxy-Authorization") != nil {
		t.Errorf("ACK of the 200:\n%s", ack)
	}

	p.Bye(r.ua.Addr())
	if why := rec.ended(t); why != EndRemoteBye {
		t.Errorf("ended %q", why)
	}
	<-rec.done
	if n := len(p.Requests("BYE")); n != 0 {
		t.Errorf("%d BYEs for a call the callee ended", n)
	}
}

// Early media (a 183 with SDP) is told to the handler as such while the
// call rings; hanging up then cancels the INVITE.
func TestOutboundEarlyMediaThenHangup(t *testing.T) {
	r, p := calling(t, func(p *testpeer.PBX) { p.EarlyMedia, p.Final = true, 0 }, Config{})
	rec := r.place(PlaceRequest{To: "5551234"})
	early := rec.event(t)
	if early.Media == nil || !early.Early || early.Media.Remote.String() != p.RTP.LocalAddr().String() {
		t.Errorf("event %+v, want early media from the PBX", early)
	}
	if st := rec.call.State(); st != "ringing" {
		t.Errorf("state %s", st)
	}
	if err := rec.call.Hangup(); err != nil {
		t.Errorf("Hangup: %v", err)
	}
	var ce *CallError
	if err := rec.answer(t); !errors.As(err, &ce) || ce.Code != 487 {
		t.Errorf("Answer: %v, want 487", err)
	}
	requestFrom(t, p.Requests, "CANCEL", 1)
	if why := rec.ended(t); why != EndCancelled {
		t.Errorf("ended %q", why)
	}
	if n := len(p.Requests("BYE")); n != 0 {
		t.Errorf("%d BYEs for a call never answered", n)
	}
}

// We hang up an outbound call: BYE through the trunk.
func TestOutboundCallHungUpByUs(t *testing.T) {
	r, p := calling(t, nil, Config{})
	rec := r.place(PlaceRequest{To: "5551234"})
	if err := rec.answer(t); err != nil {
		t.Fatalf("Answer: %v", err)
	}
	if err := rec.call.Hangup(); err != nil {
		t.Errorf("Hangup: %v", err)
	}
	bye := requestFrom(t, p.Requests, "BYE", 1)
	if bye.CallID().Value() != rec.call.ID() || bye.From().Address.User != "4000" {
		t.Errorf("BYE:\n%s", bye)
	}
	if why := rec.ended(t); why != EndLocalBye {
		t.Errorf("ended %q", why)
	}
}

// Calls that do not connect end with their reason and the callee's answer.
func TestOutboundCallsThatDoNotConnect(t *testing.T) {
	r, p := calling(t, nil, Config{})
	t.Run("busy", func(t *testing.T) {
		p.Set(func(p *testpeer.PBX) { p.Final = 486 })
		rec := r.place(PlaceRequest{To: "1"})
		var ce *CallError
		if err := rec.answer(t); !errors.As(err, &ce) || ce.Code != 486 || ce.Error() == "" {
			t.Errorf("Answer: %v", err)
		}
		if why := rec.ended(t); why != EndBusy || rec.call.Failure() == nil || rec.call.Failure().Code != 486 {
			t.Errorf("ended %q, failure %v", why, rec.call.Failure())
		}
		if o := rec.call.Outcome(); o != (outcome.End{Outcome: outcome.Busy, SIPCode: 486, Detail: "Busy Here"}) {
			t.Errorf("outcome %+v", o)
		}
	})
	t.Run("no answer in the ring timeout", func(t *testing.T) {
		p.Set(func(p *testpeer.PBX) { p.Final = 0 })
		before := len(p.Requests("CANCEL"))
		rec := r.place(PlaceRequest{To: "2", RingTimeout: 200 * time.Millisecond})
		if err := rec.answer(t); err == nil || rec.call.Failure().Code != 408 {
			t.Errorf("Answer: %v", err)
		}
		if why := rec.ended(t); why != EndNoAnswer || rec.call.Outcome().Outcome != outcome.NoAnswer || rec.call.Outcome().SIPCode != 408 {
			t.Errorf("ended %q, outcome %+v", why, rec.call.Outcome())
		}
		cancel := requestFrom(t, p.Requests, "CANCEL", before+1)
		if cancel.CallID().Value() != rec.call.ID() {
			t.Error("CANCEL of another call")
		}
	})
	t.Run("cancelled by the handler", func(t *testing.T) {
		p.Set(func(p *testpeer.PBX) { p.Final = 0 })
		before := len(p.Requests("CANCEL"))
		ctx, cancel := context.WithCancel(context.Background())
		answered := make(chan error, 1)
		c, err := r.ua.Place(PlaceRequest{To: "3"}, func(_ context.Context, c *Call) { answered <- c.Answer(ctx, fakeRTPPort) })
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "ringing", func() bool { return c.State() == "ringing" })
		cancel()
		select {
		case err := <-answered:
			if err == nil || c.Failure().Code != 487 {
				t.Errorf("Answer: %v", err)
			}
		case <-time.After(wait):
			t.Fatal("Answer did not return")
		}
		requestFrom(t, p.Requests, "CANCEL", before+1)
		if c.EndReason() != EndCancelled {
			t.Errorf("ended %q", c.EndReason())
		}
	})
	t.Run("declined", func(t *testing.T) {
		p.Set(func(p *testpeer.PBX) { p.Final = 603 })
		rec := r.place(PlaceRequest{To: "4"})
		rec.answer(t)
		if why := rec.ended(t); why != EndDeclined || rec.call.Outcome().Outcome != outcome.Declined || rec.call.Outcome().SIPCode != 603 {
			t.Errorf("ended %q, outcome %+v", why, rec.call.Outcome())
		}
	})
	waitFor(t, "no calls left", func() bool { return r.ua.ActiveCalls() == 0 })
}

// A trunk where nothing answers (a closed port: no response at all) is
// unreachable, with no SIP code, both when the ring timeout comes first
// and, below, when the INVITE transaction gives up: not no_answer.
func TestOutboundDeadTrunkIsUnreachable(t *testing.T) {
	dead, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := dead.LocalAddr().String()
	dead.Close()
	r := newRig(t, Config{Trunks: []Trunk{{Name: "dead", Address: addr}}}, nil)
	rec := r.place(PlaceRequest{To: "5551234", RingTimeout: 300 * time.Millisecond})
	var ce *CallError
	if err := rec.answer(t); !errors.As(err, &ce) || ce.Code != 0 {
		t.Errorf("Answer: %v, want a failure without a code", err)
	}
	if why := rec.ended(t); why != EndUnreachable {
		t.Errorf("ended %q", why)
	}
	if o := rec.call.Outcome(); o.Outcome != outcome.Unreachable || o.SIPCode != 0 || !strings.Contains(o.Detail, addr) {
		t.Errorf("outcome %+v", o)
	}
}

// HangupAs: an answered call ends as the caller of HangupAs says (BYE
// sent); one still ringing is cancelled (CANCEL sent), with its detail.
func TestOutboundHangupAs(t *testing.T) {
	api := outcome.End{Outcome: outcome.APIHungUp, Detail: "hung up through the API"}
	r, p := calling(t, nil, Config{})
	rec := r.place(PlaceRequest{To: "1"})
	if err := rec.answer(t); err != nil {
		t.Fatalf("Answer: %v", err)
	}
	if o := rec.call.Outcome(); !o.Zero() {
		t.Errorf("a call in progress has an outcome: %+v", o)
	}
	if err := rec.call.HangupAs(api); err != nil {
		t.Errorf("HangupAs: %v", err)
	}
	requestFrom(t, p.Requests, "BYE", 1)
	if rec.ended(t); rec.call.Outcome() != api {
		t.Errorf("answered: outcome %+v", rec.call.Outcome())
	}
	p.Set(func(p *testpeer.PBX) { p.Final = 0 })
	rec = r.place(PlaceRequest{To: "2"})
	waitFor(t, "ringing", func() bool { return rec.call.State() == "ringing" })
	_ = rec.call.HangupAs(api)
	rec.answer(t)
	requestFrom(t, p.Requests, "CANCEL", 1)
	if o := rec.call.Outcome(); rec.ended(t) != EndCancelled || o.Outcome != outcome.Cancelled || !strings.Contains(o.Detail, "API") {
		t.Errorf("ringing: outcome %+v", o)
	}
}

// A trunk that wants a longer session timer (422) gets an INVITE asking
// for its Min-SE.
func TestOutboundSessionIntervalTooSmall(t *testing.T) {
	r, p := calling(t, func(p *testpeer.PBX) { p.MinSE = 3600 }, Config{SessionExpires: 1800 * time.Second})
	rec := r.place(PlaceRequest{To: "5551234"})
	if err := rec.answer(t); err != nil {
		t.Fatalf("Answer: %v", err)
	}
	inv := p.Invites()
	if len(inv) != 2 || header(inv[0], "Session-Expires") != "1800" || header(inv[0], "Min-SE") != "90" || header(inv[1], "Session-Expires") != "3600" {
		t.Errorf("INVITEs: %d, Session-Expires %q then %q", len(inv), header(inv[0], "Session-Expires"), header(inv[len(inv)-1], "Session-Expires"))
	}
}

// Without a trunk, a sip: URI is called directly.
func TestOutboundCallToAURI(t *testing.T) {
	p := newPBX(t, nil)
	r := newRig(t, Config{}, nil)
	rec := r.place(PlaceRequest{To: "sip:callee@" + p.Addr().String()})
	if err := rec.answer(t); err != nil {
		t.Fatalf("Answer: %v", err)
	}
	inv := p.Invites()[0]
	if inv.Recipient.User != "callee" || inv.From().Address.User != "voicebot" {
		t.Errorf("INVITE:\n%s", inv)
	}
	if err := rec.call.Hangup(); err != nil {
		t.Errorf("Hangup: %v", err)
	}
	requestFrom(t, p.Requests, "BYE", 1)
}

// Requests Place refuses before sending anything, and capacity.
func TestPlaceRefusals(t *testing.T) {
	r, p := calling(t, nil, Config{Admission: Admission{MaxCalls: 1}})
	nop := func(context.Context, *Call) {}
	for _, req := range []PlaceRequest{
		{To: "5551234", Trunk: "nowhere"},
		{To: "5 <sip:evil>"},
		{To: "5551234", From: "a b"},
	} {
		if _, err := r.ua.Place(req, nop); err == nil {
			t.Errorf("%+v placed", req)
		}
	}
	none := newRig(t, Config{}, nil)
	for _, to := range []string{"5551234", "sip:"} {
		if _, err := none.ua.Place(PlaceRequest{To: to}, nop); err == nil {
			t.Errorf("%q placed without a trunk", to)
		}
	}
	rec := r.place(PlaceRequest{To: "5551234"})
	if err := rec.answer(t); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ua.Place(PlaceRequest{To: "5551235"}, nop); err != ErrAtCapacity {
		t.Errorf("over max_calls: %v", err)
	}
	// An inbound call is refused too.
	res, err := r.caller().Invite("", wait)
	if err != nil || res.StatusCode != 503 {
		t.Errorf("INVITE at capacity: %v %v", res, err)
	}
	if n := len(p.Invites()); n != 1 {
		t.Errorf("%d INVITEs sent", n)
	}
}

// A number as people write it is dialled without its punctuation; a user
// name is left as it is.
func TestDialString(t *testing.T) {
	for in, want := range map[string]string{
		"+1 (555) 010-0100": "+15550100100",
		"555.010.0100":      "5550100100",
		" 0800 123 456 ":    "0800123456",
		"*72#":              "*72#",
		"alice":             "alice",
		"sales-team":        "sales-team",
		"1-800-FLOWERS":     "1-800-FLOWERS",
	} {
		if got := dialString(in); got != want {
			t.Errorf("dialString(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckHeader(t *testing.T) {
	for _, ok := range [][2]string{{"X-Customer-Id", "C-42"}, {"User-to-User", "04a1;encoding=hex"}, {"x-lower", "a\tb"}} {
		if err := CheckHeader(ok[0], ok[1]); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	for _, bad := range [][2]string{{"Via", "x"}, {"Authorization", "x"}, {"X-A b", "x"}, {"X-Id", "a\r\nVia: evil"},
		{"X-Id", "a\x00b"}, {"X-Long", strings.Repeat("a", 1025)}, {"X-", "x"}} {
		if err := CheckHeader(bad[0], bad[1]); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
