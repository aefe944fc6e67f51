package sip

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// The codecs as server passes them from media's table.
var (
	pcmu = Codec{Name: "PCMU", PayloadType: 0, ClockRate: 8000}
	pcma = Codec{Name: "PCMA", PayloadType: 8, ClockRate: 8000}
	g722 = Codec{Name: "G722", PayloadType: 9, ClockRate: 8000}
)

// G.722 as phones offer it: 9 G722/8000 (RFC 3551's clock, though the audio
// is 16 kHz), preferred by default over G.711 the phone also offers; the
// answer keeps G722/8000 and telephone-event/8000.
func TestNegotiateG722(t *testing.T) {
	offer := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 6000 RTP/AVP 0 8 9 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
	m, err := Negotiate([]byte(offer), []Codec{g722, pcmu, pcma}, SRTPOptional)
	if err != nil || m.Codec != g722 || m.DTMFPayloadType != 101 || m.Quirk != "" {
		t.Fatalf("got %+v, %v; want G722 with events on 101", m, err)
	}
	ans, err := Answer(m, "127.0.0.1", 7000, 1, 1)
	for _, want := range []string{"m=audio 7000 RTP/AVP 9 101", "a=rtpmap:9 G722/8000", "a=rtpmap:101 telephone-event/8000"} {
		if err != nil || !strings.Contains(string(ans), want) {
			t.Errorf("answer lacks %q: %q, %v", want, ans, err)
		}
	}
	// Configured to prefer G.711, the same offer gets PCMU.
	if m, _ := Negotiate([]byte(offer), []Codec{pcmu, g722}, SRTPOptional); m.Codec != pcmu {
		t.Errorf("with PCMU preferred: %+v", m.Codec)
	}
	// Our offer lists the preference in order, one telephone-event at 8000.
	o, err := Offer("127.0.0.1", 7000, []Codec{g722, pcmu, pcma}, 1, 1, "sendrecv", nil)
	for _, want := range []string{"m=audio 7000 RTP/AVP 9 0 8 101", "a=rtpmap:9 G722/8000", "a=rtpmap:101 telephone-event/8000"} {
		if err != nil || !strings.Contains(string(o), want) {
			t.Errorf("offer lacks %q: %q, %v", want, o, err)
		}
	}
}

// Many phones write G.722's sampling rate where RFC 3551 fixes its clock:
// G722/16000 is read as G722/8000, answered correctly, and said in Quirk
// (for the log); no other codec's rate is bent.
func TestNegotiateG722WrittenAt16000(t *testing.T) {
	offer := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 6000 RTP/AVP 9 101\r\na=rtpmap:9 G722/16000\r\na=rtpmap:101 telephone-event/8000\r\n"
	m, err := Negotiate([]byte(offer), []Codec{g722, pcmu}, SRTPOptional)
	if err != nil || m.Codec != g722 || !strings.Contains(m.Quirk, "G722/16000") || m.DTMFPayloadType != 101 {
		t.Fatalf("got %+v, %v; want G722 read leniently, the quirk said", m, err)
	}
	ans, _ := Answer(m, "127.0.0.1", 7000, 1, 1)
	if !strings.Contains(string(ans), "a=rtpmap:9 G722/8000") {
		t.Errorf("answer %q: want the standard rate back", ans)
	}
	// Offered beside what is chosen, the misnamed codec is no quirk of the call.
	both := strings.Replace(strings.Replace(offer, "RTP/AVP 9 101", "RTP/AVP 0 9 101", 1), "a=rtpmap:9", "a=rtpmap:0 PCMU/8000\r\na=rtpmap:9", 1)
	if m, err := Negotiate([]byte(both), []Codec{pcmu, g722}, SRTPOptional); err != nil || m.Codec != pcmu || m.Quirk != "" {
		t.Errorf("PCMU chosen beside G722/16000: %+v, %v; want no quirk", m, err)
	}
	// Events at the misstated rate only: said.
	only16 := strings.Replace(offer, "telephone-event/8000", "telephone-event/16000", 1)
	if m, _ := Negotiate([]byte(only16), []Codec{g722}, SRTPOptional); m.DTMFPayloadType != 0 || !strings.Contains(m.Quirk, "no telephone-event/8000") {
		t.Errorf("telephone-event/16000 only: %+v", m)
	}
	bent := strings.Replace(offer, "9 G722/16000", "0 PCMU/16000", 1)
	if _, err := Negotiate([]byte(strings.Replace(bent, "RTP/AVP 9", "RTP/AVP 0", 1)), []Codec{pcmu}, SRTPOptional); !errors.Is(err, ErrSDPNoCodec) {
		t.Errorf("PCMU/16000 taken: %v", err)
	}
}

// A codec on another clock takes its own rtpmap and the telephone-event of
// its clock (RFC 4733 §2.1), in the answer too: SDP reads the table's entry.
func TestNegotiateFollowsTheCodecsClock(t *testing.T) {
	wide := Codec{Name: "WIDE", PayloadType: 9, ClockRate: 16000}
	offer := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 6000 RTP/AVP 0 9 101 102\r\na=rtpmap:101 telephone-event/8000\r\na=rtpmap:102 telephone-event/16000\r\n"
	m, err := Negotiate([]byte(offer), []Codec{wide, pcmu}, SRTPOptional)
	if err != nil || m.Codec != wide || m.DTMFPayloadType != 102 {
		t.Fatalf("got %+v, %v; want WIDE/16000 (static 9, no rtpmap) with events on 102", m, err)
	}
	ans, err := Answer(m, "127.0.0.1", 7000, 1, 1)
	if err != nil || !strings.Contains(string(ans), "a=rtpmap:9 WIDE/16000") || !strings.Contains(string(ans), "a=rtpmap:102 telephone-event/16000") {
		t.Fatalf("answer %q, %v", ans, err)
	}
	m, err = Negotiate([]byte(offer), []Codec{pcmu, wide}, SRTPOptional)
	if err != nil || m.Codec != pcmu || m.DTMFPayloadType != 101 {
		t.Fatalf("got %+v, %v; want PCMU with events on 101", m, err)
	}
	_, err = Negotiate([]byte(strings.Replace(offer, "RTP/AVP 0 9", "RTP/AVP 9", 1)+"a=rtpmap:9 WIDE/16000\r\n"), []Codec{{Name: "WIDE", PayloadType: 9, ClockRate: 8000}}, SRTPOptional)
	if err == nil || !strings.Contains(err.Error(), "WIDE/8000") {
		t.Fatalf("a codec offered on another clock was taken: %v", err)
	}
	o, err := Offer("127.0.0.1", 7000, []Codec{wide, pcmu}, 1, 1, "sendrecv", nil)
	if err != nil || !strings.Contains(string(o), "a=rtpmap:9 WIDE/16000") || !strings.Contains(string(o), "a=rtpmap:0 PCMU/8000") ||
		!strings.Contains(string(o), "telephone-event/16000") {
		t.Fatalf("offer %q, %v", o, err)
	}
}

const offerBoth = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:30\r\n"

func TestNegotiatePicksOurPreference(t *testing.T) {
	m, err := Negotiate([]byte(offerBoth), []Codec{pcmu, pcma}, SRTPOptional)
	if err != nil {
		t.Fatal(err)
	}
	if m.Codec != pcmu || m.DTMFPayloadType != 101 || m.PtimeMS != 30 || m.Direction != "sendrecv" {
		t.Errorf("got %+v", m)
	}
	if m.Remote != netip.MustParseAddrPort("127.0.0.1:6000") {
		t.Errorf("remote %v", m.Remote)
	}
	m, _ = Negotiate([]byte(offerBoth), []Codec{pcma}, SRTPOptional)
	if m.Codec.Name != "PCMA" || m.Codec.PayloadType != 8 {
		t.Errorf("PCMA preference: %+v", m.Codec)
	}
}

func TestNegotiateStaticWithoutRtpmapAndMediaLevelConnection(t *testing.T) {
	offer := "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\n" +
		"m=audio 7000 RTP/AVP 0\r\nc=IN IP4 127.0.0.2\r\na=sendonly\r\n"
	m, err := Negotiate([]byte(offer), []Codec{pcmu}, SRTPOptional)
	if err != nil {
		t.Fatal(err)
	}
	if m.Remote.String() != "127.0.0.2:7000" || m.Direction != "recvonly" || m.DTMFPayloadType != 0 {
		t.Errorf("got %+v", m)
	}
}

func TestNegotiateFailures(t *testing.T) {
	cases := []struct {
		name, offer string
		want        error
	}{
		{"garbage", "hello", ErrSDPMalformed},
		{"no audio", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\n", ErrSDPNoAudio},
		{"no codec", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 9 18\r\n", ErrSDPNoCodec},
		{"srtp without crypto", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/SAVP 0\r\n", ErrSDPNoAudio},
		{"rejected stream", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n", ErrSDPNoAudio},
		{"hostname", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 pbx.example\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n", ErrSDPNoAudio},
		{"no connection", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n", ErrSDPMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Negotiate([]byte(c.offer), []Codec{pcmu, pcma}, SRTPOptional)
			if !errors.Is(err, c.want) {
				t.Errorf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestAnswerRoundTrips(t *testing.T) {
	m := Media{Codec: pcma, DTMFPayloadType: 101, Direction: "sendrecv"}
	ans, err := Answer(m, "203.0.113.7", 12000, 42, 1)
	if err != nil {
		t.Fatal(err)
	}
	s := string(ans)
	for _, want := range []string{"c=IN IP4 203.0.113.7", "m=audio 12000 RTP/AVP 8 101", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000", "a=sendrecv", "a=ptime:20"} {
		if !strings.Contains(s, want) {
			t.Errorf("answer lacks %q:\n%s", want, s)
		}
	}
	back, err := Negotiate(ans, []Codec{pcma}, SRTPOptional)
	if err != nil || back.Codec != m.Codec || back.DTMFPayloadType != 101 || back.Remote.Port() != 12000 {
		t.Errorf("answer does not parse back: %+v %v", back, err)
	}
}

func FuzzNegotiate(f *testing.F) {
	f.Add([]byte(offerBoth))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 9 101\r\na=rtpmap:9 G722/16000\r\na=rtpmap:101 telephone-event/8000\r\n"))
	f.Add([]byte("v=0\r\nm=audio 1 RTP/AVP 0\r\n"))
	f.Add([]byte(savpOffer("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + testKeyB64 + "|2^20|1:4\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:" + testKeyB64 + "\r\n")))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Negotiate(data, []Codec{g722, pcmu, pcma}, SRTPOptional)
		if err == nil {
			if m.SRTP != nil {
				if len(m.SRTP.Remote) != sdesKeyLen {
					t.Fatalf("accepted a %d-byte SRTP key", len(m.SRTP.Remote))
				}
				m.SRTP.Local = NewSRTPKey()
			}
			if _, err := Answer(m, "127.0.0.1", 10000, 1, 1); err != nil {
				t.Fatalf("negotiated %+v but cannot answer: %v", m, err)
			}
		}
	})
}

func TestWildcardBindAdvertisesARoutableAddress(t *testing.T) {
	u := &UA{cfg: Config{Listen: netip.MustParseAddrPort("0.0.0.0:5060"), MediaIP: netip.MustParseAddr("0.0.0.0")}}
	if h := u.hostFor(u.cfg.MediaIP, "127.0.0.1:5071"); h != "127.0.0.1" {
		t.Errorf("advertised %q for a caller on loopback", h)
	}
	u.cfg.ExternalHost = "sip.example.net"
	if h := u.hostFor(u.cfg.MediaIP, "127.0.0.1:5071"); h != "sip.example.net" {
		t.Errorf("external address not used: %q", h)
	}
	u = &UA{cfg: Config{Listen: netip.MustParseAddrPort("127.0.0.2:5060")}}
	if h := u.hostFor(u.cfg.Listen.Addr(), "127.0.0.1:5071"); h != "127.0.0.2" {
		t.Errorf("bound address not used: %q", h)
	}
}

func TestParseDTMFBodies(t *testing.T) {
	for body, want := range map[string]rune{"Signal=5\r\nDuration=160\r\n": '5', "signal= #\nDuration=100": '#', "Signal=11\r\n": '#', "Signal=*": '*', "Signal=14": 'C'} {
		if got, ok := parseDTMFRelay(body); !ok || got != want {
			t.Errorf("%q: %q %v, want %q", body, got, ok, want)
		}
	}
	for _, bad := range []string{"", "Duration=100", "Signal=", "Signal=55", "Signal=X", "Signal=16"} {
		if got, ok := parseDTMFRelay(bad); ok {
			t.Errorf("%q parsed as %q", bad, got)
		}
	}
}
