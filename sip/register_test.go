package sip

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/voicebot/voicebot/internal/testpeer"
	"github.com/voicebot/voicebot/secret"
)

// registering is a UA registered with a PBX as trunk "pbx", asking for a
// minute, with password.
func registering(t *testing.T, setup func(*testpeer.PBX), password string) (*rig, *testpeer.PBX) {
	t.Helper()
	p := newPBX(t, setup)
	r := newRig(t, Config{Trunks: []Trunk{{Name: "pbx", Address: p.Addr().String(), Username: "1001",
		Password: secret.Value(password), Register: true, RegisterExpires: time.Minute}}}, nil)
	return r, p
}

func regStatus(t *testing.T, r *rig) RegistrationStatus {
	t.Helper()
	regs := r.ua.Registrations()
	switch len(regs) {
	case 0: // Serve starts the registrations once it is ready
		return RegistrationStatus{}
	case 1:
		return regs[0]
	}
	t.Fatalf("%d registrations", len(regs))
	return RegistrationStatus{}
}

// The UA registers, answering the registrar's 401 with digest; refreshes at
// 85 % of the lifetime granted; and un-registers when it stops.
func TestRegistration(t *testing.T) {
	r, p := registering(t, nil, pbxPassword)
	waitFor(t, "registered", func() bool { return regStatus(t, r).State == Registered })
	regs := p.Registers()
	if len(regs) != 1 || !regs[0].Authed || regs[0].Expires != 60 {
		t.Fatalf("REGISTERs accepted: %+v", regs)
	}
	if want := fmt.Sprintf("<sip:1001@127.0.0.1:%d>", r.ua.Addr().Port()); regs[0].Contact != want {
		t.Errorf("Contact %q, want %q", regs[0].Contact, want)
	}
	if s := regStatus(t, r); s.Trunk != "pbx" || s.Code != 200 || !s.Until.Equal(start.Add(time.Minute)) || s.Failures != 0 {
		t.Errorf("status %+v", s)
	}

	r.clk.await(t, start.Add(51*time.Second))
	r.clk.Advance(51 * time.Second)
	waitFor(t, "the refresh", func() bool { return len(p.Registers()) == 2 })
	waitFor(t, "the status updated", func() bool { return regStatus(t, r).Until.Equal(start.Add(111 * time.Second)) })

	r.stop()
	regs = p.Registers()
	if last := regs[len(regs)-1]; len(regs) != 3 || last.Expires != 0 {
		t.Errorf("no un-REGISTER at shutdown: %+v", regs)
	}
	if s := regStatus(t, r); s.State != Unregistered || !s.Until.IsZero() {
		t.Errorf("status after shutdown %+v", s)
	}
	if strings.Contains(r.logs.String(), pbxPassword) {
		t.Error("the password reached the log")
	}
}

// A registrar that fails (503) is retried after a backoff, and the status
// says why meanwhile.
func TestRegistrationRetriesAfterFailure(t *testing.T) {
	r, p := registering(t, func(p *testpeer.PBX) { p.FailRegisters, p.FailCode = 1, 503 }, pbxPassword)
	waitFor(t, "the failure", func() bool { return regStatus(t, r).State == RegFailed })
	if s := regStatus(t, r); s.Code != 503 || s.Failures != 1 || s.Error == "" {
		t.Errorf("status %+v", s)
	}
	if !strings.Contains(r.logs.String(), `"code":503`) || !strings.Contains(r.logs.String(), "registration: failed") {
		t.Error("the failure was not logged with its code")
	}
	at := r.clk.next(t)
	if d := at.Sub(start); d < 4*time.Second || d > 6*time.Second {
		t.Errorf("retry after %v, want 5 s ± 20 %%", d)
	}
	r.clk.Set(at)
	waitFor(t, "registered", func() bool { return regStatus(t, r).State == Registered })
	if len(p.Registers()) != 1 {
		t.Errorf("%d REGISTERs accepted", len(p.Registers()))
	}
}

// Wrong credentials, or none for a registrar that wants them: the
// registration fails with the registrar's code, and nothing is removed at
// shutdown.
func TestRegistrationRefused(t *testing.T) {
	for _, tc := range []struct {
		name, password string
		code           int
	}{{"wrong password", "guess", 403}, {"no password", "", 401}} {
		t.Run(tc.name, func(t *testing.T) {
			r, p := registering(t, nil, tc.password)
			waitFor(t, "the failure", func() bool { return regStatus(t, r).State == RegFailed })
			if s := regStatus(t, r); s.Code != tc.code {
				t.Errorf("status %+v, want code %d", s, tc.code)
			}
			r.stop()
			if s := regStatus(t, r); s.State != Unregistered || len(p.Registers()) != 0 {
				t.Errorf("status %+v, %d REGISTERs accepted", s, len(p.Registers()))
			}
		})
	}
}

// registrar is a scripted registrar: answer says how each REGISTER is
// answered (code and extra header lines); 200s echo the Contact.
type registrar struct {
	conn   *net.UDPConn
	answer func(n int, req *sip.Request) (int, []string)
	mu     sync.Mutex
	got    []*sip.Request
	wg     sync.WaitGroup
}

func newRegistrar(t *testing.T, answer func(n int, req *sip.Request) (int, []string)) *registrar {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	g := &registrar{conn: conn, answer: answer}
	g.wg.Add(1)
	go g.serve()
	return g
}

func (g *registrar) Close() { g.conn.Close(); g.wg.Wait() }

func (g *registrar) requests() []*sip.Request {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*sip.Request(nil), g.got...)
}

func (g *registrar) serve() {
	defer g.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := g.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		msg, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
		req, ok := msg.(*sip.Request)
		if err != nil || !ok {
			continue
		}
		g.mu.Lock()
		g.got = append(g.got, req)
		count := len(g.got)
		g.mu.Unlock()
		code, headers := g.answer(count, req)
		res := sip.NewResponseFromRequest(req, code, "Whatever", nil)
		for _, h := range headers {
			name, value, _ := strings.Cut(h, ":")
			res.AppendHeader(sip.NewHeader(name, strings.TrimSpace(value)))
		}
		_, _ = g.conn.WriteToUDPAddrPort([]byte(res.String()), from)
	}
}

// A 423 is answered by asking for the registrar's Min-Expires; the
// lifetime granted may come in an Expires header.
func TestRegistrationIntervalTooBrief(t *testing.T) {
	g := newRegistrar(t, func(n int, req *sip.Request) (int, []string) {
		if header(req, "Expires") == "0" {
			return 200, nil
		}
		if n == 1 {
			return 423, []string{"Min-Expires: 600"}
		}
		return 200, []string{"Expires: 900"}
	})
	t.Cleanup(g.Close) // after the rig's cleanup (they run last first): it un-registers
	r := newRig(t, Config{Trunks: []Trunk{{Name: "reg", Address: g.conn.LocalAddr().String(), Username: "1001", Register: true, RegisterExpires: time.Minute}}}, nil)
	waitFor(t, "registered", func() bool { return regStatus(t, r).State == Registered })
	if s := regStatus(t, r); !s.Until.Equal(start.Add(900 * time.Second)) {
		t.Errorf("registered until +%v, want +900s (the Expires header)", s.Until.Sub(start))
	}
	reqs := g.requests()
	if len(reqs) != 2 || header(reqs[0], "Expires") != "60" || header(reqs[1], "Expires") != "600" {
		t.Errorf("REGISTERs asked for %v", func() (out []string) {
			for _, q := range reqs {
				out = append(out, header(q, "Expires"))
			}
			return
		}())
	}
	if reqs[0].CallID().Value() != reqs[1].CallID().Value() || reqs[1].CSeq().SeqNo != reqs[0].CSeq().SeqNo+1 {
		t.Error("the retry is not the same registration's next request")
	}
	if got := header(reqs[0], "Allow"); got != allowMethods {
		t.Errorf("Allow %q", got)
	}
	r.stop()
	if reqs := g.requests(); header(reqs[len(reqs)-1], "Expires") != "0" {
		t.Error("no un-REGISTER")
	}
}
