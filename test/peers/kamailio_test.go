package peers

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// startKamailio runs Kamailio with configs/kamailio/kamailio.cfg on a free
// loopback port, dispatching to instances, and returns its address.
func startKamailio(t *testing.T, instances ...string) (addr string, logs func() string) {
	t.Helper()
	work := t.TempDir()
	var list strings.Builder
	for _, a := range instances {
		fmt.Fprintf(&list, "1 sip:%s\n", a)
	}
	if err := os.WriteFile(filepath.Join(work, "dispatcher.list"), []byte(list.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _ := filepath.Abs("../../configs/kamailio/kamailio.cfg")
	addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command("kamailio", "-f", cfg, "-A", "LISTEN=udp:"+addr, "-A", fmt.Sprintf("DISPATCHER_LIST=%q", filepath.Join(work, "dispatcher.list")),
		"-DD", "-E", "-w", work, "-m", "64", "-M", "8")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var out strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			out.WriteString(sc.Text() + "\n")
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		cmd.Wait()
	})
	logs = func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs(), "SO_RCVBUF is finally") { // its UDP socket is up
		if time.Now().After(deadline) {
			t.Fatalf("kamailio did not start:\n%s", logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addr, logs
}

// Two voicebot instances behind Kamailio's dispatcher, the configuration
// shipped in configs/kamailio: SIPp's calls through the proxy spread over
// both; one instance is drained mid-test (SIGTERM) and its calls finish,
// the proxy sends the rest to the other (OPTIONS probing, and a 503 moves
// an INVITE on), and no call fails.
func TestKamailioSpreadsCallsAndSurvivesADrain(t *testing.T) {
	need(t, "kamailio", "sipp")
	allow := withYAML("admission: {allow: [127.0.0.1]}\n") // the proxy is the one source
	one := startVoicebot(t, 34300, allow, withEnv("VOICEBOT_SHUTDOWN_DRAIN_TIMEOUT=20s"))
	two := startVoicebot(t, 34400, allow)
	proxy, kamLogs := startKamailio(t, one.addr, two.addr)
	time.Sleep(2 * time.Second) // the first probes mark both instances up

	const calls = 16
	rec := newRecorder(t)
	s := sippFrom(t, "127.0.0.1", "uac_proxy.xml", proxy, calls, 2, 8, "-key", "record_port", itoa(rec.port()))
	time.Sleep(3 * time.Second)
	drained := make(chan time.Duration, 1)
	go func() { drained <- one.sigterm(t, 30*time.Second) }()
	if err := s.wait(60 * time.Second); err != nil {
		t.Fatalf("a call failed: %v\nkamailio:\n%s", err, grepLines(kamLogs(), "INVITE|WARN|ERROR"))
	}
	took := <-drained
	a, b := strings.Count(one.logs(), "call: answered"), strings.Count(two.logs(), "call: answered")
	t.Logf("instance 1 (drained after 3 s, exited %v later) answered %d calls, instance 2 %d", took.Round(time.Millisecond), a, b)
	if a == 0 || b == 0 || a+b != calls {
		t.Errorf("calls spread %d + %d, want both used and %d in all", a, b, calls)
	}
	if b <= a {
		t.Errorf("the instance that stayed took %d calls, the drained one %d: the drain did not move new calls", b, a)
	}
	if n := strings.Count(one.logs(), `"outcome":"caller_hung_up"`); n != a {
		t.Errorf("the drained instance ended %d of its %d calls normally", n, a)
	}
}

// grepLines is the lines of s that match any of the |-separated words.
func grepLines(s, words string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, w := range strings.Split(words, "|") {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
