package media

import (
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/voicebot/voicebot/clock"
)

type sentPacket struct {
	at  time.Time
	pkt rtp.Packet
}

// pacerRig drives a pacer on a fake clock and records every packet it writes.
type pacerRig struct {
	clk  *clock.Fake
	q    *playout
	p    *pacer
	sent []sentPacket
}

func newPacerRig() *pacerRig {
	r := &pacerRig{clk: clock.NewFake(time.Unix(1000, 0)), q: newPlayout(PCMU)}
	r.p = newPacer(PCMU, r.q, 0x1234, 65530, 4294967000, func(b []byte) error {
		var pkt rtp.Packet
		if err := pkt.Unmarshal(append([]byte(nil), b...)); err != nil {
			return err
		}
		r.sent = append(r.sent, sentPacket{at: r.clk.Now(), pkt: pkt})
		return nil
	})
	return r
}

// run advances the clock in steps, ticking the pacer whenever a deadline is
// reached, as the session loop does.
func (r *pacerRig) run(d, step time.Duration) {
	end := r.clk.Now().Add(d)
	for r.clk.Now().Before(end) {
		r.clk.Advance(step)
		if !r.clk.Now().Before(r.p.next()) {
			r.p.tick(r.clk.Now())
		}
	}
}

func tone160(v int16) []int16 {
	f := make([]int16, PCMU.FrameSamples)
	for i := range f {
		f[i] = v
	}
	return f
}

func TestPacerAbsoluteScheduleAndContinuity(t *testing.T) {
	r := newPacerRig()
	r.p.tick(r.clk.Now())
	// Step with 7 ms granularity: ticks land late by varying amounts, yet
	// the deadlines stay start + n·20 ms and nothing drifts.
	r.run(10*time.Second, 7*time.Millisecond)
	start := time.Unix(1000, 0)
	if got := len(r.sent); got != 501 {
		t.Fatalf("%d packets in 10 s, want 501", got)
	}
	for i, sp := range r.sent {
		deadline := start.Add(time.Duration(i) * 20 * time.Millisecond)
		if late := sp.at.Sub(deadline); late < 0 || late >= 7*time.Millisecond {
			t.Fatalf("packet %d sent %v after its deadline", i, late)
		}
		if i > 0 {
			prev := r.sent[i-1].pkt
			if sp.pkt.SequenceNumber != prev.SequenceNumber+1 {
				t.Fatalf("packet %d: seq %d after %d", i, sp.pkt.SequenceNumber, prev.SequenceNumber)
			}
			if sp.pkt.Timestamp != prev.Timestamp+PCMU.FrameTimestamp() {
				t.Fatalf("packet %d: ts %d after %d", i, sp.pkt.Timestamp, prev.Timestamp)
			}
		}
		if sp.pkt.Marker || len(sp.pkt.Payload) != PCMU.FrameSamples || sp.pkt.Payload[0] != 0xFF || sp.pkt.SSRC != 0x1234 {
			t.Fatalf("packet %d: want a µ-law silence frame without marker, got %+v", i, sp.pkt.Header)
		}
	}
}

func TestPacerTalkspurtStartsAtOnceWithMarker(t *testing.T) {
	r := newPacerRig()
	r.p.tick(r.clk.Now())
	r.run(100*time.Millisecond, time.Millisecond)
	silent := len(r.sent)
	// Audio arrives 7 ms after a tick: it must leave now, not 13 ms later.
	r.clk.Advance(7 * time.Millisecond)
	for i := 0; i < 3; i++ {
		r.q.enqueue(ItemRef{ItemID: "item_1"}, PCMU.Encode(nil, tone160(1000)))
	}
	r.p.talkspurt(r.clk.Now())
	if len(r.sent) != silent+1 || !r.sent[silent].at.Equal(r.clk.Now()) {
		t.Fatalf("talkspurt start not sent immediately")
	}
	first := r.sent[silent]
	if !first.pkt.Marker || first.pkt.Payload[0] == 0xFF {
		t.Fatalf("first talkspurt packet: marker %v payload %x", first.pkt.Marker, first.pkt.Payload[0])
	}
	r.run(200*time.Millisecond, time.Millisecond)
	spurt := r.sent[silent:]
	// The schedule restarts on the pacing grid at or before 107 ms, so the
	// second frame follows a little sooner and the rest every 20 ms.
	second := 20*time.Millisecond - (107*time.Millisecond)%pacingGrid
	for i, want := range []time.Duration{0, second, 20 * time.Millisecond} {
		if i == 0 {
			continue
		}
		if spurt[i].pkt.Marker {
			t.Errorf("marker on packet %d of the talkspurt", i)
		}
		if gap := spurt[i].at.Sub(spurt[i-1].at); gap != want {
			t.Errorf("talkspurt packet %d after %v, want %v", i, gap, want)
		}
	}
	if spurt[3].pkt.Payload[0] != 0xFF || spurt[3].pkt.Marker {
		t.Errorf("after the audio: want silence without marker")
	}
	for i := 1; i < len(r.sent); i++ {
		if r.sent[i].pkt.SequenceNumber != r.sent[i-1].pkt.SequenceNumber+1 || r.sent[i].pkt.Timestamp != r.sent[i-1].pkt.Timestamp+PCMU.FrameTimestamp() {
			t.Fatalf("discontinuity at %d", i)
		}
	}
	acc, ok := r.q.account("item_1")
	if !ok || acc.SentSamples != 480 || acc.QueuedSamples != 0 {
		t.Errorf("account %+v, want 480 sent", acc)
	}
}

func TestPacerLongStallSkipsAhead(t *testing.T) {
	r := newPacerRig()
	r.p.tick(r.clk.Now())
	r.clk.Advance(time.Second) // the process was stopped for a second
	r.p.tick(r.clk.Now())
	if len(r.sent) != 1+maxBurst {
		t.Fatalf("%d packets after the stall, want %d", len(r.sent), 1+maxBurst)
	}
	if r.p.stats.skipped == 0 || r.p.stats.maxLateness < 900*time.Millisecond {
		t.Errorf("stall not accounted: %+v", r.p.stats)
	}
	// Timestamps jump by the skipped time: the timeline stays true.
	last := r.sent[len(r.sent)-1].pkt.Timestamp - r.sent[0].pkt.Timestamp
	if want := uint32(50 * PCMU.FrameTimestamp()); last != want {
		t.Errorf("timestamp advanced %d over the stall, want %d", last, want)
	}
	// And the schedule carries on from now, 20 ms apart.
	next := r.p.next().Sub(r.clk.Now())
	if next <= 0 || next > 20*time.Millisecond {
		t.Errorf("next deadline in %v", next)
	}
}

func TestFlushStopsWithinAFrameAndAccounts(t *testing.T) {
	r := newPacerRig()
	r.p.tick(r.clk.Now())
	loud := func(n int) []int16 {
		pcm := make([]int16, n)
		for i := range pcm {
			pcm[i] = 500 // non-silent
		}
		return pcm
	}
	r.q.enqueue(ItemRef{ItemID: "a"}, PCMU.Encode(nil, loud(8000))) // 1 s
	r.q.enqueue(ItemRef{ItemID: "b"}, PCMU.Encode(nil, loud(800)))
	r.p.talkspurt(r.clk.Now())
	r.run(300*time.Millisecond, time.Millisecond)
	played := r.q.flush(nil)
	if len(played) != 2 || played[0].Ref.ItemID != "a" || played[1].Ref.ItemID != "b" {
		t.Fatalf("flush returned %+v", played)
	}
	sentA := 0
	for _, sp := range r.sent {
		if sp.pkt.Payload[0] != 0xFF {
			sentA += PCMU.FrameSamples
		}
	}
	if played[0].SentSamples != sentA || played[0].SentMS() != sentA/8 {
		t.Errorf("item a: %d samples accounted, %d went out", played[0].SentSamples, sentA)
	}
	if played[1].SentSamples != 0 {
		t.Errorf("item b never started, accounted %d", played[1].SentSamples)
	}
	before := len(r.sent)
	r.run(100*time.Millisecond, time.Millisecond)
	for _, sp := range r.sent[before:] {
		if sp.pkt.Payload[0] != 0xFF {
			t.Fatal("bot audio sent after Flush")
		}
	}
}

func TestSilencePadder(t *testing.T) {
	p := silencePadder{after: 500 * time.Millisecond}
	t0 := time.Unix(0, 0)
	if p.due(t0) != 0 {
		t.Fatal("padding before any packet")
	}
	p.onPacket(t0)
	if n := p.due(t0.Add(499 * time.Millisecond)); n != 0 {
		t.Fatalf("padded %d frames inside the grace period", n)
	}
	if n := p.due(t0.Add(500 * time.Millisecond)); n != 25 {
		t.Fatalf("backfill %d frames, want 25", n)
	}
	if n := p.due(t0.Add(519 * time.Millisecond)); n != 0 {
		t.Fatalf("%d frames before the next 20 ms", n)
	}
	if n := p.due(t0.Add(560 * time.Millisecond)); n != 3 {
		t.Fatalf("%d frames after 60 ms, want 3", n)
	}
	p.onPacket(t0.Add(570 * time.Millisecond))
	if n := p.due(t0.Add(600 * time.Millisecond)); n != 0 {
		t.Fatalf("padding continued after packets resumed")
	}
}

func TestPlayoutGrowsAndWraps(t *testing.T) {
	q := newPlayout(PCMU)
	ref := ItemRef{ItemID: "x"}
	var next byte
	var want byte
	frame := make([]byte, PCMU.FrameSamples)
	for round := 0; round < 50; round++ {
		chunk := make([]byte, 2400+round*97)
		for i := range chunk {
			chunk[i] = next
			next++
		}
		q.enqueue(ref, chunk)
		for q.queued() > 3000 {
			n := q.pop(frame)
			for _, v := range frame[:n] {
				if v != want {
					t.Fatalf("round %d: got %d want %d", round, v, want)
				}
				want++
			}
		}
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, c := range []Codec{PCMU, PCMA} {
		pcm := make([]int16, 0, 2000)
		for v := -32000; v <= 32000; v += 37 {
			pcm = append(pcm, int16(v))
		}
		back := c.Decode(nil, c.Encode(nil, pcm))
		for i, v := range pcm {
			// G.711 keeps about 13 bits: the error grows with the magnitude.
			tol := max(abs(int(v))/16, 16)
			if d := abs(int(back[i]) - int(v)); d > tol {
				t.Fatalf("%s: %d → %d (error %d > %d)", c.Name, v, back[i], d, tol)
			}
		}
		if got := c.Decode(nil, []byte{c.Silence()[0]}); abs(int(got[0])) > 8 {
			t.Errorf("%s silence byte decodes to %d", c.Name, got[0])
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func TestPauseHoldsAndResumeContinuesExactly(t *testing.T) {
	r := newPacerRig()
	r.p.tick(r.clk.Now())
	audio := make([]int16, 1600) // 200 ms, each frame a distinct level
	for i := range audio {
		audio[i] = int16(1000 + 500*(i/PCMU.FrameSamples))
	}
	r.q.enqueue(ItemRef{ItemID: "a"}, PCMU.Encode(nil, audio))
	r.p.talkspurt(r.clk.Now())
	r.run(60*time.Millisecond, time.Millisecond) // 4 frames out
	r.q.setPaused(true)
	before := len(r.sent)
	r.run(200*time.Millisecond, time.Millisecond)
	for _, sp := range r.sent[before:] {
		if sp.pkt.Payload[0] != 0xFF {
			t.Fatal("audio sent while paused")
		}
	}
	if acc, _ := r.q.account("a"); acc.SentSamples != 4*PCMU.FrameSamples || acc.QueuedSamples != 6*PCMU.FrameSamples {
		t.Fatalf("while paused: %+v", acc)
	}
	r.q.setPaused(false)
	r.p.talkspurt(r.clk.Now())
	r.run(200*time.Millisecond, time.Millisecond)
	var levels []int16
	for _, sp := range r.sent {
		if sp.pkt.Payload[0] != 0xFF {
			levels = append(levels, PCMU.Decode(nil, sp.pkt.Payload[:1])[0])
		}
	}
	if len(levels) != 10 {
		t.Fatalf("%d audio frames in all, want 10 (nothing lost, nothing repeated)", len(levels))
	}
	for i := 1; i < len(levels); i++ {
		if levels[i] <= levels[i-1] {
			t.Fatalf("frame %d out of order after resume: %v", i, levels)
		}
	}
	markers := 0
	for _, sp := range r.sent {
		if sp.pkt.Marker {
			markers++
		}
	}
	if markers != 2 {
		t.Errorf("%d talkspurt markers, want 2 (start and resume)", markers)
	}
}

// The queue gives back the audio in order across its chunks, whatever the
// sizes enqueued and taken, and returns its chunks once empty.
func TestPlayoutKeepsOrderAcrossChunks(t *testing.T) {
	q := newPlayout(PCMU)
	var want []byte
	next := byte(0)
	for _, n := range []int{1, 159, 800, 801, 2000, 7, 3333} {
		pcm := make([]byte, n)
		for i := range pcm {
			next++
			pcm[i] = next
		}
		q.enqueue(ItemRef{ItemID: "a"}, pcm)
		want = append(want, pcm...)
	}
	var got []byte
	frame := make([]byte, PCMU.FrameSamples)
	for q.queued() > 0 {
		n := q.pop(frame)
		got = append(got, frame[:n]...)
		if len(got) == 4000 {
			// more arrives while playing
			extra := []byte{0xF1, 0xF2, 0xF3}
			q.enqueue(ItemRef{ItemID: "a"}, extra)
			want = append(want, extra...)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("got %d samples, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("sample %d is %d, want %d", i, got[i], want[i])
		}
	}
	if len(q.chunks) != 0 {
		t.Errorf("%d chunks kept by an empty queue", len(q.chunks))
	}
	if acc, _ := q.account("a"); acc.SentSamples != len(want) || acc.QueuedSamples != 0 {
		t.Errorf("account %+v", acc)
	}
}
