// Package bridge is one call's brain: it joins a call's media (RTP) to a
// model session (Realtime WebSocket), moves audio both ways, greets, handles
// barge-in, and logs the transcript. It is the only package that knows both
// media and realtime.
package bridge

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/clock"
	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/realtime"
)

// Call is what the bridge needs of a SIP call; sip.Call provides it.
type Call interface {
	ID() string
	Ringing() error
	Answer(ctx context.Context, localPort int) error
	Reject(code int, reason string) error
	Hangup() error
	// Keys delivers keys pressed as SIP INFO.
	Keys() <-chan rune
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

// BargeIn configures what happens when the caller talks over the bot.
type BargeIn struct {
	// Pause holds playout on speech_started and decides afterwards: speech of
	// MinSpeech or more flushes; shorter speech resumes with nothing lost.
	Pause       bool
	MinSpeech   time.Duration
	ResumeAfter time.Duration
	// LocalVAD triggers barge-in from the caller's audio energy, before the
	// model's event. LocalThresholdDB and LocalMinSpeech tune the detector,
	// which pause mode also uses to measure how long the caller spoke.
	LocalVAD         bool
	LocalThresholdDB float64
	LocalMinSpeech   time.Duration
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
	BargeIn        BargeIn

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
	if cfg.BargeIn.MinSpeech <= 0 {
		cfg.BargeIn.MinSpeech = 400 * time.Millisecond
	}
	if cfg.BargeIn.ResumeAfter <= 0 {
		cfg.BargeIn.ResumeAfter = 2 * time.Second
	}
	if cfg.BargeIn.LocalMinSpeech <= 0 {
		cfg.BargeIn.LocalMinSpeech = 120 * time.Millisecond
	}
	if cfg.BargeIn.LocalThresholdDB == 0 {
		cfg.BargeIn.LocalThresholdDB = -35
	}
	if cfg.BargeIn.Pause && cfg.Session.TurnDetection != nil {
		// In pause mode the bridge decides whether speech interrupts: the
		// model must not cancel its answer by itself.
		td := *cfg.Session.TurnDetection
		td.InterruptResponse = false
		cfg.Session.TurnDetection = &td
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

	c := newCallState(b, model, log)
	// The media session exists from here so the greeting's audio can queue;
	// it starts sending only once the call is answered.
	c.media = media.NewSession(conn, media.Config{
		Remote: cm.Remote, Codec: cm.Codec, DTMFPayloadType: cm.DTMFPayloadType,
		ReorderWindow: b.cfg.ReorderWindow, InputSilenceAfter: b.cfg.InputSilenceAfter,
		OnAudio: c.up.write, OnDTMF: c.rtpKey, Clock: b.cfg.Clock, Log: log,
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
	err = c.awaitReady(readyCtx, model.Events(), model.Err)
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
	reason := c.run(callCtx, model.Events(), model.Err, call.Keys())
	c.stopBargeTimer()
	if c.keys.timer != nil {
		c.keys.timer.Stop()
	}
	st := c.media.Stats()
	log.Info().Str("end", reason).Dur("duration", time.Since(start).Round(time.Millisecond)).
		Uint64("rtp_in", st.PacketsIn).Uint64("rtp_out", st.PacketsOut).Uint64("lost", st.Lost).
		Uint64("late", st.Late).Uint64("strangers", st.FromStranger).Uint64("wrong_pt", st.WrongPayloadType).
		Dur("pacer_max_late", st.MaxLateness).Uint64("appends_dropped", c.up.dropped).
		Int("barge_ins", c.bargeIns).Int("false_barge_ins", c.falseBargeIns).
		Int("keys", c.keys.pressed).Int("keys_dropped", c.keys.dropped).Msg("call: ended")
	if reason != endCallerHungUp {
		_ = call.Hangup()
	}
}

func (b *Bridge) allocate() (*net.UDPConn, error) {
	if b.cfg.Ports == nil {
		return nil, errors.New("bridge: no port pool")
	}
	return b.cfg.Ports.Allocate()
}
