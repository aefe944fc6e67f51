package bridge

import (
	"encoding/json"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/realtime/realtimetest"
)

// Passthrough in whole calls (see rig_test.go): the model takes and speaks
// the call's G.711, nothing is resampled. The test peer echoes what the
// caller says, so the level of the echo the phone gets back tells whether
// the model heard the caller's audio as it was.

// callerLevel is the RMS of the tone phone.talk sends.
var callerLevel = 9000 / math.Sqrt2

func passthroughRig(t *testing.T, codec media.Codec, more func(*Config)) *rig {
	r := newRig(t, rigOptions{
		config: func(c *Config) {
			c.Passthrough = true
			if more != nil {
				more(c)
			}
		},
		setup: func(s *Setup) { s.Media.Codec = codec },
	})
	r.phone.setCodec(codec)
	return r
}

// sessionFormats returns the input and output audio formats of the first
// session.update a session received (GA shape).
func sessionFormats(t *testing.T, s *realtimetest.Session) (in, out string) {
	t.Helper()
	var ev struct {
		Session struct {
			Audio struct {
				Input, Output struct {
					Format struct{ Type string }
				}
			}
		}
	}
	if err := json.Unmarshal(s.ReceivedOfType("session.update")[0].Raw, &ev); err != nil {
		t.Fatal(err)
	}
	return ev.Session.Audio.Input.Format.Type, ev.Session.Audio.Output.Format.Type
}

// echo makes the caller say something and lets the model's echo of it
// play; it returns the loudest frame of the echo, 0 when no echo came
// (within 15 s of real time).
func (r *rig) echo(port int) float64 {
	r.t.Helper()
	s := r.session(len(r.srv.Sessions()) - 1)
	n := len(s.Responses())
	from := r.phone.packets()
	r.phone.talk(port, 50, true)
	r.phone.talk(port, 50, false)
	echoed := func() bool {
		rs := s.Responses()
		return len(rs) > n && rs[n].Status == "completed"
	}
	for deadline := time.Now().Add(15 * time.Second); !echoed(); {
		if time.Now().After(deadline) {
			r.t.Logf("no echo: the model heard the caller start speaking %d times", s.SpeechStarts())
			return 0
		}
		r.run(20 * time.Millisecond)
	}
	r.run(2 * time.Second)
	return r.phone.loudest(from)
}

func near(got, want float64) bool { return got > 0.7*want && got < 1.3*want }

// The model is configured for the call's codec both ways; the caller's
// audio reaches it undistorted (its echo comes back at the caller's
// level) and its greeting reaches the caller.
func TestPassthroughSpeaksTheCallsCodec(t *testing.T) {
	for _, c := range []struct {
		codec  media.Codec
		format string
	}{{media.PCMU, "audio/pcmu"}, {media.PCMA, "audio/pcma"}} {
		t.Run(c.codec.Name, func(t *testing.T) {
			r := passthroughRig(t, c.codec, nil)
			r.start()
			port := r.greeted()
			if in, out := sessionFormats(t, r.session(0)); in != c.format || out != c.format {
				t.Errorf("the model takes %s and speaks %s, want %s both ways", in, out, c.format)
			}
			if level := r.echo(port); !near(level, callerLevel) {
				t.Errorf("the caller's echo came back at level %.0f, the caller spoke at %.0f", level, callerLevel)
			}
		})
	}
}

// The echo test itself tells distorted audio from clean: without
// passthrough (PCM16 to the model) the echo comes back at the same level.
func TestTranscodedCallEchoesAtTheCallersLevel(t *testing.T) {
	r := newRig(t, rigOptions{})
	r.start()
	port := r.greeted()
	if in, out := sessionFormats(t, r.session(0)); in != "audio/pcm" || out != "audio/pcm" {
		t.Errorf("a transcoded call's model takes %s and speaks %s", in, out)
	}
	if level := r.echo(port); !near(level, callerLevel) {
		t.Errorf("the caller's echo came back at level %.0f, the caller spoke at %.0f", level, callerLevel)
	}
}

// In passthrough the local speech detector still hears the caller (it
// decodes the G.711 for itself): a caller who talks over the greeting
// stops it. The model's VAD is set too deaf to hear this caller, so the
// local detector alone can stop the bot.
func TestPassthroughLocalBargeIn(t *testing.T) {
	const greetingMS = 4000
	r := newRig(t, rigOptions{
		config:  func(c *Config) { c.Passthrough = true; c.BargeIn.LocalVAD = true },
		server:  func(o *realtimetest.Options) { o.Greeting = tone24(greetingMS, 440) },
		profile: func(p *Profile) { p.Session.TurnDetection.Threshold = 1 }, // -20 dBFS
	})
	r.start()
	port := r.answered()
	s := r.session(0)
	r.spoken(s, 0)
	r.run(400 * time.Millisecond)
	r.phone.talkAt(port, 15, 2000) // about -27 dBFS: above the local detector's -35
	r.runUntil("the model told what the caller heard", func() bool { return len(s.ReceivedOfType("conversation.item.truncate")) > 0 })
	r.run(200 * time.Millisecond) // what was on the wire arrives
	heard := r.phone.audio()
	r.run(time.Second)
	if more := r.phone.audio() - heard; more != 0 {
		t.Errorf("the greeting went on for %d frames after the caller talked over it", more)
	}
	if heard > greetingMS/20/2 {
		t.Errorf("the caller heard %d frames of the greeting's %d", heard, greetingMS/20)
	}
	if s.SpeechStarts() != 0 {
		t.Error("the model's VAD heard the caller: the test does not isolate the local detector")
	}
}

// A re-INVITE that moves a passthrough call from PCMU to PCMA: the model
// still speaks PCMU (its session is configured), so the bot's audio is
// transcoded for the caller and heard at its level.
func TestPassthroughCodecChangeBotStillHeard(t *testing.T) {
	r := passthroughRig(t, media.PCMU, nil)
	r.start()
	r.greeted()
	r.call.obs().MediaChanged(CallMedia{Remote: r.phone.addr(), Codec: media.PCMA, DTMFPayloadType: 101,
		Signalling: netip.MustParseAddr("127.0.0.1")}, false)
	r.phone.setCodec(media.PCMA)
	from := r.phone.packets()
	s := r.session(0)
	r.call.obs().KeyPressed('5') // the model answers a key with a 0.4 s beep
	r.asked(s, 2)
	r.spoken(s, 1)
	r.runUntil("the beep", func() bool { return r.phone.audio() >= 400/20 })
	const beepLevel = 6000 / math.Sqrt2
	if level := r.phone.loudest(from); !near(level, beepLevel) {
		t.Errorf("after the change to PCMA the bot is heard at level %.0f, want about %.0f", level, beepLevel)
	}
}

// The same change, the other way: the caller's PCMA must reach a model
// that takes PCMU as PCMU. Handed over as they came, A-law bytes read as
// µ-law are speech distorted and 2.6 times too loud, and A-law silence
// (0xD5) a steady tone (716 as µ-law), so the model's VAD might never hear
// the caller's turn end. (The bot's direction: the test above.) And a
// change to G.722 (16 kHz, a coder with state): the caller's stream is
// decoded by a decoder of its own and brought to 8 kHz, the bot's echo to
// 16 kHz; both are heard at their level.
func TestPassthroughCodecChangeCallerStillHeard(t *testing.T) {
	for _, to := range []media.Codec{media.PCMA, media.G722} {
		t.Run(to.Name, func(t *testing.T) {
			r := passthroughRig(t, media.PCMU, nil)
			r.start()
			port := r.greeted()
			r.call.obs().MediaChanged(CallMedia{Remote: r.phone.addr(), Codec: to, DTMFPayloadType: 101,
				Signalling: netip.MustParseAddr("127.0.0.1")}, false)
			r.phone.setCodec(to)
			if level := r.echo(port); !near(level, callerLevel) {
				t.Errorf("after the change to %s the caller's echo came back at level %.0f, the caller spoke at %.0f", to.Name, level, callerLevel)
			}
			if n := len(r.phone.payloadsOfType(to.PayloadType)); n == 0 {
				t.Errorf("no %s packet reached the phone after the change", to.Name)
			}
		})
	}
}
