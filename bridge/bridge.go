// Package bridge is one call's brain: it joins a call's media (RTP) to a
// model session (Realtime WebSocket), moves audio both ways, greets, handles
// barge-in, and logs the transcript. It is the only package that knows both
// media and realtime.
package bridge

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/clock"
	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/realtime"
	"github.com/voicebot/voicebot/resample"
)

// Call is what the bridge needs of a SIP call; sip.Call provides it.
type Call interface {
	ID() string
	Ringing() error
	Answer(ctx context.Context, localPort int) error
	Reject(code int, reason string) error
	Hangup() error
}

// CallMedia is the negotiated media of a call.
type CallMedia struct {
	Remote          netip.AddrPort
	Codec           media.Codec
	DTMFPayloadType uint8
}

// Model opens a model session for a call.
type Model interface {
	Dial(ctx context.Context) (*realtime.Conn, error)
}

// Config is what every call shares.
type Config struct {
	Model   Model
	Session realtime.SessionConfig
	// Greeting: speak first once the session is ready, with GreetingPrompt as
	// that response's instructions.
	Greeting       bool
	GreetingPrompt string
	ConnectTimeout time.Duration
	AppendInterval time.Duration

	Ports             *media.Ports
	ReorderWindow     int
	InputSilenceAfter time.Duration

	Clock clock.Clock
	Log   zerolog.Logger
}

// Bridge runs calls.
type Bridge struct {
	cfg Config
}

// New returns a bridge for cfg.
func New(cfg Config) *Bridge {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.AppendInterval <= 0 {
		cfg.AppendInterval = 20 * time.Millisecond
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	return &Bridge{cfg: cfg}
}

// Handle runs one call to its end. ctx ends when the caller hangs up.
func (b *Bridge) Handle(ctx context.Context, call Call, cm CallMedia) {
	log := b.cfg.Log.With().Str("call_id", call.ID()).Logger()
	_ = call.Ringing()

	conn, err := b.allocate()
	if err != nil {
		log.Error().Err(err).Msg("call: no RTP port")
		_ = call.Reject(503, "Service Unavailable (no media port)")
		return
	}
	defer b.cfg.Ports.Release(conn)

	// The model session opens while the phone rings, so the greeting is not late.
	dialCtx, cancelDial := context.WithTimeout(ctx, b.cfg.ConnectTimeout)
	model, err := b.cfg.Model.Dial(dialCtx)
	cancelDial()
	if err != nil {
		if ctx.Err() != nil {
			return // the caller gave up while we connected
		}
		log.Error().Err(err).Msg("call: model unreachable")
		_ = call.Reject(503, "Service Unavailable (model unreachable)")
		return
	}
	defer model.Close()

	c := newCallState(b, call, model, cm, log)
	// The media session exists from here so the greeting's audio can queue;
	// it starts sending only once the call is answered.
	c.media = media.NewSession(conn, media.Config{
		Remote: cm.Remote, Codec: cm.Codec, DTMFPayloadType: cm.DTMFPayloadType,
		ReorderWindow: b.cfg.ReorderWindow, InputSilenceAfter: b.cfg.InputSilenceAfter,
		OnAudio: c.up.write, Clock: b.cfg.Clock, Log: log,
	})
	if err := c.configure(); err != nil {
		log.Error().Err(err).Msg("call: session.update")
		_ = call.Reject(500, "Server Internal Error")
		return
	}
	// Still ringing: wait for the model to take the configuration. The
	// greeting is requested the moment it does, so its audio is generated
	// while the phone rings and plays the instant the call is answered.
	readyCtx, cancelReady := context.WithTimeout(ctx, b.cfg.ConnectTimeout)
	err = c.awaitReady(readyCtx)
	cancelReady()
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		log.Error().Err(err).Msg("call: model not ready")
		_ = call.Reject(503, "Service Unavailable (model not ready)")
		return
	}

	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = c.media.Run(callCtx)
	}()
	defer wg.Wait()
	defer cancel()

	start := time.Now()
	if err := call.Answer(callCtx, int(c.media.LocalAddr().Port())); err != nil {
		if ctx.Err() == nil {
			log.Warn().Err(err).Msg("call: not established")
		}
		return
	}
	log.Info().Str("local_rtp", c.media.LocalAddr().String()).Str("codec", cm.Codec.Name).Msg("call: answered")
	reason := c.run(callCtx)
	st := c.media.Stats()
	log.Info().Str("end", reason).Dur("duration", time.Since(start).Round(time.Millisecond)).
		Uint64("rtp_in", st.PacketsIn).Uint64("rtp_out", st.PacketsOut).Uint64("lost", st.Lost).
		Uint64("late", st.Late).Uint64("strangers", st.FromStranger).Uint64("wrong_pt", st.WrongPayloadType).
		Dur("pacer_max_late", st.MaxLateness).Uint64("appends_dropped", c.up.dropped).
		Int("barge_ins", c.bargeIns).Msg("call: ended")
	if reason != "caller hung up" {
		_ = call.Hangup()
	}
}

func (b *Bridge) allocate() (*net.UDPConn, error) {
	if b.cfg.Ports == nil {
		return nil, errors.New("bridge: no port pool")
	}
	return b.cfg.Ports.Allocate()
}

// callState is owned by the bridge loop goroutine (run); the caller path
// (upstream) runs on the media receive goroutine and shares nothing with it
// but the connection's send queue.
type callState struct {
	b     *Bridge
	call  Call
	model *realtime.Conn
	media *media.Session
	up    *upstream
	log   zerolog.Logger

	eventSeq  uint64
	greeted   bool
	ready     bool
	down      *resample.Resampler
	pcm24     []int16
	pcm8      []int16
	received  map[string]int // item id → ms of audio received from the model
	discarded map[string]bool
	botText   map[string]string
	bargeIns  int
}

func newCallState(b *Bridge, call Call, model *realtime.Conn, cm CallMedia, log zerolog.Logger) *callState {
	return &callState{
		b: b, call: call, model: model, log: log,
		up:        newUpstream(model, int(b.cfg.AppendInterval/time.Millisecond)),
		down:      resample.MustNew(24000, 8000),
		pcm24:     make([]int16, 0, 24000),
		pcm8:      make([]int16, 0, 8000),
		received:  map[string]int{},
		discarded: map[string]bool{},
		botText:   map[string]string{},
	}
}

func (c *callState) nextEventID(prefix string) string {
	c.eventSeq++
	return prefix + strconv.FormatUint(c.eventSeq, 10)
}

func (c *callState) configure() error {
	s := c.b.cfg.Session
	s.InputFormat, s.OutputFormat = realtime.PCM16, realtime.PCM16
	ev, err := c.model.Dialect().SessionUpdate(c.nextEventID("session_"), s)
	if err != nil {
		return err
	}
	return c.model.Send(ev)
}

// errSessionRefused means the model answered session.update with an error.
var errSessionRefused = errors.New("model refused the session configuration")

// awaitReady handles events until session.updated arrives (greeting as it
// does). An error answering our session.update refuses the call: answering
// into a misconfigured session would fail every call the same way.
func (c *callState) awaitReady(ctx context.Context) error {
	for !c.ready {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for session.updated: %w", ctx.Err())
		case ev, ok := <-c.model.Events():
			if !ok {
				return fmt.Errorf("model connection lost: %w", c.model.Err())
			}
			if ev.Kind == realtime.KindError && strings.HasPrefix(ev.Err.EventID, "session_") {
				err := fmt.Errorf("%w: %s (%s, param %s)", errSessionRefused, ev.Err.Message, ev.Err.Code, ev.Err.Param)
				ev.Release()
				return err
			}
			c.handle(ev)
			ev.Release()
		}
	}
	return nil
}

// run is the call's event loop. It returns why the call ended.
func (c *callState) run(ctx context.Context) string {
	events := c.model.Events()
	for {
		select {
		case <-ctx.Done():
			return "caller hung up"
		case ev, ok := <-events:
			if !ok {
				c.log.Error().Err(c.model.Err()).Msg("call: model connection lost")
				return "model connection lost"
			}
			c.handle(ev)
			ev.Release()
		}
	}
}

func (c *callState) handle(ev realtime.ServerEvent) {
	switch ev.Kind {
	case realtime.KindSessionCreated:
		if ev.Session != nil {
			c.log.Debug().Str("session", ev.Session.ID).Str("model", ev.Session.Model).Msg("model: session created")
		}
	case realtime.KindSessionUpdated:
		if !c.ready {
			c.ready = true
			c.log.Debug().Msg("model: session configured")
			c.greet()
		}
	case realtime.KindAudioDelta:
		c.onAudio(ev)
	case realtime.KindSpeechStarted:
		c.log.Debug().Int("audio_start_ms", ev.AudioStartMS).Msg("model: caller started speaking")
		c.bargeIn()
	case realtime.KindSpeechStopped:
		c.log.Debug().Int("audio_end_ms", ev.AudioEndMS).Msg("model: caller stopped speaking")
	case realtime.KindInputTranscript:
		c.log.Info().Str("who", "caller").Str("item_id", ev.ItemID).Str("text", ev.Text).Msg("transcript")
	case realtime.KindInputTranscriptFailed:
		c.log.Warn().Str("item_id", ev.ItemID).Msg("model: caller transcription failed")
	case realtime.KindTranscriptDelta:
		c.botText[ev.ItemID] += ev.Text
	case realtime.KindTranscriptDone:
		text := ev.Text
		if text == "" {
			text = c.botText[ev.ItemID]
		}
		delete(c.botText, ev.ItemID)
		c.log.Info().Str("who", "bot").Str("item_id", ev.ItemID).Str("text", text).Msg("transcript")
	case realtime.KindResponseDone:
		if r := ev.Response; r != nil {
			e := c.log.Debug()
			if r.Status == "failed" {
				e = c.log.Warn()
			}
			e.Str("response_id", r.ID).Str("status", r.Status).Str("reason", r.StatusDetails.Reason).Msg("model: response done")
		}
	case realtime.KindError:
		c.log.Warn().Str("code", ev.Err.Code).Str("type", ev.Err.Type).Str("event", ev.Err.EventID).
			Str("message", ev.Err.Message).Msg("model: error")
	}
}

func (c *callState) greet() {
	if c.greeted || !c.b.cfg.Greeting {
		return
	}
	c.greeted = true
	ev, err := c.model.Dialect().ResponseCreate(c.nextEventID("greeting_"), c.b.cfg.GreetingPrompt)
	if err == nil {
		err = c.model.Send(ev)
	}
	if err != nil {
		c.log.Warn().Err(err).Msg("call: greeting not sent")
	}
}

// onAudio decodes a model audio delta (PCM16 24 kHz) and queues it at 8 kHz.
func (c *callState) onAudio(ev realtime.ServerEvent) {
	if c.discarded[ev.ResponseID] {
		return // a late delta of an interrupted response
	}
	c.received[ev.ItemID] += len(ev.Audio) / 48
	c.pcm24 = c.pcm24[:0]
	for i := 0; i+1 < len(ev.Audio); i += 2 {
		c.pcm24 = append(c.pcm24, int16(binary.LittleEndian.Uint16(ev.Audio[i:])))
	}
	c.pcm8 = c.down.Process(c.pcm8[:0], c.pcm24)
	c.media.Enqueue(media.ItemRef{ResponseID: ev.ResponseID, ItemID: ev.ItemID, ContentIndex: ev.ContentIndex}, c.pcm8)
}

// bargeIn stops the bot when the caller talks over it, and tells the model
// exactly how much of each interrupted item the caller was sent.
func (c *callState) bargeIn() {
	if c.media == nil || c.media.QueuedMS() == 0 {
		return // nothing playing: nothing to stop or truncate
	}
	played := c.media.Flush()
	c.bargeIns++
	c.down.Reset()
	for _, p := range played {
		c.discarded[p.Ref.ResponseID] = true
		audioEnd := min(p.SentMS(), c.received[p.Ref.ItemID])
		if p.SentSamples == 0 {
			audioEnd = 0
		}
		ev, err := c.model.Dialect().ItemTruncate(c.nextEventID("truncate_"), p.Ref.ItemID, p.Ref.ContentIndex, audioEnd)
		if err == nil {
			err = c.model.Send(ev)
		}
		c.log.Info().Str("item_id", p.Ref.ItemID).Int("audio_end_ms", audioEnd).
			Int("discarded_ms", p.QueuedSamples*1000/media.SampleRate).Err(err).Msg("barge-in: truncated")
	}
}
