package media

import (
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/clock"
)

// g722Rig is a session on G.722 with its sent packets kept, and a fake
// clock driving its pacer.
type g722Rig struct {
	s    *Session
	clk  *clock.Fake
	sent []rtp.Packet
	sink *audioSink
}

func newG722Rig(t *testing.T) *g722Rig {
	t.Helper()
	r := &g722Rig{clk: clock.NewFake(time.Unix(1000, 0)), sink: &audioSink{}}
	r.s = NewSession(nil, Config{Peer: Peer{Remote: netip.MustParseAddrPort("127.0.0.1:4000"), Codec: G722, DTMFPayloadType: 101},
		ReorderWindow: 3, OnAudio: r.sink.write, Clock: r.clk, Log: zerolog.Nop()})
	r.s.pacer.write = func(b []byte) error {
		var pkt rtp.Packet
		if err := pkt.Unmarshal(append([]byte(nil), b...)); err != nil {
			return err
		}
		r.sent = append(r.sent, pkt)
		return nil
	}
	return r
}

// frames ticks the pacer through n frame deadlines.
func (r *g722Rig) frames(n int) {
	for range n {
		r.s.Tick(r.clk.Now())
		r.clk.Advance(frameDuration)
	}
}

// wideTone is n samples of a sine at f Hz, 16 kHz.
func wideTone(n int, f, amp float64) []int16 {
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(amp * math.Sin(2*math.Pi*f*float64(i)/16000))
	}
	return pcm
}

// G.722 is stateful, so the bot's audio is encoded as it leaves: the
// stream on the wire is exactly what one encoder makes of the PCM that was
// sent, silence and all, the audio a barge-in dropped excepted. The far
// end's decoder then follows the encoder's state step for step.
func TestG722IsEncodedAsItLeaves(t *testing.T) {
	r := newG722Rig(t)
	r.frames(3) // silence before the bot speaks
	first := wideTone(16000, 1000, 8000)
	r.s.Enqueue(ItemRef{ItemID: "a"}, first, 16000)
	r.frames(20) // 400 ms of it
	if q := r.s.QueuedMS(); q != 600 {
		t.Fatalf("queued %d ms, want 600", q)
	}
	r.s.Flush() // barge-in: the rest is dropped
	r.frames(5)
	second := wideTone(3200, 5000, 6000)
	r.s.Enqueue(ItemRef{ItemID: "b"}, second, 16000)
	r.frames(12)

	var sentPCM []int16
	sentPCM = append(sentPCM, make([]int16, 3*320)...)
	sentPCM = append(sentPCM, first[:20*320]...)
	sentPCM = append(sentPCM, make([]int16, 5*320)...)
	sentPCM = append(sentPCM, second...)
	sentPCM = append(sentPCM, make([]int16, 2*320)...)
	want := G722.Encode(nil, sentPCM)

	var wire []byte
	for i, pkt := range r.sent {
		if pkt.PayloadType != 9 || len(pkt.Payload) != 160 {
			t.Fatalf("packet %d: PT %d, %d bytes; want G.722's 9 and 160", i, pkt.PayloadType, len(pkt.Payload))
		}
		if i > 0 && pkt.Timestamp-r.sent[i-1].Timestamp != 160 && !pkt.Marker {
			t.Fatalf("packet %d: timestamp step %d, want 160 (the 8 kHz clock)", i, pkt.Timestamp-r.sent[i-1].Timestamp)
		}
		wire = append(wire, pkt.Payload...)
	}
	if len(wire) != len(want) {
		t.Fatalf("sent %d bytes, want %d", len(wire), len(want))
	}
	if i := firstDifference(wire, want); i >= 0 {
		t.Fatalf("the wire differs at byte %d (frame %d) from one encoder over what was sent", i, i/160)
	}
}

// The caller's G.722 is decoded by one decoder per stream: what reaches the
// model equals the whole stream decoded at once, at 16 kHz; a new stream
// (SSRC) starts from a fresh decoder.
func TestG722ReceivedStreamIsDecodedWithState(t *testing.T) {
	r := newG722Rig(t)
	speech := wideTone(320*10, 1500, 7000)
	payload := G722.Encode(nil, speech)
	from := netip.MustParseAddrPort("127.0.0.1:4000")
	var pkt rtp.Packet
	for i := range 10 {
		b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 9, SequenceNumber: uint16(i + 1), Timestamp: uint32(i * 160), SSRC: 7},
			Payload: payload[i*160 : (i+1)*160]}).Marshal()
		r.s.HandleDatagram(b, from, &pkt)
	}
	r.s.rmu.Lock()
	r.s.reorder.flush(r.s.deliver)
	r.s.rmu.Unlock()
	want := G722.Decode(nil, payload)
	if got := r.sink.all(); !slices.Equal(got, want) {
		t.Fatalf("delivered %d samples, want the %d of the stream decoded whole (equal: %v)", len(got), len(want), slices.Equal(got, want))
	}
	if r.sink.rate() != 16000 {
		t.Errorf("delivered at %d Hz, want 16000", r.sink.rate())
	}

	// A new source: its first packet decodes as from a fresh decoder.
	r.sink.reset()
	b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 9, SequenceNumber: 500, Timestamp: 9000, SSRC: 8},
		Payload: payload[:160]}).Marshal()
	r.s.HandleDatagram(b, from, &pkt)
	r.s.rmu.Lock()
	r.s.reorder.flush(r.s.deliver)
	r.s.rmu.Unlock()
	if got := r.sink.all(); !slices.Equal(got, want[:320]) {
		t.Errorf("a new stream's first frame was decoded with the old stream's state")
	}
}

// Packets of the old stream still held by the reorder window (behind a
// lost one) when a new source starts are decoded by the old stream's
// decoder, before the new stream's starts afresh.
func TestG722HeldPacketsKeepTheirStreamsDecoder(t *testing.T) {
	r := newG722Rig(t)
	speech := wideTone(320*10, 1500, 7000)
	payload := G722.Encode(nil, speech)
	from := netip.MustParseAddrPort("127.0.0.1:4000")
	var pkt rtp.Packet
	send := func(seq uint16, ssrc uint32, frame int) {
		b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 9, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: ssrc},
			Payload: payload[frame*160 : (frame+1)*160]}).Marshal()
		r.s.HandleDatagram(b, from, &pkt)
	}
	for i := range 5 {
		send(uint16(i+1), 7, i)
	}
	send(7, 7, 6) // 6 is lost: 7 and 8 wait in the window
	send(8, 7, 7)
	send(100, 8, 0) // a new source
	r.s.rmu.Lock()
	r.s.reorder.flush(r.s.deliver)
	r.s.rmu.Unlock()
	dec := G722.NewDecoder()
	var want []int16
	for _, f := range []int{0, 1, 2, 3, 4, 6, 7} {
		want = dec.Decode(want, payload[f*160:(f+1)*160])
	}
	want = G722.Decode(want, payload[:160])
	if got := r.sink.all(); !slices.Equal(got, want) {
		t.Fatalf("delivered %d samples; want the old stream's by its decoder (%d), then the new one's afresh", len(got), len(want))
	}
}

// Odd payload sizes are G.722 all the same (two samples a byte): decoded
// whole, nothing lost or invented, no crash.
func TestG722OddPayloadSizes(t *testing.T) {
	r := newG722Rig(t)
	from := netip.MustParseAddrPort("127.0.0.1:4000")
	var pkt rtp.Packet
	total := 0
	for i, n := range []int{1, 7, 161, 33, MaxPayload} {
		b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 9, SequenceNumber: uint16(i + 1), Timestamp: uint32(i * 160), SSRC: 7},
			Payload: make([]byte, n)}).Marshal()
		r.s.HandleDatagram(b, from, &pkt)
		total += n
	}
	r.s.rmu.Lock()
	r.s.reorder.flush(r.s.deliver)
	r.s.rmu.Unlock()
	if got := len(r.sink.all()); got != 2*total {
		t.Errorf("delivered %d samples from %d bytes, want %d", got, total, 2*total)
	}
}

// A re-INVITE answered with PCMU ends G.722 mid-call: the pacer sends PCMU
// from the next frame, the queued 16 kHz audio is converted to 8 kHz (its
// account follows: what was sent, what is left, at the new rate), bot
// audio still converted at 16 kHz is refused and counted, and 8 kHz audio
// plays after what was queued.
func TestG722ToPCMUMidCall(t *testing.T) {
	r := newG722Rig(t)
	r.s.Enqueue(ItemRef{ItemID: "a"}, wideTone(16000, 1000, 8000), 16000)
	r.frames(5)
	p := r.s.CurrentPeer()
	p.Codec = PCMU
	r.s.SetPeer(p)
	if q := r.s.QueuedMS(); q < 899 || q > 901 {
		t.Fatalf("%d ms queued after the change to PCMU, want the 900 ms left", q)
	}
	if acc, _ := r.s.queue.account("a"); acc.SampleRate != 8000 || acc.SentMS() != 100 {
		t.Fatalf("account after the change %+v, want 100 ms sent at 8 kHz", acc)
	}
	r.s.Enqueue(ItemRef{ItemID: "a"}, wideTone(320, 1000, 8000), 16000)
	if st := r.s.Stats(); st.MisratedOut != 1 {
		t.Errorf("misrated pieces %d, want 1", st.MisratedOut)
	}
	r.s.Enqueue(ItemRef{ItemID: "b"}, tone160(3000), 8000)
	before := len(r.sent)
	r.frames(3)
	var heard []int16
	for _, pkt := range r.sent[before:] {
		if pkt.PayloadType != 0 || len(pkt.Payload) != 160 {
			t.Fatalf("after the change: PT %d, %d bytes; want PCMU", pkt.PayloadType, len(pkt.Payload))
		}
		heard = PCMU.Decode(heard, pkt.Payload)
	}
	if a := toneAmplitude(heard, 8000, 1000); a < 7000 || a > 9000 {
		t.Errorf("the converted audio's 1 kHz tone plays at %.0f, want about 8000", a)
	}
	if acc, _ := r.s.queue.account("a"); acc.SentMS() != 160 {
		t.Errorf("account %+v, want 160 ms sent", acc)
	}

	// Received: PCMU from now on, at 8 kHz.
	var pkt rtp.Packet
	r.sink.reset()
	r.s.HandleDatagram(packet(1, 0, 9, 0xff, 160), netip.MustParseAddrPort("127.0.0.1:4000"), &pkt)
	r.s.rmu.Lock()
	r.s.reorder.flush(r.s.deliver)
	r.s.rmu.Unlock()
	if len(r.sink.all()) != 160 || r.sink.rate() != 8000 {
		t.Errorf("PCMU received: %d samples at %d Hz, want 160 at 8000", len(r.sink.all()), r.sink.rate())
	}
}

// A stateful codec's audio cannot be queued already encoded (passthrough
// is G.711's): it is refused and counted, not sent with a state the
// encoder never had.
func TestG722RefusesEncodedPayloads(t *testing.T) {
	r := newG722Rig(t)
	r.s.EnqueuePayload(ItemRef{ItemID: "a"}, make([]byte, 160))
	if r.s.QueuedMS() != 0 || r.s.Stats().MisratedOut != 1 {
		t.Errorf("queued %d ms of pre-encoded G.722", r.s.QueuedMS())
	}
}

// The pacer's frame with G.722 allocates nothing: the encoder runs as the
// frame leaves, every 20 ms of every call.
func TestG722FrameAllocatesNothing(t *testing.T) {
	r := newG722Rig(t)
	r.s.pacer.write = func([]byte) error { return nil }
	pcm := wideTone(320, 1000, 8000)
	r.frames(2)
	now := r.clk.Now() // times of its own: the fake clock's Advance allocates
	allocs := testing.AllocsPerRun(200, func() {
		r.s.Enqueue(ItemRef{ItemID: "a"}, pcm, 16000)
		r.s.Tick(now)
		now = now.Add(frameDuration)
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per frame, want 0", allocs)
	}
}

func toneAmplitude(x []int16, rate, freq float64) float64 {
	var re, im float64
	for i, v := range x {
		w := 2 * math.Pi * freq * float64(i) / rate
		re += float64(v) * math.Cos(w)
		im += float64(v) * math.Sin(w)
	}
	return 2 * math.Hypot(re, im) / float64(max(len(x), 1))
}

func firstDifference(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}
