package peers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/internal/testpeer"
	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/resample"
)

// HD voice with real phones: baresip with only its g722 module and
// Linphone with only G.722 call voicebot and hear the demo model at 16 kHz
// (voicebot calling baresip out over G.722: TestBaresipAnswersAnOutboundCall).

// greeting16 is the demo's greeting as a G.722 phone hears it: at 16 kHz,
// through the codec.
func greeting16() []int16 {
	pcm := resample.MustNew(24000, 16000).Process(nil, greetingPCM())
	return media.G722.Decode(nil, media.G722.Encode(nil, pcm))
}

// loudestTone is the strongest the tone at freq is in any half second of x.
func loudestTone(x []int16, rate, freq float64) float64 {
	top, window := 0.0, int(rate/2)
	for at := 0; at+window <= len(x); at += window / 4 {
		top = max(top, testpeer.ToneAmplitude(x[at:at+window], rate, freq))
	}
	return top
}

func sh(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

// baresip, offering G.722 only, calls voicebot and says a sentence and then
// holds a 5 kHz tone (the band G.711 cannot carry): what it records is at
// 16 kHz and holds the greeting, the echo of the sentence and the tone.
func TestBaresipG722HearsGreetingAndEcho(t *testing.T) {
	need(t, "baresip", "espeak-ng", "sox")
	vb := startVoicebot(t, 36200)
	work := t.TempDir()
	sh(t, "espeak-ng", "-w", filepath.Join(work, "say22.wav"), "Hello, can you hear me in high definition?")
	sh(t, "sox", filepath.Join(work, "say22.wav"), "-r", "16000", "-c", "1", "-b", "16", filepath.Join(work, "say16.wav"))
	sh(t, "sox", "-n", "-r", "16000", "-c", "1", "-b", "16", filepath.Join(work, "tone.wav"), "synth", "1", "sine", "5000", "vol", "0.25")
	// 7 s while the greeting plays, the sentence, the tone, then silence for the echo.
	sh(t, "sox", filepath.Join(work, "say16.wav"), filepath.Join(work, "tone.wav"), filepath.Join(work, "in.wav"), "pad", "7", "9")
	said, _, err := readWAV(filepath.Join(work, "say16.wav"))
	if err != nil {
		t.Fatal(err)
	}
	phone := newBaresipWith(t, "g722", work, filepath.Join(work, "in.wav"), "<sip:tester@127.0.0.1>;regint=0", "module stdio.so")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "baresip", "-f", phone.dir, "-e", "/dial sip:bot@"+vb.addr, "-t", "24")
	out, err := cmd.CombinedOutput()
	if err != nil && ctx.Err() != nil {
		t.Fatalf("baresip hung: %s", lastLines(string(out), 30))
	}
	decs, _ := filepath.Glob(filepath.Join(phone.recordings, "dump-*-dec.wav"))
	if len(decs) == 0 {
		t.Fatalf("baresip recorded nothing:\n%s", lastLines(string(out), 30))
	}
	heard, rate, err := readWAV(decs[0])
	if err != nil || rate != 16000 {
		t.Fatalf("recording: %v (rate %d, want G.722's 16000)", err, rate)
	}
	if !strings.Contains(vb.logs(), `"codec":"G722","rate":"16 kHz"`) {
		t.Errorf("voicebot did not log the call as G.722 at 16 kHz")
	}
	t.Logf("baresip heard %.1f s of audio", float64(len(heard))/16000)

	best, off := testpeer.AlignedCorrelation(heard, loudest(greeting16(), 16000))
	t.Logf("greeting found at %.2f s, correlation %.3f", float64(off)/16000, best)
	if best < 0.8 {
		t.Errorf("the recording does not contain the greeting (correlation %.3f)", best)
	}
	best, off = testpeer.AlignedCorrelation(heard, loudest(said, 16000))
	t.Logf("echo of the caller found at %.2f s, correlation %.3f", float64(off)/16000, best)
	if best < 0.8 {
		t.Errorf("the recording does not contain the echo of what baresip said (correlation %.3f)", best)
	}
	// The tone follows the sentence; its echo, the sentence's.
	const sent = 0.25 * 32767
	tone := loudestTone(heard[max(off, 0):], 16000, 5000)
	t.Logf("the caller's 5 kHz tone came back at %.0f (sent at %.0f)", tone, sent)
	if tone < 0.5*sent {
		t.Errorf("the 5 kHz tone came back at %.0f of %.0f: the upper band was lost on the way", tone, sent)
	}
}

// linphoneRC is a Linphone configuration for a headless call on loopback
// with G.722 alone (every codec Linphone would add by default is listed
// off). Its offer is "m=audio … RTP/AVP 9 96" with no rtpmap for the
// static 9, which voicebot must read as G.722.
const linphoneRC = `[sip]
sip_port=-1
sip_tcp_port=0
sip_tls_port=0
sip_dtls_port=0
bind_address=127.0.0.1
contact=sip:linphone@127.0.0.1
guess_hostname=0
register_only_when_network_is_up=0
[rtp]
bind_address=127.0.0.1
audio_rtp_port=%d-%d
video_rtp_port=%d-%d
text_rtp_port=%d-%d
[video]
capture=0
display=0
[sound]
echocancellation=0
[audio_codec_0]
mime=G722
rate=8000
channels=1
enabled=1
[audio_codec_1]
mime=opus
rate=48000
channels=2
enabled=0
[audio_codec_2]
mime=speex
rate=16000
channels=1
enabled=0
[audio_codec_3]
mime=speex
rate=8000
channels=1
enabled=0
[audio_codec_4]
mime=PCMU
rate=8000
channels=1
enabled=0
[audio_codec_5]
mime=PCMA
rate=8000
channels=1
enabled=0
[audio_codec_6]
mime=G729
rate=8000
channels=1
enabled=0
[audio_codec_7]
mime=speex
rate=32000
channels=1
enabled=0
[audio_codec_8]
mime=GSM
rate=8000
channels=1
enabled=0
`

// Linphone, with G.722 alone, calls voicebot, plays a sentence and records
// what it hears: the greeting at 16 kHz. (Linphone scales G.722's samples
// by 6 dB each way; correlation does not mind.)
func TestLinphoneCallsOverG722(t *testing.T) {
	need(t, "linphonec", "espeak-ng", "sox")
	vb := startVoicebot(t, 36600)
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".local", "share", "linphone"), 0o755); err != nil {
		t.Fatal(err)
	}
	rtp := freePort(t) &^ 1
	rc := filepath.Join(home, "linphonerc")
	if err := os.WriteFile(rc, fmt.Appendf(nil, linphoneRC, rtp, rtp+9, rtp+10, rtp+19, rtp+20, rtp+29), 0o644); err != nil {
		t.Fatal(err)
	}
	sh(t, "espeak-ng", "-w", filepath.Join(home, "say22.wav"), "This is Linphone calling in wideband.")
	sh(t, "sox", filepath.Join(home, "say22.wav"), "-r", "16000", "-c", "1", "-b", "16", filepath.Join(home, "say.wav"), "vol", "0.5", "pad", "6", "6")
	heardPath := filepath.Join(home, "heard.wav")

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "linphonec", "-c", rc, "-d", "6", "-l", filepath.Join(home, "linphone.log"))
	cmd.Env = append(os.Environ(), "HOME="+home)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(stdin, "soundcard use files\nplay %s\nrecord %s\ncall sip:bot@%s\n", filepath.Join(home, "say.wav"), heardPath, vb.addr)
	vb.waitLog(t, `"message":"call: answered"`, 1, 15*time.Second)
	time.Sleep(12 * time.Second) // the greeting plays, the sentence is said and echoed
	fmt.Fprintf(stdin, "terminate all\n")
	time.Sleep(500 * time.Millisecond)
	fmt.Fprintf(stdin, "quit\n")
	stdin.Close()
	if err := cmd.Wait(); err != nil && ctx.Err() != nil {
		t.Fatalf("linphonec hung:\n%s", lastLines(out.String(), 30))
	}
	if !strings.Contains(vb.logs(), `"codec":"G722","rate":"16 kHz"`) {
		t.Errorf("voicebot did not answer Linphone with G.722:\n%s", lastLines(out.String(), 20))
	}
	heard, rate, err := readWAV(heardPath)
	if err != nil || rate != 16000 {
		t.Fatalf("Linphone's recording: %v (rate %d, want 16000)\n%s", err, rate, lastLines(out.String(), 20))
	}
	best, off := testpeer.AlignedCorrelation(heard, loudest(greeting16(), 16000))
	t.Logf("Linphone heard %.1f s; greeting found at %.2f s, correlation %.3f", float64(len(heard))/16000, float64(off)/16000, best)
	if best < 0.8 {
		t.Errorf("Linphone's recording does not contain the greeting (correlation %.3f)", best)
	}
	if !strings.Contains(vb.logs(), `"who":"caller"`) {
		t.Error("voicebot did not hear Linphone's sentence")
	}
}
