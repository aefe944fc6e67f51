package peers

import (
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/voicebot/voicebot/internal/testpeer"
)

// sigterm stops vb with SIGTERM and returns how long it took to exit.
func (v *voicebot) sigterm(t *testing.T, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	v.stopped.Do(func() {
		if err := v.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	})
	select {
	case <-v.exited:
	case <-time.After(within):
		v.cmd.Process.Kill()
		<-v.exited
		t.Fatalf("voicebot did not exit within %v of SIGTERM", within)
	}
	if v.exitErr != nil {
		t.Errorf("voicebot exited with %v, want 0", v.exitErr)
	}
	return time.Since(start)
}

// SIGTERM during two calls: new INVITEs and OPTIONS probes get 503 with
// Retry-After, the two calls go on to their own end, and voicebot then
// exits 0, well within the drain deadline.
func TestDrainLetsCallsFinish(t *testing.T) {
	need(t, "sipp")
	vb := startVoicebot(t, 33500, withEnv("VOICEBOT_SHUTDOWN_DRAIN_TIMEOUT=20s", "VOICEBOT_SHUTDOWN_RETRY_AFTER=45s"))
	recA, recB := newRecorder(t), newRecorder(t)
	a := startSIPp(t, "uac_drain.xml", vb.addr, "-key", "record_port", itoa(recA.port()))
	b := startSIPp(t, "uac_drain.xml", vb.addr, "-key", "record_port", itoa(recB.port()))
	vb.waitLog(t, "call: answered", 2, 10*time.Second)
	time.Sleep(time.Second)

	start := time.Now()
	exited := make(chan time.Duration, 1)
	go func() { exited <- vb.sigterm(t, 25*time.Second) }()
	vb.waitLog(t, "sip: draining", 1, 5*time.Second)

	caller, err := testpeer.New(netip.MustParseAddrPort(vb.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	res, err := caller.Invite("", 5*time.Second)
	if err != nil || res.StatusCode != 503 {
		t.Fatalf("INVITE during the drain: %v %v, want 503", res, err)
	}
	if ra := res.GetHeader("Retry-After"); ra == nil || ra.Value() != "45" {
		t.Errorf("503 Retry-After %v, want 45", ra)
	}
	opt, err := caller.Send("OPTIONS", "", "", 5*time.Second)
	if err != nil || opt.StatusCode != 503 {
		t.Errorf("OPTIONS during the drain: %v %v, want 503 (a proxy's probe takes us out)", opt, err)
	}
	for _, s := range []*sipp{a, b} {
		if err := s.wait(20 * time.Second); err != nil {
			t.Errorf("a call in progress did not complete: %v", err)
		}
	}
	took := <-exited
	t.Logf("exited %v after SIGTERM, calls done %v after it", took, time.Since(start))
	if took < 2*time.Second {
		t.Errorf("exited %v after SIGTERM: it did not wait for the calls (about 4 s left)", took)
	}
	logs := vb.logs()
	if strings.Count(logs, `"outcome":"caller_hung_up"`) != 2 {
		t.Errorf("want both calls ended by their callers")
	}
	if !strings.Contains(logs, "drain: no calls left") {
		t.Error("no drain end in the log")
	}
}

// A call that outlasts the drain deadline is ended politely: the bot says
// goodbye and sends BYE; voicebot exits 0. A second signal then is not
// needed; one sent to a process stuck on a call stops it at once.
func TestDrainDeadlineEndsCallsPolitely(t *testing.T) {
	need(t, "sipp")
	vb := startVoicebot(t, 33600, withEnv("VOICEBOT_SHUTDOWN_DRAIN_TIMEOUT=2s"))
	rec := newRecorder(t)
	s := startSIPp(t, "uac_stays.xml", vb.addr, "-key", "record_port", itoa(rec.port()))
	vb.waitLog(t, "call: answered", 1, 10*time.Second)
	time.Sleep(2 * time.Second) // the greeting is over
	before := len(rec.packets())
	took := vb.sigterm(t, 30*time.Second)
	if err := s.wait(10 * time.Second); err != nil {
		t.Fatalf("the call was not ended with a BYE: %v", err)
	}
	if took < 2*time.Second {
		t.Errorf("exited %v after SIGTERM, before the 2 s drain deadline", took)
	}
	// The goodbye (the demo's answer: its greeting) was heard before the BYE.
	if goodbye := decode(rec.packets()[before:]); rms(goodbye) < 200 {
		t.Errorf("no goodbye before the BYE (rms %.0f)", rms(goodbye))
	}
	if !strings.Contains(vb.logs(), `"outcome":"drained"`) {
		t.Error("the call's end reason is not the shutdown")
	}
}

// Two signals: the second stops voicebot at once, calls or not.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	need(t, "sipp")
	vb := startVoicebot(t, 33700, withEnv("VOICEBOT_SHUTDOWN_DRAIN_TIMEOUT=60s"))
	rec := newRecorder(t)
	s := startSIPp(t, "uac_stays.xml", vb.addr, "-key", "record_port", itoa(rec.port()))
	vb.waitLog(t, "call: answered", 1, 10*time.Second)
	vb.stopped.Do(func() {})
	start := time.Now()
	_ = vb.cmd.Process.Signal(syscall.SIGTERM)
	vb.waitLog(t, "sip: draining", 1, 5*time.Second)
	_ = vb.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-vb.exited:
	case <-time.After(10 * time.Second):
		vb.cmd.Process.Kill()
		t.Fatal("a second signal did not stop voicebot")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v to stop after the second signal", took)
	}
	_ = s.wait(10 * time.Second) // SIPp got its BYE, or gives up
}

func itoa(n int) string { return strconv.Itoa(n) }
