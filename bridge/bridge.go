// Package bridge is one call's brain: it joins a call's media (RTP) to a
// model session (Realtime WebSocket), moves audio both ways, greets, handles
// barge-in, keys, hold and the tools the model calls (hang up, transfer,
// send keys, webhooks), and logs the transcript. It is the only package that
// knows both media and realtime.
package bridge

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/clock"
	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/memory"
	"github.com/voicebot/voicebot/metrics"
	"github.com/voicebot/voicebot/outcome"
	"github.com/voicebot/voicebot/realtime"
	"github.com/voicebot/voicebot/record"
	"github.com/voicebot/voicebot/vars"
	"github.com/voicebot/voicebot/webhook"
)

// Call is what the bridge needs of a SIP call; cmd/voicebot adapts sip.Call
// to it.
type Call interface {
	ID() string
	// Ringing tells an inbound caller we are on it (nothing for outbound).
	Ringing() error
	// Answer connects the call with our RTP at localPort: it answers an
	// inbound call, and places an outbound one, returning once the callee
	// answers.
	Answer(ctx context.Context, localPort int) error
	// Refuse ends a call that is not connected, saying why (the signalling
	// turns the reason into its own: a SIP failure response, or a CANCEL
	// for an outbound call).
	Refuse(why Refusal) error
	Hangup() error
	// Transfer asks the far end to call target instead (blind transfer)
	// and returns once that succeeded or failed.
	Transfer(ctx context.Context, target string) error
	// Observe gives the call what to tell of its signalling: keys sent as
	// SIP INFO, renegotiated media. Called before Answer.
	Observe(Observer)
	// Outcome is how the signalling ended the call (the far end hung up,
	// it was hung up through the API, cancelled, refused with a SIP
	// status, the session timer ran out…), zero while it goes on.
	Outcome() outcome.End
}

// Refusal is why a call is refused before it is answered, in the bridge's
// terms; the signalling says it in its own (server maps each to a SIP
// status, in one table).
type Refusal string

// The refusals.
const (
	RefusedNoMediaPort      Refusal = "no media port"      // the RTP port range is exhausted
	RefusedModelUnreachable Refusal = "model unreachable"  // the model session could not be opened
	RefusedSessionUnsent    Refusal = "session not sent"   // session.update could not be encoded or sent
	RefusedModelNotReady    Refusal = "model not ready"    // the model refused or did not take the configuration
	RefusedNoMedia          Refusal = "no media"           // the call's media could not start
	RefusedCodec            Refusal = "no codec in common" // the offer has no codec voicebot speaks
)

// Observer is told what happens in a call's signalling. Its methods are
// called from SIP goroutines and return at once.
type Observer interface {
	KeyPressed(key rune)
	// MediaChanged reports the media as now negotiated; early is media of
	// an outbound call the callee has not answered yet.
	MediaChanged(m CallMedia, early bool)
}

// CallMedia is the negotiated media of a call.
type CallMedia struct {
	Remote          netip.AddrPort
	Codec           media.Codec
	DTMFPayloadType uint8
	// Signalling is where the call's SIP comes from. RTP from its IP is
	// accepted too, for peers behind NAT whose SDP names a private address.
	Signalling netip.Addr
	// OnHold: the peer offered sendonly or inactive.
	OnHold bool
	// SRTP keys the media when it is encrypted (SDES), nil for plain RTP.
	SRTP *media.SRTP
}

// Setup is one call's particulars.
type Setup struct {
	// Profile is the agent that takes the call.
	Profile *Profile
	// Media is an inbound call's negotiated media; an outbound call learns
	// its media when the callee answers.
	Media    CallMedia
	Outbound bool
	// Caller and Called are the numbers (or SIP users), for webhooks.
	Caller, Called string
	// MemoryID is who the far end is to the memory store (memory.Identity
	// of the caller's number or the profile's identity header); empty: not
	// remembered.
	MemoryID string
	// Vars is the call's context, which the profile's templates use.
	Vars vars.Vars
}

// Model opens a model session for a call.
type Model interface {
	Dial(ctx context.Context, model string) (*realtime.Conn, error)
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

// SymmetricRTP says when RTP is sent back to where the peer's comes from.
type SymmetricRTP int

const (
	// SymmetricAuto latches when the peer looks NATed: its SDP address is
	// not where its signalling comes from.
	SymmetricAuto SymmetricRTP = iota
	SymmetricOn
	SymmetricOff
)

// Config is what every call shares.
type Config struct {
	Model          Model
	ConnectTimeout time.Duration
	AppendInterval time.Duration
	BargeIn        BargeIn
	Resume         Resume

	// RTPTimeout hangs up a call whose caller sends no RTP this long (not
	// on hold); MaxDuration ends calls politely after this long, telling
	// the model MaxDurationWarning ahead. Zero: no limit.
	RTPTimeout, MaxDuration, MaxDurationWarning time.Duration

	Ports *media.Ports
	// Media runs the calls' RTP (nil: each call runs its own).
	Media             *media.Engine
	ReorderWindow     int
	InputSilenceAfter time.Duration
	SymmetricRTP      SymmetricRTP

	// Metrics receives what calls do (nil: none).
	Metrics *metrics.Metrics
	// Records keeps each call's events, transcript and recording (nil: none).
	Records *record.Store
	// Memory keeps callers' turns across calls, for profiles that
	// remember (nil: none). It should be memory.Guarded: a slow or broken
	// store must cost a call its memory only.
	Memory memory.Store
	// OnEnded, if set, is told every call's end (answered or not), for the
	// call-ended webhook. It must not block: it runs in the call's
	// teardown.
	OnEnded func(webhook.CallEnded)
	// Passthrough sends the call's G.711 to the model and takes G.711 back
	// (audio/pcmu, audio/pcma): no resampling, no decoding of the caller.
	// Inbound calls only: an outbound call's codec is known only at answer,
	// after the model session is configured.
	Passthrough bool

	// HTTP carries webhook tool calls (default: a client without a global
	// timeout; each webhook has its own).
	HTTP *http.Client

	Clock clock.Clock
	Log   zerolog.Logger
}

// Bridge runs calls.
type Bridge struct {
	cfg          Config
	shutdown     chan struct{} // closed by WrapUpAll
	shutdownOnce sync.Once
}

// WrapUpAll asks every call, now and to come, to end politely: the bot
// finishes its sentence or says goodbye, then hangs up. A drain that has
// waited long enough for calls to end by themselves calls it.
func (b *Bridge) WrapUpAll() { b.shutdownOnce.Do(func() { close(b.shutdown) }) }

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
	cfg.Resume.defaults()
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{}
	}
	return &Bridge{cfg: cfg, shutdown: make(chan struct{})}
}

// Handle runs one call to its end, and returns how it ended. ctx ends when
// the far end hangs up.
func (b *Bridge) Handle(ctx context.Context, call Call, setup Setup) (end outcome.End) {
	log := b.cfg.Log.With().Str("call_id", call.ID()).Logger()
	c := newCallState(b, setup.Profile, nil, log)
	c.call, c.setup = call, setup
	c.session.Instructions = vars.Render(c.session.Instructions, setup.Vars)
	profile := c.profile // the default one when setup has none
	direction := "inbound"
	if setup.Outbound {
		direction = "outbound"
	}
	answeredAt, startedAt := time.Time{}, b.cfg.Clock.Now()
	begin := record.Event{"direction": direction, "from": setup.Caller, "to": setup.Called, "agent": profile.Name}
	if len(setup.Vars.Headers) > 0 {
		begin["headers"] = setup.Vars.Headers
	}
	if len(setup.Vars.Values) > 0 {
		begin["variables"] = setup.Vars.Values
	}
	c.rec = b.cfg.Records.Start(call.ID(), begin)
	defer func() {
		if end.Zero() {
			end = call.Outcome() // not answered: how the signalling ended it
		}
		if end.Zero() {
			end = outcome.End{Outcome: outcome.Error, Detail: "not answered"}
		}
		var d time.Duration
		if !answeredAt.IsZero() {
			d = time.Since(answeredAt)
		} else {
			log.Info().Str("outcome", string(end.Outcome)).Int("sip_code", end.SIPCode).Str("detail", end.Detail).
				Bool("outbound", setup.Outbound).Msg("call: ended")
		}
		b.cfg.Metrics.CallEnded(direction, profile.Name, end.Outcome, !answeredAt.IsZero(), d)
		c.rememberCall()
		var st media.Stats
		if c.media != nil {
			st = c.media.Stats()
		}
		c.rec.End(record.Event{"outcome": string(end.Outcome), "sip_code": end.SIPCode, "detail": end.Detail,
			"answered": !answeredAt.IsZero(), "duration_s": d.Seconds(),
			"rtp_in": st.PacketsIn, "rtp_out": st.PacketsOut, "lost": st.Lost, "jitter_ms": float64(st.Jitter) / 1e6,
			"barge_ins": c.bargeIns, "tool_calls": c.tools.calls, "reconnects": c.sess.reconnects})
		if b.cfg.OnEnded != nil {
			b.cfg.OnEnded(c.endedSummary(direction, profile.Name, startedAt, answeredAt, d, end))
		}
	}()
	refuse := func(why Refusal) outcome.End {
		_ = call.Refuse(why)
		return refused(call, why)
	}
	if !setup.Outbound && setup.Media.Codec.Name == "" {
		return refuse(RefusedCodec)
	}
	if !setup.Outbound {
		_ = call.Ringing()
	}
	conn, err := b.allocate()
	if err != nil {
		log.Error().Err(err).Msg("call: no RTP port")
		return refuse(RefusedNoMediaPort)
	}
	defer b.cfg.Ports.Release(conn)

	c.sig.peerHold.Store(setup.Media.OnHold)
	c.useCodec(setup.Media.Codec)
	if b.cfg.Passthrough && !setup.Outbound {
		c.usePassthrough(setup.Media.Codec)
	}
	// The media session exists from here so the greeting's audio can queue;
	// it starts sending only once the call is answered.
	mcfg := media.Config{
		Peer:          b.peer(setup.Media),
		ReorderWindow: b.cfg.ReorderWindow, InputSilenceAfter: b.cfg.InputSilenceAfter,
		OnAudio: c.callerAudio, OnPayload: c.callerPayloadFunc(), OnDTMF: c.rtpKey, Clock: b.cfg.Clock, Log: log,
		Engine: b.cfg.Media,
	}
	if c.rec.Recording() {
		// The bot's frames reach the recording as they leave (G.711
		// decoded back, a stateful codec's before it is encoded).
		mcfg.OnSent = c.rec.BotAudio
	}
	c.media = media.NewSession(conn, mcfg)
	call.Observe(c)

	callCtx, cancel := context.WithCancel(ctx)
	c.tools.ctx = callCtx
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	c.startRecall(callCtx, &wg)
	var stopMedia func()
	defer func() {
		if stopMedia != nil {
			stopMedia() // before the port is released
		}
	}()
	runMedia := func() error {
		stop, err := c.media.Start()
		if err != nil {
			log.Error().Err(err).Msg("call: RTP socket unusable")
			return err
		}
		stopMedia = stop
		return nil
	}
	var answered chan error
	if setup.Outbound {
		// Ring while the model session opens. Nothing is sent or heard until
		// the callee answers: early media is ringback, not a caller.
		c.media.Hold(true)
		if runMedia() != nil {
			// Not placed yet: nobody is left waiting.
			return outcome.End{Outcome: outcome.Error, Detail: "RTP socket unusable"}
		}
		answered = make(chan error, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			answered <- call.Answer(callCtx, int(c.media.LocalAddr().Port()))
		}()
	}

	// The model session opens while the phone rings, so the greeting is not late.
	dialCtx, cancelDial := context.WithTimeout(ctx, b.cfg.ConnectTimeout)
	model, err := b.cfg.Model.Dial(dialCtx, profile.Model)
	cancelDial()
	if err != nil {
		if ctx.Err() != nil {
			return outcome.End{} // the far end gave up while we connected
		}
		log.Error().Err(err).Msg("call: model unreachable")
		return refuse(RefusedModelUnreachable)
	}
	c.conn = model
	defer c.closeSessions()
	c.setModel(model)
	if err := c.configure(); err != nil {
		log.Error().Err(err).Msg("call: session.update")
		return refuse(RefusedSessionUnsent)
	}
	// Still ringing: wait for the model to take the configuration. The
	// greeting is requested the moment it does, so its audio is generated
	// while the phone rings and plays the instant the call is answered.
	readyCtx, cancelReady := context.WithTimeout(ctx, b.cfg.ConnectTimeout)
	err = c.awaitReady(readyCtx, model.Events(), model.Err)
	cancelReady()
	if err != nil {
		if ctx.Err() != nil {
			return outcome.End{}
		}
		log.Error().Err(err).Msg("call: model not ready")
		return refuse(RefusedModelNotReady)
	}

	start := time.Now()
	if setup.Outbound {
		select {
		case err = <-answered:
		case <-ctx.Done():
			err = ctx.Err()
		}
	} else {
		if runMedia() != nil {
			return refuse(RefusedNoMedia)
		}
		err = call.Answer(callCtx, int(c.media.LocalAddr().Port()))
	}
	if err != nil {
		if ctx.Err() == nil || setup.Outbound {
			log.Warn().Err(err).Msg("call: not established")
		}
		return outcome.End{}
	}
	c.connected()
	answeredAt = start
	b.cfg.Metrics.CallAnswered(direction)
	peer := c.media.CurrentPeer()
	c.rec.Emit("answered", record.Event{"codec": peer.Codec.Name, "rate": peer.Codec.SampleRate, "srtp": peer.SRTP != nil})
	log.Info().Str("local_rtp", c.media.LocalAddr().String()).Str("codec", peer.Codec.Name).Str("rate", peer.Codec.Rate()).Bool("srtp", peer.SRTP != nil).
		Str("profile", profile.Name).Bool("outbound", setup.Outbound).Msg("call: answered")
	reason := c.run(callCtx)
	end = c.outcomeOf(reason)
	c.stopTimers()
	cancel()
	c.tools.wait()
	st := c.media.Stats()
	b.cfg.Metrics.Media(st, c.lastStats)
	log.Info().Str("outcome", string(end.Outcome)).Int("sip_code", end.SIPCode).Str("detail", end.Detail).Dur("duration", time.Since(start).Round(time.Millisecond)).
		Uint64("rtp_in", st.PacketsIn).Uint64("rtp_out", st.PacketsOut).Uint64("lost", st.Lost).
		Uint64("late", st.Late).Uint64("strangers", st.FromStranger).Uint64("wrong_pt", st.WrongPayloadType).Uint64("rtp_held", st.HeldIn).
		Dur("pacer_max_late", st.MaxLateness).Uint64("frames_skipped", st.SkippedOut).Uint64("audio_misrated", st.MisratedOut).Uint64("appends_dropped", c.up.dropped).
		Int("barge_ins", c.bargeIns).Int("false_barge_ins", c.falseBargeIns).
		Int("keys", c.keys.pressed).Int64("keys_dropped", int64(c.keys.dropped)+c.keys.infoDropped.Load()).Uint64("dtmf_out", st.DTMFOut).
		Int("tool_calls", c.tools.calls).Msg("call: ended")
	if reason != endCallerHungUp {
		_ = call.Hangup()
	}
	return end
}

// peer is the media session's view of negotiated media.
func (b *Bridge) peer(m CallMedia) media.Peer {
	p := media.Peer{Remote: m.Remote, Codec: m.Codec, DTMFPayloadType: m.DTMFPayloadType, SRTP: m.SRTP}
	sdpIP := m.Remote.Addr().Unmap()
	natted := m.Signalling.IsValid() && m.Remote.IsValid() && m.Signalling.Unmap() != sdpIP
	switch b.cfg.SymmetricRTP {
	case SymmetricOn:
		p.Symmetric = true
	case SymmetricAuto:
		p.Symmetric = natted
	}
	if natted && p.Symmetric {
		p.Sources = []netip.Addr{m.Signalling.Unmap()}
	}
	return p
}

func (b *Bridge) allocate() (*net.UDPConn, error) {
	if b.cfg.Ports == nil {
		return nil, errors.New("bridge: no port pool")
	}
	return b.cfg.Ports.Allocate()
}
