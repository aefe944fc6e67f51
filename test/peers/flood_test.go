package peers

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// envInt reads a knob the flood script turns up.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// rssKiB is a process's resident memory.
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// sippFrom runs a SIPp scenario from a loopback address of its own, with
// SIPp's own call count and rate.
func sippFrom(t *testing.T, ip, scenario, target string, calls, rate, limit int, extra ...string) *sipp {
	t.Helper()
	timeout := calls/max(rate, 1) + 60 // seconds: the run, and then some
	return launchSIPp(t, scenario, func(port int) []string {
		return append([]string{target, "-i", ip, "-p", fmt.Sprint(port), "-mp", fmt.Sprint(freePort(t) &^ 1),
			"-m", fmt.Sprint(calls), "-r", fmt.Sprint(rate), "-l", fmt.Sprint(limit), "-nostdin",
			"-timeout", fmt.Sprintf("%ds", timeout), "-timeout_error", "-trace_err"}, extra...)
	})
}

// refusedCounts reads the counts voicebot logs when it stops.
func refusedCounts(t *testing.T, logs string) map[string]int {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"message":"sip: stopped"`) {
			var ev struct {
				Refused map[string]int `json:"refused"`
			}
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatal(err)
			}
			return ev.Refused
		}
	}
	t.Fatal("no sip: stopped line")
	return nil
}

// Legitimate calls from the PBX (allowlisted) run while a scanner floods
// INVITEs from another address far above the rate limit and a third
// address guesses passwords: every legitimate call succeeds, every flood
// INVITE is refused without reaching the model, and memory stays flat.
// FLOOD_SECONDS and FLOOD_RATE scale it up (test/flood.sh).
func TestFloodWhileCallsRun(t *testing.T) {
	need(t, "sipp")
	seconds, rate := envInt("FLOOD_SECONDS", 6), envInt("FLOOD_RATE", 100)
	vb := startVoicebot(t, 33800, withYAML(`
admission:
  allow: [127.0.0.1]
  invite_rate: 5
  invite_burst: 10
  auth:
    users: {pbx: "flood-test-password"}
`))
	idleRSS := rssKiB(t, vb.cmd.Process.Pid)
	legit := sippFrom(t, "127.0.0.1", "uac_drain.xml", vb.addr, 2*seconds/5+2, 1, 4, "-key", "record_port", "4000")
	floodCalls := seconds * rate
	flood := sippFrom(t, "127.0.0.2", "uac_flood.xml", vb.addr, floodCalls, rate, 200)
	guesses := sippFrom(t, "127.0.0.3", "uac_badauth.xml", vb.addr, 8, 2, 2, "-au", "pbx", "-ap", "wrong-guess")
	start := time.Now()
	peakRSS := idleRSS
	var series []string // RSS every few seconds: flat or growing
	next := start
	for _, s := range []*sipp{flood, guesses, legit} {
		for {
			select {
			case <-s.done:
			case <-time.After(200 * time.Millisecond):
				rss := rssKiB(t, vb.cmd.Process.Pid)
				peakRSS = max(peakRSS, rss)
				if time.Now().After(next) {
					series = append(series, fmt.Sprintf("%ds:%dM", int(time.Since(start).Seconds()), rss/1024))
					next = next.Add(time.Duration(max(1, seconds/6)) * time.Second)
				}
				continue
			}
			break
		}
	}
	t.Logf("RSS over the flood: %s", strings.Join(series, " "))
	for name, s := range map[string]*sipp{"legitimate calls": legit, "flood": flood, "password guesses": guesses} {
		if err := s.wait(time.Second); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	elapsed := time.Since(start)
	endRSS := rssKiB(t, vb.cmd.Process.Pid)
	vb.stop(t)
	logs := vb.logs()
	refused := refusedCounts(t, logs)
	answered := strings.Count(logs, "call: answered")
	t.Logf("flood: %d INVITEs at %d/s from 127.0.0.2 over %v; refused %v; %d legitimate calls answered; RSS idle %d KiB, peak %d KiB, end %d KiB",
		floodCalls, rate, elapsed.Round(time.Millisecond), refused, answered, idleRSS, peakRSS, endRSS)
	// Each flood INVITE is challenged while its source has tokens, then
	// refused as rate limited; the guesser's first INVITEs are challenged too.
	if got := refused["rate_limited"] + refused["challenged"] - 8; got != floodCalls {
		t.Errorf("%d of %d flood INVITEs refused (%v)", got, floodCalls, refused)
	}
	if refused["rate_limited"] < floodCalls/2 {
		t.Errorf("only %d of %d flood INVITEs hit the rate limit", refused["rate_limited"], floodCalls)
	}
	if refused["auth_failed"] != 8 {
		t.Errorf("%d password guesses refused, want 8", refused["auth_failed"])
	}
	if want := 2*seconds/5 + 2; answered != want {
		t.Errorf("%d legitimate calls answered, want %d", answered, want)
	}
	if growth := peakRSS - idleRSS; growth > 64*1024 {
		t.Errorf("RSS grew %d KiB under the flood", growth)
	}
}
