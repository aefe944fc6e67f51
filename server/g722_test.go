package server

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/internal/testpeer"
	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/resample"
)

// snrDB is the signal-to-noise ratio of got against ref: got is aligned
// on ref and scaled to it by least squares, and what is left over is the
// noise.
func snrDB(ref, got []int16) float64 {
	_, lag := testpeer.AlignedCorrelation(got, ref)
	if lag < 0 {
		return math.Inf(-1)
	}
	seg := got[lag : lag+len(ref)]
	var rg, gg float64
	for i, v := range seg {
		rg += float64(ref[i]) * float64(v)
		gg += float64(v) * float64(v)
	}
	g := rg / gg
	var sig, noise float64
	for i, v := range seg {
		d := float64(ref[i]) - g*float64(v)
		sig += float64(ref[i]) * float64(ref[i])
		noise += d * d
	}
	return 10 * math.Log10(sig/noise)
}

// A phone offering G.722 first is answered with it and heard at 16 kHz:
// the greeting arrives as G.722 (payload type 9, 160 bytes and 160
// timestamp units per 20 ms), and the caller's wideband speech reaches the
// model, and comes back from the demo model's echo, as clean as G.722
// alone leaves it: each way, voicebot's decoding, resampling between 16
// and 24 kHz and encoding cost at most 1 dB of SNR beyond the codec's own.
// (End to end the speech is coded twice, in and out, and loses about 3 dB
// more than one coding: two codings' noise. The same speech coded twice
// with nothing between loses almost nothing more, since G.722 re-encoding
// its own output in step reproduces its codes; no real path is like that.)
func TestG722CallEndToEnd(t *testing.T) {
	r := startRig(t, nil, nil)
	c := r.caller()
	res, err := c.Invite(c.OfferCodecs(1, "0 PCMU/8000", "9 G722/8000"), 5*time.Second)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	if c.Codec != media.G722 || !strings.Contains(string(res.Body()), "a=rtpmap:9 G722/8000") {
		t.Fatalf("answered with %s:\n%s", c.Codec.Name, res.Body())
	}
	waitFor(t, "greeting audio", 5*time.Second, func() bool { return rmsOf(audible(c.Received())) > 100 })
	time.Sleep(1 * time.Second) // let the greeting finish playing
	got := c.Received()
	for i, p := range got {
		if p.Header.PayloadType != 9 || len(p.Payload) != 160 || len(p.Audio) != 320 {
			t.Fatalf("packet %d: PT %d, %d bytes (%d samples)", i, p.Header.PayloadType, len(p.Payload), len(p.Audio))
		}
		if i > 0 && !p.Header.Marker && p.Header.Timestamp-got[i-1].Header.Timestamp != 160 {
			t.Fatalf("packet %d: timestamp step %d, want 160", i, p.Header.Timestamp-got[i-1].Header.Timestamp)
		}
	}

	speech := testpeer.WideSpeech(1.5, 3)
	before := len(c.Received())
	c.SendAudio(speech, 100, 16000, 0xCAFE)
	ref := speech[4000:20000] // a second from the middle
	// The echo plays: the model says so, then its 1.5 s arrive.
	waitFor(t, "the echo", 10*time.Second, func() bool { return strings.Contains(r.logs.String(), `"text":"(echo of`) })
	waitFor(t, "the echo's audio", 10*time.Second, func() bool {
		loud := 0
		for _, p := range c.Received()[before:] {
			if rmsOf(p.Audio) > 300 {
				loud++
			}
		}
		return loud >= 70
	})
	time.Sleep(500 * time.Millisecond)
	echo := audible(c.Received()[before:])
	if corr, _ := testpeer.AlignedCorrelation(echo, ref); corr < 0.9 {
		t.Fatalf("the echo does not hold the caller's speech (correlation %.3f)", corr)
	}

	// The way in: what the model heard (24 kHz), brought to 16 kHz.
	heard := to16k(t, r.server.Sessions()[0].InputAudio())
	in, inAlone := snrDB(ref, heard), snrDB(ref, media.G722.Decode(nil, media.G722.Encode(nil, speech)))
	// The way out: the echo the model spoke (what it heard) as the caller heard it.
	_, lag := testpeer.AlignedCorrelation(heard, ref)
	// It has been coded once already: coded again in step with that coding,
	// it would come out all but unchanged (see above), so G.722 alone is
	// measured a sample out of step, as any real second coding is.
	spoken := heard[max(lag-4000, 0):min(lag+20000, len(heard))]
	spokenRef := spoken[4000 : len(spoken)-4000]
	out, outAlone := snrDB(spokenRef, echo), snrDB(spokenRef, media.G722.Decode(nil, media.G722.Encode(nil, spoken[1:])))
	t.Logf("speech SNR in: %.2f dB to the model, %.2f dB G.722 alone; out: %.2f dB to the caller, %.2f dB G.722 alone; end to end %.2f dB",
		in, inAlone, out, outAlone, snrDB(ref, echo))
	if in < inAlone-1 {
		t.Errorf("the model hears the caller %.2f dB worse than G.722 alone", inAlone-in)
	}
	if out < outAlone-1 {
		t.Errorf("the caller hears the bot %.2f dB worse than G.722 alone", outAlone-out)
	}
	if code, err := c.Bye(5 * time.Second); err != nil || code != 200 {
		t.Fatalf("BYE: %d %v", code, err)
	}
	waitFor(t, "call log", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), `"message":"call: ended"`) })
	if !strings.Contains(r.logs.String(), `"codec":"G722","rate":"16 kHz"`) {
		t.Error("the log does not say the call was G.722 at 16 kHz")
	}
}

// to16k is the model's PCM16 at 24 kHz at 16 kHz, by voicebot's resampler.
func to16k(t *testing.T, b []byte) []int16 {
	t.Helper()
	pcm := make([]int16, len(b)/2)
	for i := range pcm {
		pcm[i] = int16(uint16(b[2*i]) | uint16(b[2*i+1])<<8)
	}
	rs := resample.MustNew(24000, 16000)
	return rs.Flush(rs.Process(nil, pcm))
}

// A phone writing G.722's sampling rate as its RTP clock (G722/16000, a
// common error) is answered with G.722 at the standard 8000, and the log
// says how its SDP was read.
func TestG722WrittenAt16000IsTaken(t *testing.T) {
	r := startRig(t, nil, nil)
	c := r.caller()
	res, err := c.Invite(c.OfferCodecs(1, "9 G722/16000"), 5*time.Second)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	if !strings.Contains(string(res.Body()), "a=rtpmap:9 G722/8000") {
		t.Errorf("answer:\n%s", res.Body())
	}
	waitFor(t, "greeting audio", 5*time.Second, func() bool { return rmsOf(audible(c.Received())) > 100 })
	if !strings.Contains(r.logs.String(), `G722/16000: read as G722/8000`) {
		t.Errorf("no log line says how the offer was read")
	}
	if code, err := c.Bye(5 * time.Second); err != nil || code != 200 {
		t.Fatalf("BYE: %d %v", code, err)
	}
}

// A G.722 call that a re-INVITE moves to PCMU (the phone's leg now goes
// through a G.711-only gateway, say): the answer is PCMU, both directions
// follow the new rate, and the caller's speech still comes back from the
// model's echo, as PCMU at 8 kHz.
func TestG722CallSwitchedToPCMU(t *testing.T) {
	r := startRig(t, nil, nil)
	c := r.caller()
	if res, err := c.Invite(c.OfferCodecs(1, "9 G722/8000", "0 PCMU/8000"), 5*time.Second); err != nil || res.StatusCode != 200 || c.Codec != media.G722 {
		t.Fatalf("INVITE: %v %v (codec %s)", res, err, c.Codec.Name)
	}
	waitFor(t, "greeting audio", 5*time.Second, func() bool { return rmsOf(audible(c.Received())) > 100 })
	res, err := c.Invite(c.OfferCodecs(2, "0 PCMU/8000"), 5*time.Second)
	if err != nil || res.StatusCode != 200 || c.Codec != media.PCMU {
		t.Fatalf("re-INVITE with PCMU only: %v %v (codec %s)", res, err, c.Codec.Name)
	}
	time.Sleep(1500 * time.Millisecond) // the greeting's rest plays, converted to PCMU
	before := len(c.Received())
	speech := testpeer.Speech(1.5, 2)
	c.SendAudio(speech, 500, 90000, 0xBEEF)
	waitFor(t, "the echo over PCMU", 10*time.Second, func() bool {
		var pcmu []int16
		for _, p := range c.Received()[before:] {
			if p.Header.PayloadType == 0 {
				pcmu = append(pcmu, p.Audio...)
			}
		}
		best, _ := testpeer.BestCorrelation(pcmu, speech[2000:10000])
		return best > 0.8
	})
	for _, p := range c.Received()[before:] {
		if p.Header.PayloadType != 0 {
			t.Fatalf("after the switch a packet of payload type %d", p.Header.PayloadType)
		}
	}
	if !strings.Contains(r.logs.String(), "the codec's rate changed") {
		t.Error("no log line tells of the rate change")
	}
}
