package bridge

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/realtime"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recycler stands in for the WebSocket writer: it takes each event and
// hands the buffer straight back, as the writer does after sending.
type recycler struct {
	free   chan *[]byte
	events int
	last   []byte
}

func newRecycler() *recycler { return &recycler{free: make(chan *[]byte, 4)} }

func (r *recycler) Buffer() *[]byte {
	select {
	case b := <-r.free:
		*b = (*b)[:0]
		return b
	default:
		b := make([]byte, 0, 8<<10)
		return &b
	}
}

func (r *recycler) SendBuffer(b *[]byte) error {
	r.events++
	r.last = *b
	select {
	case r.free <- b:
	default:
	}
	return nil
}

var peer = netip.MustParseAddrPort("127.0.0.1:40000")

// callerPath wires what a call wires for caller audio: the media receive
// path feeding the upstream, which writes append events. The call is PCMU.
func callerPath(conn sender) (*media.Session, [][]byte) { return callerPathIn(conn, media.PCMU) }

// callerPathIn is callerPath for a call in codec.
func callerPathIn(conn sender, codec media.Codec) (*media.Session, [][]byte) {
	up := newUpstream(conn, 20, codec.SampleRate, realtime.PCM16)
	s := media.NewSession(nil, media.Config{Peer: media.Peer{Remote: peer, Codec: codec}, ReorderWindow: 3, OnAudio: up.write, Log: zerolog.Nop()})
	pkts := make([][]byte, 64)
	for i := range pkts {
		payload := make([]byte, codec.FrameBytes)
		for j := range payload {
			payload[j] = byte(0x40 + (i+j)%64)
		}
		pkts[i], _ = (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: codec.PayloadType, SSRC: 5}, Payload: payload}).Marshal()
	}
	return s, pkts
}

func setSeq(pkt []byte, seq uint16) { binary.BigEndian.PutUint16(pkt[2:], seq) }

func TestCallerPathEmitsOneAppendPerFrame(t *testing.T) {
	for _, codec := range []media.Codec{media.PCMU, media.G722} {
		t.Run(codec.Name, func(t *testing.T) { testCallerPath(t, codec) })
	}
}

func testCallerPath(t *testing.T, codec media.Codec) {
	r := newRecycler()
	s, pkts := callerPathIn(r, codec)
	var p rtp.Packet
	for i := 0; i < 10; i++ {
		setSeq(pkts[i], uint16(i))
		s.HandleDatagram(pkts[i], peer, &p)
	}
	if r.events != 10 {
		t.Fatalf("%d append events for 10 frames", r.events)
	}
	var ev struct{ Type, Audio string }
	raw := string(r.last)
	if !strings.HasPrefix(raw, `{"type":"input_audio_buffer.append","event_id":"a10","audio":"`) {
		t.Fatalf("not an append event: %.80s", raw)
	}
	i := len(`{"type":"input_audio_buffer.append","event_id":"a10","audio":"`)
	ev.Audio = raw[i : len(raw)-2]
	pcm, err := base64.StdEncoding.DecodeString(ev.Audio)
	if err != nil || len(pcm) != 960 {
		t.Fatalf("append carries %d bytes (%v), want 960 (20 ms at 24 kHz)", len(pcm), err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		pkt := pkts[len(pkts)-1]
		setSeq(pkt, uint16(r.events))
		s.HandleDatagram(pkt, peer, &p)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per caller frame", allocs)
	}
}

// BenchmarkCallerPath: one 20 ms RTP packet in → one append event out.
func BenchmarkCallerPath(b *testing.B) { benchmarkCallerPath(b, media.PCMU) }

// BenchmarkCallerPathG722 is BenchmarkCallerPath for an HD voice call:
// G.722 decoding and 16→24 kHz.
func BenchmarkCallerPathG722(b *testing.B) { benchmarkCallerPath(b, media.G722) }

func benchmarkCallerPath(b *testing.B, codec media.Codec) {
	r := newRecycler()
	s, pkts := callerPathIn(r, codec)
	var p rtp.Packet
	seq := uint16(0)
	b.ReportAllocs()
	b.SetBytes(172)
	for b.Loop() {
		pkt := pkts[seq%64]
		setSeq(pkt, seq)
		seq++
		s.HandleDatagram(pkt, peer, &p)
	}
}

// botPath wires what a call wires for model audio: the decoder, the bridge's
// audio handling, and the media pacer writing RTP to a sink. The call is
// PCMU.
func botPath(out *int) (*realtime.Decoder, *callState, *media.Session, []byte) {
	return botPathIn(out, media.PCMU)
}

// botPathIn is botPath for a call in codec.
func botPathIn(out *int, codec media.Codec) (*realtime.Decoder, *callState, *media.Session, []byte) {
	s := media.NewSession(nil, media.Config{Peer: media.Peer{Remote: peer, Codec: codec}, Log: zerolog.Nop(),
		Output: func(pkt []byte) error { *out += len(pkt); return nil }})
	c := newCallState(New(Config{Log: zerolog.Nop()}), nil, &fakeModel{recycler: newRecycler()}, zerolog.Nop())
	c.useCodec(codec)
	c.media = s
	pcm := make([]byte, 960) // 20 ms at 24 kHz
	for i := 0; i < 480; i++ {
		binary.LittleEndian.PutUint16(pcm[2*i:], uint16(int16(8000*math.Sin(float64(i)/5))))
	}
	delta := []byte(`{"type":"response.output_audio.delta","event_id":"event_4242","response_id":"resp_001","item_id":"item_002","output_index":0,"content_index":0,"delta":"` +
		base64.StdEncoding.EncodeToString(pcm) + `"}`)
	return realtime.NewDecoder(8), c, s, delta
}

func TestBotPathSendsWhatTheModelSent(t *testing.T) {
	for _, codec := range []media.Codec{media.PCMU, media.G722} {
		t.Run(codec.Name, func(t *testing.T) { testBotPath(t, codec) })
	}
}

func testBotPath(t *testing.T, codec media.Codec) {
	sent := 0
	dec, c, s, delta := botPathIn(&sent, codec)
	now := time.Unix(100, 0)
	for i := 0; i < 5; i++ {
		ev, err := dec.Decode(delta)
		if err != nil {
			t.Fatal(err)
		}
		c.onAudio(ev)
		ev.Release()
	}
	for i := 0; i < 6; i++ {
		s.Tick(now)
		now = now.Add(20 * time.Millisecond)
	}
	played, _ := s.Played("item_002")
	if played.SentMS() != 100 || played.SampleRate != codec.SampleRate || c.receivedMS("item_002") != 100 {
		t.Errorf("sent %d samples (%d ms), received %d ms; want 100 ms at %d Hz", played.SentSamples, played.SentMS(), c.receivedMS("item_002"), codec.SampleRate)
	}
	allocs := testing.AllocsPerRun(200, func() {
		ev, _ := dec.Decode(delta)
		c.onAudio(ev)
		ev.Release()
		s.Tick(now)
		now = now.Add(20 * time.Millisecond)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per bot frame", allocs)
	}
}

// BenchmarkBotPath: one 20 ms audio delta event in → one RTP packet out.
func BenchmarkBotPath(b *testing.B) { benchmarkBotPath(b, media.PCMU) }

// BenchmarkBotPathG722 is BenchmarkBotPath for an HD voice call: 24→16 kHz
// and G.722 encoding (as the frame leaves).
func BenchmarkBotPathG722(b *testing.B) { benchmarkBotPath(b, media.G722) }

func benchmarkBotPath(b *testing.B, codec media.Codec) {
	sent := 0
	dec, c, s, delta := botPathIn(&sent, codec)
	now := time.Unix(100, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(delta)))
	for b.Loop() {
		ev, err := dec.Decode(delta)
		if err != nil {
			b.Fatal(err)
		}
		c.onAudio(ev)
		ev.Release()
		s.Tick(now)
		now = now.Add(20 * time.Millisecond)
	}
}

// A delta of any size is converted a piece at a time: what the caller hears
// is the same audio as from the same samples in 20 ms deltas, and the call's
// buffers (and resampler) stay the size of a piece.
func TestLargeDeltaSameAudioSmallBuffers(t *testing.T) {
	pcm := make([]byte, 2*24000+2*77+1) // 1 s and 77 samples, and an odd byte the model should not send
	for i := 0; i+1 < len(pcm); i += 2 {
		binary.LittleEndian.PutUint16(pcm[i:], uint16(int16(9000*math.Sin(float64(i)/7)+3000*math.Sin(float64(i)/31))))
	}
	play := func(deltas [][]byte) (payloads []byte, c *callState) {
		var pkt rtp.Packet
		s := media.NewSession(nil, media.Config{Peer: media.Peer{Remote: peer, Codec: media.PCMU}, Log: zerolog.Nop(),
			Output: func(b []byte) error {
				if err := pkt.Unmarshal(b); err != nil {
					t.Fatal(err)
				}
				payloads = append(payloads, pkt.Payload...)
				return nil
			}})
		c = newCallState(New(Config{Log: zerolog.Nop()}), nil, &fakeModel{recycler: newRecycler()}, zerolog.Nop())
		c.media = s
		dec := realtime.NewDecoder(8)
		for _, d := range deltas {
			ev, err := dec.Decode([]byte(`{"type":"response.output_audio.delta","event_id":"event_1","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0,"delta":"` +
				base64.StdEncoding.EncodeToString(d) + `"}`))
			if err != nil {
				t.Fatal(err)
			}
			c.onAudio(ev)
			ev.Release()
		}
		now := time.Unix(100, 0)
		for i := 0; i < 60; i++ {
			s.Tick(now)
			now = now.Add(20 * time.Millisecond)
		}
		return payloads, c
	}
	whole, c := play([][]byte{pcm})
	var small [][]byte
	for rest := pcm[:len(pcm)-1]; len(rest) > 0; rest = rest[min(len(rest), 960):] {
		small = append(small, rest[:min(len(rest), 960)])
	}
	pieces, _ := play(small)
	if len(whole) < 8000 || string(whole) != string(pieces) {
		t.Errorf("one 1 s delta played %d bytes, the same audio in 20 ms deltas %d, or different audio", len(whole), len(pieces))
	}
	if cap(c.modelPCM) > deltaPiece || cap(c.callPCM) > deltaPiece/3+1 {
		t.Errorf("a 1 s delta grew the call's buffers to %d and %d samples", cap(c.modelPCM), cap(c.callPCM))
	}
}
