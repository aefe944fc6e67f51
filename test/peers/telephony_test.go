package peers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/internal/testpeer"
	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/realtime/realtimetest"
	"github.com/voicebot/voicebot/resample"
)

const trunkPassword = "s3cret-trunk-pass"

// trunkAt configures a trunk named pbx at addr, with the password from the
// environment as an operator would.
func trunkAt(addr string, register bool) vbOption {
	return func(t *testing.T, env *[]string, cfg *strings.Builder) {
		*env = append(*env, "PBX_PASSWORD="+trunkPassword)
		fmt.Fprintf(cfg, "sip:\n  trunks:\n    - name: pbx\n      address: %s\n      username: \"1001\"\n      password: ${PBX_PASSWORD}\n      register: %v\n", addr, register)
	}
}

// SIPp is the registrar: voicebot answers its 401 with digest credentials
// (SIPp verifies them), refreshes before the 3 s binding runs out (with a
// new challenge), and removes the binding when it stops.
func TestSIPpRegistrar(t *testing.T) {
	need(t, "sipp")
	registrar := startSIPp(t, "uas_register.xml", "-key", "password", trunkPassword)
	time.Sleep(300 * time.Millisecond) // SIPp binds its port
	vb := startVoicebot(t, 33800, trunkAt(registrar.addr(), true))
	vb.waitLog(t, `"message":"registration: registered"`, 2, 8*time.Second)
	vb.stop(t)
	if err := registrar.wait(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	logs := vb.logs()
	if !strings.Contains(logs, `"message":"registration: unregistered"`) {
		t.Error("no un-REGISTER at shutdown")
	}
	if strings.Contains(logs, trunkPassword) {
		t.Error("the trunk password reached the log")
	}
}

// placeCall asks voicebot's API for an outbound call.
func placeCall(t *testing.T, vb *voicebot, body map[string]string) string {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", "http://"+vb.api+"/v1/calls", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+apiToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	if res.StatusCode != 201 {
		t.Fatalf("POST /v1/calls: %d %v", res.StatusCode, out)
	}
	return out["id"].(string)
}

// voicebot places a call (HTTP API) through SIPp as the trunk: the 401 is
// answered with digest credentials SIPp verifies, the callee hears the
// greeting, presses #, and voicebot hangs up by the model's end_call.
func TestSIPpOutboundWithDigest(t *testing.T) {
	need(t, "sipp")
	rec := newRecorder(t)
	trunk := startSIPp(t, "uas_digest.xml", "-key", "password", trunkPassword, "-key", "record_port", fmt.Sprint(rec.port()))
	time.Sleep(300 * time.Millisecond)
	vb := startVoicebot(t, 34000, trunkAt(trunk.addr(), false), withAPI())
	id := placeCall(t, vb, map[string]string{"to": "5551234"})
	if err := trunk.wait(40 * time.Second); err != nil {
		t.Fatal(err)
	}
	heard := decode(rec.packets())
	greeting := media.PCMU.Decode(nil, media.PCMU.Encode(nil, downsample(greetingPCM())))
	best, off := testpeer.BestCorrelation(heard, loudest(greeting, 8000))
	t.Logf("greeting found at %.2f s of what the callee heard, correlation %.3f", float64(off)/8000, best)
	if best < 0.8 {
		t.Errorf("the callee did not hear the greeting (correlation %.3f)", best)
	}
	vb.waitLog(t, `"outcome":"bot_hung_up"`, 1, 5*time.Second)
	if !strings.Contains(vb.logs(), id) {
		t.Errorf("the log does not name the call id %s the API gave", id)
	}
}

// longestGap is the longest time between two received packets.
func longestGap(pkts []timedPacket) (time.Duration, int) {
	var gap time.Duration
	at := 0
	for i := 1; i < len(pkts); i++ {
		if d := pkts[i].at.Sub(pkts[i-1].at); d > gap {
			gap, at = d, i
		}
	}
	return gap, at
}

// SIPp holds the call with a sendonly re-INVITE and plays speech while on
// hold, then resumes with sendrecv: voicebot answers recvonly and sendrecv,
// sends nothing during the hold (the recording has a gap of the hold's
// length, the stream continuous across it), and the held speech never
// reaches the model.
func TestSIPpHoldAndResume(t *testing.T) {
	need(t, "sipp")
	vb := startVoicebot(t, 34200)
	rec := newRecorder(t)
	runSIPp(t, vb, rec, "uac_hold.xml")
	pkts := rec.timed()
	gap, at := longestGap(pkts)
	t.Logf("%d packets; longest gap %v", len(pkts), gap)
	if gap < 2500*time.Millisecond || gap > 4500*time.Millisecond {
		t.Errorf("longest gap in what voicebot sent is %v, want the 3 s hold", gap)
	}
	if at > 0 {
		before, after := pkts[at-1].pkt, pkts[at].pkt
		if after.SequenceNumber != before.SequenceNumber+1 || after.SSRC != before.SSRC {
			t.Errorf("the stream did not carry on after the hold: seq %d → %d", before.SequenceNumber, after.SequenceNumber)
		}
	}
	logs := vb.logs()
	resumed := strings.Index(logs, "call: off hold")
	if i := strings.Index(logs, "caller started speaking"); i >= 0 && i < resumed {
		t.Error("speech played on hold reached the model")
	}
	// The recording goes on after the resume: then the model hears it.
	if !strings.Contains(logs[max(resumed, 0):], "caller started speaking") {
		t.Error("the caller's speech after the resume did not reach the model")
	}
	if !strings.Contains(logs, `"rtp_held":`) || strings.Contains(logs, `"rtp_held":0,`) {
		t.Error("no packets counted as dropped on hold")
	}
	for _, want := range []string{"call: on hold", "call: off hold"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %q in the log", want)
		}
	}
}

// The profile's transfer target for the REFER scenarios.
var operatorTarget = withYAML("agent:\n  transfer_targets:\n    operator: {uri: \"sip:operator@127.0.0.1:5999\", description: a human}\n")

// SIPp presses 0; voicebot REFERs it to the operator; SIPp accepts (202)
// and NOTIFYs 100 and 200 for the target; voicebot hangs up.
func TestSIPpTransferAccepted(t *testing.T) {
	need(t, "sipp")
	vb := startVoicebot(t, 34400, operatorTarget)
	rec := newRecorder(t)
	runSIPp(t, vb, rec, "uac_refer.xml")
	vb.waitLog(t, `"outcome":"transferred"`, 1, 5*time.Second)
	if !strings.Contains(vb.logs(), `"message":"sip: transfer succeeded"`) {
		t.Error("the NOTIFY 200 was not taken as success")
	}
}

// SIPp refuses the REFER (603): voicebot tells the model, which apologises,
// and hangs up once the apology has played.
func TestSIPpTransferRefused(t *testing.T) {
	need(t, "sipp")
	vb := startVoicebot(t, 34600, operatorTarget)
	rec := newRecorder(t)
	runSIPp(t, vb, rec, "uac_refer_refused.xml")
	logs := vb.logs()
	if !strings.Contains(logs, `"message":"tool: transfer failed"`) || !strings.Contains(logs, "603") {
		t.Error("the refusal was not reported")
	}
	vb.waitLog(t, `"outcome":"bot_hung_up"`, 1, 5*time.Second)
	spurts := talkspurts(rec.packets())
	t.Logf("talkspurts (ms): %v", spurts)
	if len(spurts) < 3 || spurts[len(spurts)-1] < 300 {
		t.Errorf("no apology after the refusal: talkspurts %v", spurts)
	}
}

// Session timers with SIPp: voicebot, named refresher of a 4 s session,
// refreshes with UPDATE every 2 s, and answers the caller's own refresh.
func TestSIPpSessionTimer(t *testing.T) {
	need(t, "sipp")
	vb := startVoicebot(t, 34800, withEnv("VOICEBOT_SIP_MIN_SE=2s"))
	rec := newRecorder(t)
	runSIPp(t, vb, rec, "uac_session_timer.xml")
	if n := strings.Count(vb.logs(), `"message":"sip: session refreshed"`); n < 2 {
		t.Errorf("%d refreshes logged, want 2", n)
	}
}

// baresipCtrl sends one command to baresip's ctrl_tcp module (a netstring
// of JSON) and returns its answer.
func baresipCtrl(t *testing.T, addr, command, params string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("baresip ctrl_tcp: %v", err)
	}
	defer conn.Close()
	msg, _ := json.Marshal(map[string]string{"command": command, "params": params, "token": "vb"})
	fmt.Fprintf(conn, "%d:%s,", len(msg), msg)
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 8192)
	n, _ := conn.Read(buf)
	return string(buf[:n])
}

// answeringBaresip starts baresip with one codec module, answering calls
// by itself and saying source, with its control port (ctrl_tcp) up. It
// returns the phone, its control address, a channel closed when it exits,
// and the tail of its log. It is killed at the test's end if still running.
func answeringBaresip(t *testing.T, codec, work, source string) (bp baresipPhone, ctrl string, exited chan struct{}, phoneLog func() string) {
	t.Helper()
	ctrl = fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	bp = newBaresipWith(t, codec, work, source, "<sip:tester@127.0.0.1>;regint=0;answermode=auto", "module_app ctrl_tcp.so", "ctrl_tcp_listen "+ctrl)
	phone := exec.Command("baresip", "-f", bp.dir, "-t", "40")
	logPath := filepath.Join(work, "baresip.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	phone.Stdout, phone.Stderr = logFile, logFile
	if err := phone.Start(); err != nil {
		t.Fatal(err)
	}
	phoneLog = func() string { b, _ := os.ReadFile(logPath); return lastLines(string(b), 30) }
	exited = make(chan struct{})
	go func() { _ = phone.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			phone.Process.Kill()
			<-exited
		}
	})
	for range 100 { // baresip is up when its control port is
		if c, err := net.Dial("tcp", ctrl); err == nil {
			c.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return bp, ctrl, exited, phoneLog
}

// An outbound call (HTTP API) to baresip as an auto-answering phone: it
// answers, hears the greeting (found in its recording), presses #, hears
// the goodbye, and the call ends by the model's end_call. Once with
// baresip speaking G.711, once with G.722 alone: HD voice both ways, the
// recording at 16 kHz, # on telephone-event at G.722's 8 kHz clock.
func TestBaresipAnswersAnOutboundCall(t *testing.T) {
	need(t, "baresip", "sox")
	for _, c := range []struct {
		module string
		codec  media.Codec
		rtp    int
	}{{"g711", media.PCMU, 35000}, {"g722", media.G722, 35200}} {
		t.Run(c.module, func(t *testing.T) { outboundToBaresip(t, c.module, c.codec, c.rtp) })
	}
}

func outboundToBaresip(t *testing.T, module string, codec media.Codec, rtpBase int) {
	rate := codec.SampleRate
	work := t.TempDir()
	silence := filepath.Join(work, "silence.wav")
	if out, err := exec.Command("sox", "-n", "-r", fmt.Sprint(rate), "-c", "1", "-b", "16", silence, "trim", "0", "40").CombinedOutput(); err != nil {
		t.Fatalf("sox: %v\n%s", err, out)
	}
	bp, ctrl, exited, phoneLog := answeringBaresip(t, module, work, silence)

	vb := startVoicebot(t, rtpBase, withAPI())
	id := placeCall(t, vb, map[string]string{"to": fmt.Sprintf("sip:tester@127.0.0.1:%d", bp.sipPort)})
	defer func() {
		if t.Failed() {
			t.Logf("baresip:\n%s", phoneLog())
		}
	}()
	vb.waitLog(t, `"message":"call: answered"`, 1, 10*time.Second)
	if want := fmt.Sprintf(`"codec":"%s","rate":"%s"`, codec.Name, codec.Rate()); !strings.Contains(vb.logs(), want) {
		t.Errorf("the call was not answered with %s", want)
	}
	time.Sleep(6 * time.Second) // the greeting (about 5 s) plays
	if r := baresipCtrl(t, ctrl, "sndcode", "#"); !strings.Contains(r, `"ok":true`) {
		t.Fatalf("sndcode: %s", r)
	}
	vb.waitLog(t, `"outcome":"bot_hung_up"`, 1, 10*time.Second)
	if !strings.Contains(vb.logs(), `"key":"#","source":"rfc4733"`) {
		t.Error("baresip's # did not arrive as RFC 4733")
	}
	time.Sleep(500 * time.Millisecond)
	baresipCtrl(t, ctrl, "quit", "")
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Error("baresip did not quit")
	}
	decs, _ := filepath.Glob(filepath.Join(bp.recordings, "dump-*-dec.wav"))
	if len(decs) == 0 {
		t.Fatalf("baresip recorded nothing:\n%s", phoneLog())
	}
	heard, got, err := readWAV(decs[0])
	if err != nil || got != rate {
		t.Fatalf("recording: %v (rate %d, want %d)", err, got, rate)
	}
	t.Logf("baresip heard %.1f s", float64(len(heard))/float64(rate))
	// What the phone should have heard: the demo's audio at the call's
	// rate, through the call's codec.
	asHeard := func(pcm24 []int16) []int16 {
		pcm := resample.MustNew(24000, rate).Process(nil, pcm24)
		return codec.Decode(nil, codec.Encode(nil, pcm))
	}
	best, off := testpeer.AlignedCorrelation(heard, loudest(asHeard(greetingPCM()), rate))
	t.Logf("greeting found at %.2f s, correlation %.3f", float64(off)/float64(rate), best)
	if best < 0.8 {
		t.Errorf("the recording does not contain the greeting (correlation %.3f)", best)
	}
	goodbye := asHeard(realtimetest.GoodbyeAudio())
	best, off = testpeer.AlignedCorrelation(heard, goodbye[rate/10:rate/2])
	t.Logf("goodbye found at %.2f s, correlation %.3f", float64(off)/float64(rate), best)
	if best < 0.8 {
		t.Errorf("the recording does not contain the goodbye (correlation %.3f)", best)
	}
	if !strings.Contains(vb.logs(), `"call_id":"`+id+`"`) {
		t.Errorf("the log does not name the call %s the API gave", id)
	}
}
