// Package peers places real calls at a running voicebot binary with real SIP
// peers: SIPp (Debian sip-tester) and baresip. It asserts on what the caller
// actually received. The test command installs the peers; when they are
// missing the tests skip, unless VBTEST_PEERS=require (as CI sets),
// where a missing peer is a failure.
package peers

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/voicebot/voicebot/internal/testpeer"
	"github.com/voicebot/voicebot/media"
)

var binary_ string // the voicebot binary under test

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "voicebot-peers")
	if err != nil {
		panic(err)
	}
	binary_ = filepath.Join(dir, "voicebot")
	build := exec.Command("go", "build", "-o", binary_, "../../cmd/voicebot")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build voicebot:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need skips (or, under VBTEST_PEERS=require, fails) without the tools.
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("VBTEST_PEERS") == "require" {
				t.Fatalf("%s is not installed (the test command installs it: ./test.sh)", tool)
			}
			t.Skipf("%s is not installed; run ./test.sh to install the SIP peers", tool)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// freeSIPPort returns a loopback port free for UDP and TCP whose next port
// is free too: baresip listens for SIP on the port over UDP and TCP and for
// SIP over TLS on the port after it, and fails to start when that one is
// taken (CI saw "SIP/TLS transport failed: Address already in use").
func freeSIPPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		port := freePort(t)
		var held []io.Closer
		free := true
		for _, p := range []int{port, port + 1} {
			u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
			if err != nil {
				free = false
				break
			}
			held = append(held, u)
			l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
			if err != nil {
				free = false
				break
			}
			held = append(held, l)
		}
		for _, c := range held {
			c.Close()
		}
		if free {
			return port
		}
	}
	t.Fatal("no loopback port free with its neighbour for baresip")
	return 0
}

// voicebot is a running voicebot process.
type voicebot struct {
	addr    string
	api     string // the API's address, when on
	cmd     *exec.Cmd
	mu      sync.Mutex
	log     strings.Builder
	exited  chan struct{}
	stopped sync.Once
	exitErr error
}

// vbOption adds to a voicebot's environment or configuration.
type vbOption func(t *testing.T, env *[]string, cfg *strings.Builder)

// withEnv sets environment variables (NAME=value).
func withEnv(kv ...string) vbOption {
	return func(_ *testing.T, env *[]string, _ *strings.Builder) { *env = append(*env, kv...) }
}

// withYAML adds YAML to voicebot's config file (lists and maps, which have
// no environment variables).
func withYAML(yaml string) vbOption {
	return func(_ *testing.T, _ *[]string, cfg *strings.Builder) { cfg.WriteString(yaml + "\n") }
}

// withAPI turns on the HTTP API on a free loopback port.
func withAPI() vbOption {
	return func(t *testing.T, env *[]string, _ *strings.Builder) {
		// The API serves conversations, kept in the memory store: in the test's directory.
		*env = append(*env, fmt.Sprintf("VOICEBOT_API_LISTEN=127.0.0.1:%d", freeTCPPort(t)), "VOICEBOT_API_TOKEN="+apiToken,
			"VOICEBOT_MEMORY_PATH="+filepath.Join(t.TempDir(), "memory.db"))
	}
}

const apiToken = "peers-test-token-0123456789"

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (v *voicebot) logs() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.log.String()
}

func startVoicebot(t *testing.T, rtpBase int, opts ...vbOption) *voicebot {
	t.Helper()
	port := freePort(t)
	v := &voicebot{addr: fmt.Sprintf("127.0.0.1:%d", port), exited: make(chan struct{})}
	env := []string{"VOICEBOT_SIP_LISTEN=" + v.addr, "VOICEBOT_LOG_FORMAT=json", "VOICEBOT_LOG_LEVEL=debug",
		fmt.Sprintf("VOICEBOT_MEDIA_PORT_MIN=%d", rtpBase), fmt.Sprintf("VOICEBOT_MEDIA_PORT_MAX=%d", rtpBase+98),
		// A test's stop must not wait out the production drain of 30 s.
		"VOICEBOT_SHUTDOWN_DRAIN_TIMEOUT=3s"}
	var cfg strings.Builder
	for _, o := range opts {
		o(t, &env, &cfg)
	}
	for _, kv := range env {
		if a, ok := strings.CutPrefix(kv, "VOICEBOT_API_LISTEN="); ok {
			v.api = a
		}
	}
	v.cmd = exec.Command(binary_)
	if cfg.Len() > 0 {
		path := filepath.Join(t.TempDir(), "voicebot.yaml")
		if err := os.WriteFile(path, []byte(cfg.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		v.cmd.Args = append(v.cmd.Args, "-config", path)
	}
	v.cmd.Env = append(os.Environ(), env...)
	stderr, _ := v.cmd.StderrPipe()
	if err := v.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			v.mu.Lock()
			v.log.WriteString(sc.Text() + "\n")
			v.mu.Unlock()
			if strings.Contains(sc.Text(), "voicebot ready") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	go func() {
		<-exited
		v.exitErr = v.cmd.Wait()
		close(v.exited)
	}()
	select {
	case <-ready:
	case <-v.exited:
		t.Fatalf("voicebot exited at start:\n%s", v.logs())
	case <-time.After(20 * time.Second):
		v.cmd.Process.Kill()
		<-v.exited
		t.Fatalf("voicebot did not start:\n%s", v.logs())
	}
	t.Cleanup(func() {
		v.stop(t)
		// The built-in demo model holds voicebot to the API reference: an
		// event it refuses, or a response without the agent's
		// instructions, is what the real service would refuse or get wrong.
		for _, line := range strings.Split(v.logs(), "\n") {
			if strings.Contains(line, `"message":"demo model: `) && strings.Contains(line, `"kind":"`) {
				t.Errorf("model protocol: %s", line)
			}
		}
		if t.Failed() {
			t.Logf("voicebot log:\n%s", v.logs())
		}
	})
	return v
}

// stop sends SIGTERM and waits (bounded) for a clean exit.
func (v *voicebot) stop(t *testing.T) {
	v.stopped.Do(func() {
		_ = v.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-v.exited:
			if v.exitErr != nil {
				t.Errorf("voicebot exited with %v", v.exitErr)
			}
		case <-time.After(15 * time.Second):
			v.cmd.Process.Kill()
			<-v.exited
			t.Error("voicebot did not stop on SIGTERM")
		}
	})
}

// waitLog waits until voicebot has logged n lines containing s.
func (v *voicebot) waitLog(t *testing.T, s string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for strings.Count(v.logs(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("voicebot did not log %q %d times in %v", s, n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recorder collects the RTP voicebot sends to one port.
type recorder struct {
	conn *net.UDPConn
	mu   sync.Mutex
	pkts []timedPacket
	done chan struct{}
}

type timedPacket struct {
	at  time.Time
	pkt rtp.Packet
}

func newRecorder(t *testing.T) *recorder {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{conn: c, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		buf := make([]byte, 1500)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			var p rtp.Packet
			if p.Unmarshal(append([]byte(nil), buf[:n]...)) == nil {
				r.mu.Lock()
				r.pkts = append(r.pkts, timedPacket{time.Now(), p})
				r.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-r.done })
	return r
}

func (r *recorder) port() int { return r.conn.LocalAddr().(*net.UDPAddr).Port }

func (r *recorder) packets() []rtp.Packet {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]rtp.Packet, len(r.pkts))
	for i, p := range r.pkts {
		out[i] = p.pkt
	}
	return out
}

// timed returns the packets with their arrival times.
func (r *recorder) timed() []timedPacket {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]timedPacket(nil), r.pkts...)
}

// pcapAudio decodes the A-law RTP payloads of a SIPp pcap (Ethernet/IPv4/UDP).
func pcapAudio(t *testing.T, path string) []int16 {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 24 || binary.LittleEndian.Uint32(data) != 0xa1b2c3d4 {
		t.Fatalf("%s: not a little-endian pcap", path)
	}
	var pcm []int16
	for off := 24; off+16 <= len(data); {
		incl := int(binary.LittleEndian.Uint32(data[off+8:]))
		frame := data[off+16 : min(len(data), off+16+incl)]
		off += 16 + incl
		if len(frame) < 14+20+8+12 {
			continue
		}
		ihl := int(frame[14]&0x0f) * 4
		var p rtp.Packet
		if p.Unmarshal(frame[14+ihl+8:]) == nil && p.PayloadType == 8 {
			pcm = media.PCMA.Decode(pcm, p.Payload)
		}
	}
	return pcm
}

func decode(pkts []rtp.Packet) []int16 {
	var pcm []int16
	for _, p := range pkts {
		c := media.PCMU
		if p.PayloadType == 8 {
			c = media.PCMA
		}
		pcm = c.Decode(pcm, p.Payload)
	}
	return pcm
}

func rms(x []int16) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / math.Max(1, float64(len(x))))
}

// loudest returns the n-sample window of x with the most energy.
func loudest(x []int16, n int) []int16 {
	best, at := -1.0, 0
	for i := 0; i+n <= len(x); i += n / 4 {
		if e := rms(x[i : i+n]); e > best {
			best, at = e, i
		}
	}
	return x[at : at+n]
}

// SIPp calls with its built-in A-law speech recording; the reply that comes
// back as RTP must be the demo model's echo of exactly that speech.
func TestSIPpCallGetsTheEchoBack(t *testing.T) {
	need(t, "sipp")
	vb := startVoicebot(t, 33000)
	rec := newRecorder(t)
	runSIPp(t, vb, rec, "uac_echo.xml")

	pkts := rec.packets()
	if len(pkts) < 600 { // ~16.5 s of call at 50 packets/s
		t.Fatalf("only %d RTP packets came back", len(pkts))
	}
	for i := 1; i < len(pkts); i++ {
		if pkts[i].SequenceNumber != pkts[i-1].SequenceNumber+1 || pkts[i].Timestamp-pkts[i-1].Timestamp != 160 || pkts[i].PayloadType != 8 {
			t.Fatalf("packet %d breaks the stream: seq %d→%d ts %d→%d pt %d", i, pkts[i-1].SequenceNumber, pkts[i].SequenceNumber,
				pkts[i-1].Timestamp, pkts[i].Timestamp, pkts[i].PayloadType)
		}
	}
	heard := decode(pkts)
	spoken := pcapAudio(t, sippPcap)
	// The reply starts after the caller's 7 s of speech: take its loudest
	// second and find it in what the caller said.
	reply := heard[min(len(heard), 8000*9):]
	if rms(reply) < 200 {
		t.Fatalf("no reply audio after the caller spoke (rms %.0f)", rms(reply))
	}
	best, off := testpeer.BestCorrelation(spoken, loudest(reply, 8000))
	t.Logf("reply matches the caller's speech at %.2f s with correlation %.3f", float64(off)/8000, best)
	if best < 0.8 {
		t.Errorf("the reply is not the echo of the caller (correlation %.3f)", best)
	}
}

const sippPcap = "/usr/share/sip-tester/g711a.pcap"

// runSIPp runs one call of a scenario from test/sipp against vb, with the
// RTP voicebot sends recorded by rec, and fails the test unless SIPp exits 0.
func runSIPp(t *testing.T, vb *voicebot, rec *recorder, scenario string, keys ...string) {
	t.Helper()
	args := []string{vb.addr, "-key", "record_port", fmt.Sprint(rec.port())}
	for i := 0; i+1 < len(keys); i += 2 {
		args = append(args, "-key", keys[i], keys[i+1])
	}
	s := startSIPp(t, scenario, args...)
	if err := s.wait(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// sipp is a SIPp process running one call of a scenario.
type sipp struct {
	cmd  *exec.Cmd
	work string
	port int // its SIP port
	out  *strings.Builder
	done chan struct{} // closed when it has exited; err says how
	err  error
}

// startSIPp starts SIPp on a free loopback port with a scenario of
// test/sipp, for one call. args are SIPp's further arguments (a remote
// address for a UAC).
func startSIPp(t *testing.T, scenario string, args ...string) *sipp {
	t.Helper()
	return launchSIPp(t, scenario, func(port int) []string {
		return append(args, "-i", "127.0.0.1", "-p", fmt.Sprint(port), "-mp", fmt.Sprint(freePort(t)&^1),
			"-m", "1", "-nostdin", "-timeout", "50s", "-timeout_error", "-trace_err")
	})
}

// launchSIPp runs SIPp with a scenario of test/sipp and the arguments argv
// gives for its SIP port, in a work directory holding the pcaps the
// scenarios play; it is killed at the end of the test if still running.
func launchSIPp(t *testing.T, scenario string, argv func(port int) []string) *sipp {
	t.Helper()
	work := t.TempDir()
	os.MkdirAll(filepath.Join(work, "pcap"), 0o755)
	for _, f := range []string{"g711a.pcap", "dtmf_2833_0.pcap", "dtmf_2833_1.pcap", "dtmf_2833_pound.pcap"} {
		src, err := os.ReadFile(filepath.Join(filepath.Dir(sippPcap), f))
		if err != nil {
			t.Fatalf("%v (Debian sip-tester ships it)", err)
		}
		os.WriteFile(filepath.Join(work, "pcap", f), src, 0o644)
	}
	path, _ := filepath.Abs(filepath.Join("..", "sipp", scenario))
	s := &sipp{work: work, port: freePort(t), out: &strings.Builder{}, done: make(chan struct{})}
	s.cmd = exec.Command("sipp", append([]string{"-sf", path}, argv(s.port)...)...)
	s.cmd.Dir = work
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			s.cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

// addr is SIPp's SIP address.
func (s *sipp) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// wait waits for SIPp to end and says why it failed, if it did.
func (s *sipp) wait(timeout time.Duration) error {
	var err error
	select {
	case <-s.done:
		err = s.err
	case <-time.After(timeout):
		s.cmd.Process.Kill()
		<-s.done
		err = errors.New("did not finish in time")
	}
	if err == nil {
		return nil
	}
	var logs strings.Builder
	errs, _ := filepath.Glob(filepath.Join(s.work, "*errors.log"))
	for _, f := range errs {
		b, _ := os.ReadFile(f)
		fmt.Fprintf(&logs, "%s:\n%s\n", f, b)
	}
	return fmt.Errorf("sipp failed: %v\n%s\n%s", err, logs.String(), lastLines(s.out.String(), 20))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// readWAV reads a mono 16-bit PCM WAV.
func readWAV(path string) ([]int16, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, 0, err
	}
	if len(data) < 12 || string(data[:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		return nil, 0, errors.New("not a WAV file")
	}
	rate, channels := 0, 0
	for off := 12; off+8 <= len(data); {
		id, size := string(data[off:off+4]), int(binary.LittleEndian.Uint32(data[off+4:]))
		body := data[off+8 : min(len(data), off+8+size)]
		switch id {
		case "fmt ":
			channels = int(binary.LittleEndian.Uint16(body[2:]))
			rate = int(binary.LittleEndian.Uint32(body[4:]))
		case "data":
			pcm := make([]int16, len(body)/2/max(channels, 1))
			for i := range pcm {
				pcm[i] = int16(binary.LittleEndian.Uint16(body[2*i*channels:]))
			}
			return pcm, rate, nil
		}
		off += 8 + size + size%2
	}
	return nil, 0, errors.New("no data chunk")
}

// baresipPhone is a configured baresip: where its config is, where it
// records what it hears (sndfile), its SIP port.
type baresipPhone struct {
	dir, recordings string
	sipPort         int
}

// newBaresip writes a baresip configuration under work: it speaks source
// (an 8 kHz WAV), records what it hears, listens on a free loopback port
// with account, plus extra config lines (modules). It speaks G.711.
func newBaresip(t *testing.T, work, source, account string, extra ...string) baresipPhone {
	return newBaresipWith(t, "g711", work, source, account, extra...)
}

// newBaresipWith is newBaresip with one codec module: g711, or g722 (HD
// voice only; source is then a 16 kHz WAV, and the recordings are 16 kHz:
// baresip's aufile does not convert rates, and records at the codec's).
func newBaresipWith(t *testing.T, codec, work, source, account string, extra ...string) baresipPhone {
	t.Helper()
	p := baresipPhone{dir: filepath.Join(work, "baresip"), recordings: filepath.Join(work, "rec"), sipPort: freeSIPPort(t)}
	os.MkdirAll(p.recordings, 0o755)
	os.MkdirAll(p.dir, 0o755)
	rtpPort := freePort(t) &^ 1
	cfg := fmt.Sprintf(`poll_method epoll
sip_listen 127.0.0.1:%d
audio_source aufile,%s
audio_player none,none
audio_alert aufile,/dev/null
net_interface 127.0.0.1
rtp_ports %d-%d
module_path /usr/lib/baresip/modules
module %s.so
module aufile.so
module sndfile.so
snd_path %s
module_app account.so
module_app menu.so
%s
`, p.sipPort, source, rtpPort, rtpPort+20, codec, p.recordings, strings.Join(extra, "\n"))
	if err := os.WriteFile(filepath.Join(p.dir, "config"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.dir, "accounts"), []byte(account+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// baresip, a real softphone, calls, waits, says a sentence, and records what
// it hears. The recording must contain the demo model's greeting and the
// echo of the sentence, found by cross-correlation.
func TestBaresipHearsGreetingAndEcho(t *testing.T) {
	need(t, "baresip", "espeak-ng", "sox")
	vb := startVoicebot(t, 33200)
	work := t.TempDir()
	run := func(name string, args ...string) {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
	}
	// 7 s of silence while the greeting plays, the sentence, then silence for the echo.
	run("espeak-ng", "-w", filepath.Join(work, "say22.wav"), "Hello, can you hear me? This is a test call.")
	run("sox", filepath.Join(work, "say22.wav"), "-r", "8000", "-c", "1", "-b", "16", filepath.Join(work, "say8.wav"))
	run("sox", filepath.Join(work, "say8.wav"), filepath.Join(work, "in.wav"), "pad", "7", "8")
	said, _, err := readWAV(filepath.Join(work, "say8.wav"))
	if err != nil {
		t.Fatal(err)
	}
	phone := newBaresip(t, work, filepath.Join(work, "in.wav"), "<sip:tester@127.0.0.1>;regint=0", "module stdio.so")
	cfgDir, recordings := phone.dir, phone.recordings

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "baresip", "-f", cfgDir, "-e", "/dial sip:bot@"+vb.addr, "-t", "22")
	cmd.Stdin = nil
	out, err := cmd.CombinedOutput()
	if err != nil && ctx.Err() != nil {
		t.Fatalf("baresip hung: %s", lastLines(string(out), 30))
	}
	decs, _ := filepath.Glob(filepath.Join(recordings, "dump-*-dec.wav"))
	if len(decs) == 0 {
		t.Fatalf("baresip recorded nothing:\n%s", lastLines(string(out), 30))
	}
	heard, rate, err := readWAV(decs[0])
	if err != nil || rate != 8000 {
		t.Fatalf("recording: %v (rate %d)", err, rate)
	}
	t.Logf("baresip heard %.1f s of audio", float64(len(heard))/8000)

	greeting := media.PCMU.Decode(nil, media.PCMU.Encode(nil, downsample(greetingPCM())))
	best, off := testpeer.BestCorrelation(heard, loudest(greeting, 8000))
	t.Logf("greeting found at %.2f s, correlation %.3f", float64(off)/8000, best)
	if best < 0.8 {
		t.Errorf("the recording does not contain the greeting (correlation %.3f)", best)
	}
	best, off = testpeer.BestCorrelation(heard, loudest(said, 8000))
	t.Logf("echo of the caller found at %.2f s, correlation %.3f", float64(off)/8000, best)
	if best < 0.8 {
		t.Errorf("the recording does not contain the echo of what baresip said (correlation %.3f)", best)
	}
	if !strings.Contains(vb.logs(), `"who":"caller"`) {
		t.Error("voicebot did not log the caller's turn")
	}
}
