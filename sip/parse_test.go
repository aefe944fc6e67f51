package sip

import (
	"os"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goroutines left: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

func TestParseSipfrag(t *testing.T) {
	for body, want := range map[string]int{"SIP/2.0 200 OK\r\n": 200, "SIP/2.0 100 Trying": 100, "sip/2.0 486 Busy Here\r\nVia: x\r\n": 486} {
		if got, ok := parseSipfrag([]byte(body)); !ok || got.code != want {
			t.Errorf("%q: %d %v", body, got.code, ok)
		}
	}
	for _, bad := range []string{"", "HTTP/1.1 200 OK", "SIP/2.0 OK", "SIP/2.0 99 Low", "SIP/2.0 700 High"} {
		if got, ok := parseSipfrag([]byte(bad)); ok {
			t.Errorf("%q parsed as %d", bad, got.code)
		}
	}
}

func TestGrantedExpires(t *testing.T) {
	ours := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "1001", Host: "127.0.0.1", Port: 5060}}
	parse := func(s string) *sip.Response {
		m, err := sip.ParseMessage([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return m.(*sip.Response)
	}
	head := "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\nFrom: <sip:1001@pbx>;tag=a\r\nTo: <sip:1001@pbx>;tag=b\r\nCall-ID: c\r\nCSeq: 2 REGISTER\r\n"
	// Another device's binding and ours, in one header; ours says 120.
	res := parse(head + "Contact: <sip:1001@10.0.0.9:5062>;expires=3600, <sip:1001@127.0.0.1:5060>;expires=120\r\nExpires: 900\r\nContent-Length: 0\r\n\r\n")
	if got := grantedExpires(res, ours, time.Hour); got != 120*time.Second {
		t.Errorf("granted %v, want 120s from our Contact", got)
	}
	res = parse(head + "Expires: 900\r\nContent-Length: 0\r\n\r\n")
	if got := grantedExpires(res, ours, time.Hour); got != 900*time.Second {
		t.Errorf("granted %v, want 900s from Expires", got)
	}
	res = parse(head + "Content-Length: 0\r\n\r\n")
	if got := grantedExpires(res, ours, time.Hour); got != time.Hour {
		t.Errorf("granted %v, want what was asked", got)
	}
}

func TestRetryDelay(t *testing.T) {
	for failures, want := range []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second} {
		for i := 0; i < 20; i++ {
			if d := retryDelay(failures, 0); d < want*8/10 || d > want*12/10 {
				t.Fatalf("after %d failures waited %v, want %v ±20%%", failures, d, want)
			}
		}
	}
	if d := retryDelay(30, 0); d > 6*time.Minute {
		t.Errorf("backoff grew to %v", d)
	}
	if d := retryDelay(0, time.Minute); d != time.Minute {
		t.Errorf("Retry-After of 1 min gave %v", d)
	}
	if d := refreshAfter(time.Hour); d != 51*time.Minute {
		t.Errorf("refresh of a 1 h registration after %v", d)
	}
}

// FuzzSIPMessage runs every reader of ours over whatever sipgo parses: the
// session-timer and option-tag headers, registrar Contacts, NOTIFY and INFO
// bodies. None may panic, and what they accept must be sane.
func FuzzSIPMessage(f *testing.F) {
	f.Add([]byte("INVITE sip:bot@x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:bot@x>\r\nCall-ID: 1\r\nCSeq: 1 INVITE\r\n" +
		"Session-Expires: 1800;refresher=uac\r\nMin-SE: 90\r\nSupported: timer\r\nRequire: timer, 100rel\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: 1\r\nCSeq: 2 REGISTER\r\n" +
		"Contact: <sip:1001@127.0.0.1:5060>;expires=60, \"x,y\" <sip:1001@h>;expires=5\r\nExpires: 30\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("NOTIFY sip:v@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:v@h>;tag=2\r\nCall-ID: 1\r\nCSeq: 3 NOTIFY\r\n" +
		"Event: refer\r\nContent-Type: message/sipfrag\r\nContent-Length: 16\r\n\r\nSIP/2.0 200 OK\r\n"))
	f.Add([]byte("INFO sip:v@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:v@h>;tag=2\r\nCall-ID: 1\r\nCSeq: 4 INFO\r\n" +
		"Content-Type: application/dtmf-relay\r\nContent-Length: 26\r\n\r\nSignal=5\r\nDuration=160\r\n"))
	ours := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "1001", Host: "127.0.0.1", Port: 5060}}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := sip.ParseMessage(data)
		if err != nil {
			return
		}
		var h headered
		switch m := msg.(type) {
		case *sip.Request:
			h = m
			_ = unsupportedRequire(m)
		case *sip.Response:
			h = m
			if d := grantedExpires(m, ours, time.Hour); d < 0 {
				t.Fatalf("negative lifetime %v", d)
			}
		default:
			return
		}
		if th, err := parseTimerHeaders(h); err == nil {
			if th.expires < 0 || th.minSE < 0 || (th.refresher != "" && th.refresher != "uac" && th.refresher != "uas") {
				t.Fatalf("accepted %+v", th)
			}
			if tm, refresher, err := timerForRequest(th, sessionTimer{}, 1800*time.Second, 90*time.Second, time.Unix(0, 0)); err == nil && tm.interval > 0 {
				if tm.interval < 90*time.Second || (refresher != "uac" && refresher != "uas") {
					t.Fatalf("negotiated %+v %q", tm, refresher)
				}
			}
		}
		body := msg.Body()
		if frag, ok := parseSipfrag(body); ok && (frag.code < 100 || frag.code > 699) {
			t.Fatalf("sipfrag code %d", frag.code)
		}
		if d, ok := parseDTMFRelay(string(body)); ok && !containsRune("0123456789*#ABCD", d) {
			t.Fatalf("DTMF key %q", d)
		}
	})
}

func containsRune(s string, r rune) bool {
	for _, c := range s {
		if c == r {
			return true
		}
	}
	return false
}

func TestInDialogCSeqOrder(t *testing.T) {
	d := &dialog{}
	req := func(n uint32) *sip.Request {
		r := sip.NewRequest(sip.INFO, sip.Uri{Host: "x"})
		r.AppendHeader(&sip.CSeqHeader{SeqNo: n, MethodName: sip.INFO})
		return r
	}
	for _, c := range []struct {
		seq  uint32
		want bool
	}{{1000, true}, {1002, true}, {1001, true}, {990, true}, {900, false}, {1003, true}} {
		if got := d.acceptCSeq(req(c.seq)); got != c.want {
			t.Errorf("CSeq %d: accepted %v, want %v", c.seq, got, c.want)
		}
	}
	if d.acceptCSeq(sip.NewRequest(sip.INFO, sip.Uri{Host: "x"})) {
		t.Error("a request without CSeq accepted")
	}
}
