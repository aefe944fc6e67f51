package media

import (
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/voicebot/voicebot/clock"
)

// Every entry of the table must agree with itself: the rest of voicebot
// trusts its frame sizes and rates instead of assuming G.711.
func TestCodecTableIsConsistent(t *testing.T) {
	seenPT := map[uint8]string{}
	for _, c := range Codecs() {
		if !c.Valid() || c.Name != strings.ToUpper(c.Name) {
			t.Errorf("%q: not a valid entry or name not upper case", c.Name)
		}
		if other, dup := seenPT[c.PayloadType]; dup {
			t.Errorf("%s and %s share payload type %d", c.Name, other, c.PayloadType)
		}
		seenPT[c.PayloadType] = c.Name
		if c.FrameSamples != c.SampleRate*FrameDurationMS/1000 {
			t.Errorf("%s: %d samples per frame at %d Hz", c.Name, c.FrameSamples, c.SampleRate)
		}
		if got := len(c.Encode(nil, make([]int16, c.FrameSamples))); got != c.FrameBytes {
			t.Errorf("%s: a frame encodes to %d bytes, the entry says %d", c.Name, got, c.FrameBytes)
		}
		if got := len(c.Decode(nil, make([]byte, c.FrameBytes))); got != c.FrameSamples {
			t.Errorf("%s: a frame decodes to %d samples, the entry says %d", c.Name, got, c.FrameSamples)
		}
		if len(c.Silence()) != c.FrameBytes {
			t.Errorf("%s: silence is %d bytes", c.Name, len(c.Silence()))
		}
		for _, v := range c.Decode(nil, c.Silence()) {
			if abs(int(v)) > 8 {
				t.Fatalf("%s: silence decodes to %d", c.Name, v)
			}
		}
		if c.FrameTimestamp() != uint32(c.ClockRate/50) {
			t.Errorf("%s: timestamp step %d", c.Name, c.FrameTimestamp())
		}
		if got, err := CodecByName(strings.ToLower(c.Name)); err != nil || got != c {
			t.Errorf("CodecByName(%q) = %v, %v", strings.ToLower(c.Name), got.Name, err)
		}
	}
	if _, err := CodecByName("G729"); err == nil || !strings.Contains(err.Error(), "PCMU, PCMA") {
		t.Errorf("unknown codec: %v, want an error naming the table", err)
	}
	if (Codec{}).Valid() {
		t.Error("the zero Codec is valid")
	}
	mine := Codecs()
	mine[0] = Codec{}
	if !Codecs()[0].Valid() {
		t.Error("Codecs returned the table itself")
	}
}

// wideTestCodec has G.722's shape (16 kHz audio, an 8 kHz RTP clock, two
// samples a byte) with a trivial coding: it proves the media path follows
// the entry, not G.711's one byte per sample at 8 kHz.
var wideTestCodec = Codec{
	Name: "WIDETEST", PayloadType: 9, ClockRate: 8000, SampleRate: 16000, FrameSamples: 320, FrameBytes: 160,
	coding: &coding{
		encode: func(dst []byte, pcm []int16) []byte {
			for i := 0; i+1 < len(pcm); i += 2 {
				dst = append(dst, byte(pcm[i]>>8))
			}
			return dst
		},
		decode: func(dst []int16, payload []byte) []int16 {
			for _, b := range payload {
				dst = append(dst, int16(int8(b))<<8, int16(int8(b))<<8)
			}
			return dst
		},
		silence: make([]byte, 160),
	},
}

func TestPlayoutAndPacerFollowTheEntry(t *testing.T) {
	clk := clock.NewFake(time.Unix(1000, 0))
	q := newPlayout(wideTestCodec)
	var sent []rtp.Packet
	p := newPacer(wideTestCodec, q, 1, 1, 1000, func(b []byte) error {
		var pkt rtp.Packet
		if err := pkt.Unmarshal(append([]byte(nil), b...)); err != nil {
			return err
		}
		sent = append(sent, pkt)
		return nil
	})
	pcm := make([]int16, 16000) // 1 s at 16 kHz
	for i := range pcm {
		pcm[i] = 0x1200
	}
	q.enqueue(ItemRef{ItemID: "a"}, wideTestCodec.Encode(nil, pcm))
	if got := q.queuedMS(); got != 1000 {
		t.Fatalf("queued %d ms, want 1000", got)
	}
	for i := 0; i < 30; i++ { // 600 ms
		p.tick(clk.Now())
		clk.Advance(20 * time.Millisecond)
	}
	if len(sent) != 30 {
		t.Fatalf("%d packets, want 30", len(sent))
	}
	for i, pkt := range sent {
		if len(pkt.Payload) != 160 || pkt.PayloadType != 9 || pkt.Payload[0] != 0x12 {
			t.Fatalf("packet %d: PT %d, %d bytes, first %#x", i, pkt.PayloadType, len(pkt.Payload), pkt.Payload[0])
		}
		if i > 0 && pkt.Timestamp-sent[i-1].Timestamp != 160 {
			t.Fatalf("packet %d: timestamp step %d, want 160 (the 8 kHz clock)", i, pkt.Timestamp-sent[i-1].Timestamp)
		}
	}
	acc, ok := q.account("a")
	if !ok || acc.SentSamples != 30*320 || acc.SentMS() != 600 || acc.QueuedMS() != 400 || acc.SampleRate != 16000 {
		t.Errorf("account %+v (sent %d ms, queued %d ms), want 600 ms sent of 16 kHz audio, 400 ms queued", acc, acc.SentMS(), acc.QueuedMS())
	}

	// Keys are timed on the codec's clock, and the silence between
	// talkspurts is the entry's.
	p.dtmfPT = 101
	if err := p.dtmf.add("5"); err != nil {
		t.Fatal(err)
	}
	q.flush(nil)
	sent = sent[:0]
	for i := 0; i < 12; i++ {
		p.tick(clk.Now())
		clk.Advance(20 * time.Millisecond)
	}
	var durations []int
	for _, pkt := range sent {
		if pkt.PayloadType == 101 {
			durations = append(durations, int(pkt.Payload[2])<<8|int(pkt.Payload[3]))
		} else if len(pkt.Payload) != 160 || pkt.Payload[0] != 0 {
			t.Errorf("a silent frame of %d bytes starting %#x, want the entry's silence", len(pkt.Payload), pkt.Payload[0])
		}
	}
	if len(durations) < 5 || durations[0] != 160 || durations[4] != 800 {
		t.Errorf("event durations %v, want steps of 160 (20 ms of the 8 kHz clock)", durations)
	}
}

func TestRecodeAcrossRatesConvertsTheQueue(t *testing.T) {
	q := newPlayout(PCMU)
	q.enqueue(ItemRef{ItemID: "a"}, PCMU.Encode(nil, make([]int16, 800)))
	q.recode(PCMA)
	if got := q.queuedMS(); got != 100 {
		t.Fatalf("PCMU→PCMA kept %d ms, want 100", got)
	}
	var frame [160]byte
	q.pop(frame[:80]) // 10 ms sent at 8 kHz
	q.enqueue(ItemRef{ItemID: "b"}, PCMA.Encode(nil, make([]int16, 400)))
	q.recode(wideTestCodec)
	a, _ := q.account("a")
	b, _ := q.account("b")
	if ms := q.queuedMS(); ms < 139 || ms > 141 {
		t.Errorf("8→16 kHz: %d ms queued, want the 140 ms that were", ms)
	}
	if a.SampleRate != 16000 || a.SentMS() != 10 || a.QueuedMS() < 89 || a.QueuedMS() > 91 || b.QueuedMS() < 49 || b.QueuedMS() > 51 {
		t.Errorf("accounts %+v, %+v: want 10 ms sent and 90 queued of a, 50 queued of b, at 16 kHz", a, b)
	}
}
