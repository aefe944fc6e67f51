package bridge

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/voicebot/voicebot/internal/testpeer"
	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/realtime/realtimetest"
)

// HD voice in whole calls (see rig_test.go): a call that negotiated G.722
// carries 16 kHz audio both ways, resampled to and from the model's 24 kHz.

func g722Rig(t *testing.T, codec media.Codec, more func(*Config)) *rig {
	r := newRig(t, rigOptions{config: more, setup: func(s *Setup) { s.Media.Codec = codec }})
	r.phone.setCodec(codec)
	return r
}

// modelInput is the caller's audio as the model received it: the PCM16 at
// 24 kHz of every input_audio_buffer.append, in order.
func modelInput(s *realtimetest.Session) []int16 {
	b := s.InputAudio()
	pcm := make([]int16, len(b)/2)
	for i := range pcm {
		pcm[i] = int16(uint16(b[2*i]) | uint16(b[2*i+1])<<8)
	}
	return pcm
}

// The caller's 5 kHz reaches the model over G.722, and not over G.711,
// whose 8 kHz rate cannot carry it: the top of speech (s, f, th) is what
// HD voice brings the model. The greeting plays to the phone as G.722.
func TestG722CarriesTheUpperBandToTheModel(t *testing.T) {
	const amplitude = 6000.0
	heard := map[string]float64{}
	for _, codec := range []media.Codec{media.G722, media.PCMU} {
		r := g722Rig(t, codec, nil)
		r.start()
		port := r.greeted()
		s := r.session(0)
		before := len(modelInput(s))
		r.phone.tone(port, 50, 5000, amplitude) // 1 s
		r.runUntil("the caller's tone to reach the model", func() bool { return len(modelInput(s)) >= before+20000 })
		in := modelInput(s)[before:]
		// The middle of the tone, clear of its edges and the filters' delay.
		heard[codec.Name] = testpeer.ToneAmplitude(in[4800:16800], 24000, 5000)
		t.Logf("%s: the model heard the caller's 5 kHz at %.0f (sent at %.0f)", codec.Name, heard[codec.Name], amplitude)

		if codec == media.G722 {
			pkts := r.phone.payloadsOfType(media.G722.PayloadType)
			if len(pkts) == 0 || len(pkts[0]) != 160 {
				t.Fatalf("the phone got %d G.722 packets (first of %d bytes), want 160-byte frames", len(pkts), len(pkts[0]))
			}
			if top := r.phone.loudest(0); top < 2000 {
				t.Errorf("the greeting decodes to a level of %.0f over G.722, want the tone's", top)
			}
		}
		r.hangup()
		r.waitFor("the call to end", r.ended)
	}
	if g := heard["G722"]; g < 0.7*amplitude || g > 1.3*amplitude {
		t.Errorf("over G.722 the model heard 5 kHz at %.0f, want about %.0f", g, amplitude)
	}
	if u := heard["PCMU"]; u > amplitude/30 {
		t.Errorf("over G.711 the model heard 5 kHz at %.0f: an 8 kHz call cannot carry it", u)
	}
}

// Passthrough is G.711's (no Realtime model speaks G.722): a G.722 call on
// a passthrough configuration is transcoded, and says so.
func TestG722IsTranscodedUnderPassthrough(t *testing.T) {
	r := g722Rig(t, media.G722, func(c *Config) { c.Passthrough = true })
	r.start()
	r.greeted()
	in, out := sessionFormats(t, r.session(0))
	if in != "audio/pcm" || out != "audio/pcm" {
		t.Errorf("the model was set up for %s in, %s out; want audio/pcm both ways", in, out)
	}
	if !containsAll(r.logs.String(), "passthrough is for G.711 only", `"codec":"G722"`) {
		t.Errorf("no log line says why the call is transcoded:\n%s", r.logs.String())
	}
	r.hangup()
	r.waitFor("the call to end", r.ended)
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// A re-INVITE answered with PCMU ends G.722 mid-call: each direction
// follows the new rate. The caller's 8 kHz reaches the model at its pitch
// and level (echoed back), and the bot is heard at 8 kHz.
func TestG722ToPCMUMidCall(t *testing.T) {
	r := g722Rig(t, media.G722, nil)
	r.start()
	port := r.greeted()
	r.call.obs().MediaChanged(CallMedia{Remote: r.phone.addr(), Codec: media.PCMU, DTMFPayloadType: 101,
		Signalling: netip.MustParseAddr("127.0.0.1")}, false)
	r.phone.setCodec(media.PCMU)
	s := r.session(0)
	before := len(modelInput(s))
	level := r.echo(port)
	if !near(level, callerLevel) {
		t.Errorf("after the change to PCMU the caller's echo came back at level %.0f, the caller spoke at %.0f", level, callerLevel)
	}
	in := modelInput(s)[before:]
	if got := testpeer.ToneAmplitude(in[2400:12000], 24000, 300); got < 0.8*9000 || got > 1.2*9000 {
		t.Errorf("the model heard the caller's 300 Hz at %.0f, want about 9000 (at the wrong rate it would be another pitch)", got)
	}
	if !strings.Contains(r.logs.String(), "the codec's rate changed") {
		t.Error("no log line tells of the rate change")
	}
}
