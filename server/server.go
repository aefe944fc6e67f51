// Package server assembles voicebot from its configuration (the SIP user
// agent, the media engine, the bridge, the model, the HTTP API, records and
// caller memory) and runs it until it is stopped or drained. cmd/voicebot
// keeps the flags, signals and exit codes; the end-to-end tests build a
// Server as it does.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/api"
	"github.com/voicebot/voicebot/bridge"
	"github.com/voicebot/voicebot/clock"
	"github.com/voicebot/voicebot/cluster"
	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/converse"
	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/memory"
	"github.com/voicebot/voicebot/metrics"
	"github.com/voicebot/voicebot/record"
	"github.com/voicebot/voicebot/secret"
	"github.com/voicebot/voicebot/sip"
	"github.com/voicebot/voicebot/sound"
	"github.com/voicebot/voicebot/webhook"
)

// Options are what a Server takes besides its configuration.
type Options struct {
	// Model replaces the configured model (tests); nil: the configuration's.
	Model bridge.Model
	// ReloadConfig reads the configuration again, for Reload; nil: Reload
	// does nothing.
	ReloadConfig func() (config.Config, error)
}

// Server is voicebot assembled from its configuration: the SIP user agent
// and the API are listening, the stores are open, the model is ready to
// dial. Run serves calls.
type Server struct {
	cfg     config.Config
	log     zerolog.Logger
	opts    Options
	routes  *atomic.Pointer[routing]
	records *record.Store
	memory  memory.Backend
	conv    *converse.Service
	// webhooks sends the call-ended webhook (nil: none configured).
	webhooks *webhook.Sender
	mx       *metrics.Metrics
	br       *bridge.Bridge
	ua       *sip.UA
	api      *api.Server
	// cluster publishes this instance's calls for the others (nil: no
	// cluster configured).
	cluster *cluster.Node
	// closers release what New opened, last first, when Run ends (or New
	// fails).
	closers   []func()
	drain     chan struct{}
	drainOnce sync.Once
	reload    chan struct{}
}

// New assembles voicebot: it binds the SIP transports (and the API, when
// configured), opens the records and memory stores, and readies the model.
func New(cfg config.Config, log zerolog.Logger, opts Options) (s *Server, err error) {
	s = &Server{cfg: cfg, log: log, opts: opts, drain: make(chan struct{}), reload: make(chan struct{}, 1)}
	defer func() {
		if err != nil {
			s.release()
		}
	}()
	model := opts.Model
	if model == nil {
		m, closeModel, err := newModel(cfg, log)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, closeModel)
		model = m
	}
	if s.routes, err = newRouting(cfg); err != nil {
		return nil, err
	}
	listen, _ := netip.ParseAddrPort(cfg.SIP.Listen) // validated by config
	mediaIP := listen.Addr()
	if cfg.Media.IP != "" {
		mediaIP = netip.MustParseAddr(cfg.Media.IP)
	}
	ports, err := media.NewPorts(mediaIP, cfg.Media.PortMin, cfg.Media.PortMax)
	if err != nil {
		return nil, err
	}
	tlsConfig, tlsListen, err := sipTLS(cfg.SIP.TLS)
	if err != nil {
		return nil, err
	}
	resume, err := resumeConfig(cfg.Realtime)
	if err != nil {
		return nil, err
	}
	s.mx = metrics.New()
	s.records, err = record.NewStore(record.Config{Dir: cfg.Records.Dir, WAV: cfg.Records.WAV, Retention: cfg.Records.Retention.D(), Log: log})
	if err != nil {
		return nil, err
	}
	if s.memory, err = openMemory(cfg, log); err != nil {
		return nil, err
	}
	if s.memory != nil {
		s.closers = append(s.closers, func() { s.memory.Close() })
	}
	if s.conv = s.newConversations(cfg, model, log); s.conv != nil {
		s.closers = append(s.closers, s.conv.Close)
	}
	var onEnded func(webhook.CallEnded)
	if w := cfg.Webhooks.CallEnded; w.URL != "" {
		s.webhooks = webhook.New(webhook.Config{URL: w.URL, Secret: w.Secret, Timeout: w.Timeout.D(), Retries: w.Retries,
			Counted: s.mx.WebhookDelivery, Log: log})
		onEnded = s.webhooks.Send
		// Deliveries outlive the calls: a graceful stop waits for them,
		// bounded, after the last call ended.
		s.closers = append(s.closers, func() {
			ctx, cancel := context.WithTimeout(context.Background(), webhookDrain)
			defer cancel()
			s.webhooks.Close(ctx)
		})
	}
	// One media worker per core serves every call's RTP.
	mediaEngine := media.NewEngine(clock.Real{}, runtime.GOMAXPROCS(0))
	s.closers = append(s.closers, mediaEngine.Close)
	symmetric := map[string]bridge.SymmetricRTP{"auto": bridge.SymmetricAuto, "on": bridge.SymmetricOn, "off": bridge.SymmetricOff}
	s.br = bridge.New(bridge.Config{
		Model:          model,
		ConnectTimeout: cfg.Realtime.ConnectTimeout.D(),
		AppendInterval: cfg.Realtime.AppendInterval.D(),
		BargeIn: bridge.BargeIn{
			Pause:            cfg.BargeIn.Mode == "pause",
			MinSpeech:        time.Duration(cfg.BargeIn.MinSpeechMS) * time.Millisecond,
			ResumeAfter:      time.Duration(cfg.BargeIn.ResumeAfterMS) * time.Millisecond,
			LocalVAD:         cfg.BargeIn.LocalVAD,
			LocalThresholdDB: cfg.BargeIn.LocalVADThresholdDB,
			LocalMinSpeech:   time.Duration(cfg.BargeIn.LocalVADMinSpeechMS) * time.Millisecond,
		},
		Resume:             resume,
		Metrics:            s.mx,
		Records:            s.records,
		Memory:             s.memory,
		OnEnded:            onEnded,
		Passthrough:        cfg.Audio.Transcode == "passthrough",
		RTPTimeout:         cfg.Calls.RTPTimeout.D(),
		MaxDuration:        cfg.Calls.MaxDuration.D(),
		MaxDurationWarning: cfg.Calls.MaxDurationWarning.D(),
		Ports:              ports,
		Media:              mediaEngine,
		ReorderWindow:      cfg.Media.ReorderWindow,
		InputSilenceAfter:  cfg.Media.InputSilenceAfter.D(),
		SymmetricRTP:       symmetric[cfg.Media.SymmetricRTP],
		Log:                log,
	})
	calls := api.NewRegistry()
	s.ua, err = sip.New(sip.Config{
		Listen: listen, Transports: cfg.SIP.Transports, ExternalHost: cfg.SIP.ExternalAddress,
		MediaIP: mediaIP, UserAgent: cfg.SIP.UserAgent, Codecs: sipCodecs(cfg.SIP.Codecs),
		AckTimeout: cfg.SIP.AckTimeout.D(), SessionExpires: cfg.SIP.SessionExpires.D(), MinSE: cfg.SIP.MinSE.D(),
		Trunks: trunks(cfg), RetryAfter: cfg.Shutdown.RetryAfter.D(), Admission: admission(cfg.Admission, listen, log),
		SRTP: map[string]sip.SRTPPolicy{"off": sip.SRTPOff, "optional": sip.SRTPOptional, "required": sip.SRTPRequired}[cfg.Media.SRTP],
		TLS:  tlsConfig, TLSListen: tlsListen, OnResponse: s.mx.SIPResponse, OnRefused: func(string) { s.mx.CallRefused() }, Log: log,
	}, func(ctx context.Context, call *sip.Call) {
		name, p := s.routes.Load().route(call.ToUser(), call.ToHeaderUser(), call.FromUser())
		callVars := inboundVars(call, cfg.SIP.ContextHeaders)
		calls.Add(registryCall{call}, api.CallInfo{Direction: "inbound", From: call.FromUser(), To: call.ToUser(), Agent: name, Headers: callVars.Headers})
		setup := bridge.Setup{Profile: p, Media: callMedia(call, call.Media()), Caller: call.FromUser(), Called: call.ToUser(),
			MemoryID: callerID(p, call.FromUser(), call.Header), Vars: callVars}
		calls.End(registryCall{call}, s.br.Handle(ctx, sipCall{call}, setup))
	})
	if err != nil {
		return nil, err
	}
	if cfg.API.Listen != "" {
		// The cluster needs the API's address, the API the cluster: the
		// node is built once the listener is bound, before it serves.
		var peers clusterRef
		acfg := api.Config{Listen: cfg.API.Listen, Token: cfg.API.Token, Calls: calls, Log: log,
			Metrics: s.mx.Handler(), Ready: func() error { return readiness(s.ua) }, Records: s.records,
			Place: placer(cfg, s.routes, s.ua, s.br, calls), Forget: forgetter(cfg, s.memory),
			Conversations: apiConversations(s.conv),
			TurnLimits:    api.TurnLimits{MaxBytes: cfg.Conversations.MaxBody, MaxAudioSeconds: int(cfg.Conversations.MaxAudio.D() / time.Second)}}
		if cfg.ClusterOn() {
			acfg.Cluster = &peers
		}
		s.api, err = api.Listen(acfg)
		if err != nil {
			return nil, err
		}
		if cfg.ClusterOn() {
			s.cluster = newCluster(cfg, s.api.Addr(), calls, log)
			s.closers = append(s.closers, s.cluster.Close)
			peers.Node = s.cluster
		}
	}
	s.mx.Sources(s.ua.Rejections, func() map[string]string {
		out := map[string]string{}
		for _, r := range s.ua.Registrations() {
			out[r.Trunk] = string(r.State)
		}
		return out
	})
	return s, nil
}

// release closes what New opened, last first.
func (s *Server) release() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// SIPAddr is the address SIP is served on.
func (s *Server) SIPAddr() netip.AddrPort { return s.ua.Addr() }

// APIAddr is the API's address, "" when it is off.
func (s *Server) APIAddr() string {
	if s.api == nil {
		return ""
	}
	return s.api.Addr()
}

// Ready is closed once calls can be placed and answered.
func (s *Server) Ready() <-chan struct{} { return s.ua.Ready() }

// Drain starts the graceful stop: no new calls; those in progress may
// finish (up to shutdown.drain_timeout, then they are asked to end
// politely); Run returns once they are over.
func (s *Server) Drain() { s.drainOnce.Do(func() { close(s.drain) }) }

// Reload reads the configuration again (Options.ReloadConfig) and takes its
// routes and profiles; calls in progress keep theirs.
func (s *Server) Reload() {
	select {
	case s.reload <- struct{}{}:
	default: // one is pending already
	}
}

// Run serves calls until ctx ends (every call is hung up at once) or a
// drain is over, then releases everything New opened.
func (s *Server) Run(ctx context.Context) error {
	defer s.release()
	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	cfg, log := s.cfg, s.log
	var wg sync.WaitGroup
	var apiErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-s.ua.Ready():
		case <-serveCtx.Done():
			return
		}
		log.Info().Str("sip", s.ua.Addr().String()).Str("rtp_ports", fmt.Sprintf("%d-%d", cfg.Media.PortMin, cfg.Media.PortMax)).
			Strs("profiles", append([]string{config.DefaultProfile}, cfg.Profiles.Names()...)).
			Msg("voicebot ready: call sip:bot@" + s.ua.Addr().String())
		// The API places calls: it serves once SIP does.
		if s.api != nil {
			apiErr = s.api.Serve(serveCtx)
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		sweepRecords(serveCtx, s.records, log)
	}()
	// The cluster outlives the calls: their ends are published before the
	// instance says it is gone.
	clusterCtx, leaveCluster := context.WithCancel(context.Background())
	defer leaveCluster()
	if s.cluster != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.cluster.Run(clusterCtx)
		}()
	}
	if s.memory != nil && cfg.Memory.TTL > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ttl := cfg.Memory.TTL.D()
			memory.Sweep(serveCtx, s.memory, ttl, min(time.Hour, max(ttl/4, time.Second)), time.Now, log)
		}()
	}
	if s.conv != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sweepConversations(serveCtx, s.conv, cfg.Conversations.TTL.D())
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.control(serveCtx, stopServing)
	}()
	err := s.ua.Serve(serveCtx)
	stopServing()
	leaveCluster()
	wg.Wait()
	log.Info().Msg("voicebot stopped")
	return errors.Join(err, apiErr)
}

// resumeConfig is how calls survive their model connection: the prompts
// are read once, at start, so a bad file stops voicebot rather than a call.
func resumeConfig(rt config.Realtime) (bridge.Resume, error) {
	r := rt.Reconnect
	res := bridge.Resume{
		Budget: r.Budget.D(), GapBuffer: r.Buffer.D(), RolloverBefore: rt.RolloverBefore.D(),
		FallbackTarget: r.FallbackTarget,
		FillerIntro:    sound.Moment(), FillerLoop: sound.ComfortTone(), Apology: sound.Apology(),
	}
	if res.Budget == 0 {
		res.Budget = -1 // configured off: the call ends with the connection
	}
	if r.FillerFile != "" {
		pcm, err := sound.LoadWAV(r.FillerFile)
		if err != nil {
			return res, fmt.Errorf("realtime.reconnect.filler_file: %w", err)
		}
		res.FillerIntro, res.FillerLoop = nil, pcm
	}
	if r.ApologyFile != "" {
		pcm, err := sound.LoadWAV(r.ApologyFile)
		if err != nil {
			return res, fmt.Errorf("realtime.reconnect.apology_file: %w", err)
		}
		res.Apology = pcm
	}
	return res, nil
}

// admission is who may call. A listener reachable from other machines with
// neither an allowlist nor users is worth a warning: anyone who finds the
// port spends the operator's model minutes.
func admission(a config.Admission, listen netip.AddrPort, log zerolog.Logger) sip.Admission {
	out := sip.Admission{MaxCalls: a.MaxCalls, OverCapacity: a.OverCapacity, InviteRate: a.InviteRate, InviteBurst: a.InviteBurst,
		Realm: a.Auth.Realm, Users: map[string]secret.Value{}}
	for _, n := range a.Allow {
		p, _ := config.ParseNetwork(n) // validated
		out.Allow = append(out.Allow, p)
	}
	for u, p := range a.Auth.Users {
		out.Users[u] = p
	}
	if len(out.Allow) == 0 && len(out.Users) == 0 && !listen.Addr().IsLoopback() {
		log.Warn().Str("listen", listen.String()).Msg("admission: anyone who reaches this SIP port can call the model; " +
			"set admission.allow (your PBX or trunk networks) or admission.auth.users")
	}
	return out
}

// sipTLS loads the certificate SIP over TLS is served with.
func sipTLS(t config.TLS) (*tls.Config, netip.AddrPort, error) {
	if t.Listen == "" {
		return nil, netip.AddrPort{}, nil
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, netip.AddrPort{}, fmt.Errorf("sip.tls: %w", err)
	}
	addr, _ := netip.ParseAddrPort(t.Listen) // validated
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, addr, nil
}

// readiness is why voicebot cannot take calls now: SIP not listening yet,
// draining, or a registration down (calls through that trunk would not
// reach us).
func readiness(ua *sip.UA) error {
	select {
	case <-ua.Ready():
	default:
		return errors.New("sip is not listening yet")
	}
	if ua.Draining() {
		return errors.New("draining")
	}
	for _, r := range ua.Registrations() {
		if r.State != sip.Registered {
			return errors.New(registrationProblem(r))
		}
	}
	return nil
}

// registrationProblem says, in words, why a trunk is not registered.
func registrationProblem(r sip.RegistrationStatus) string {
	switch r.State {
	case sip.Registering:
		return "not yet registered to trunk " + r.Trunk
	case sip.RegFailed:
		why := r.Error
		if why == "" && r.Code != 0 {
			why = fmt.Sprintf("answered %d", r.Code)
		}
		if why == "" {
			why = "no answer"
		}
		attempts := fmt.Sprintf("%d attempts in a row", r.Failures)
		if r.Failures == 1 {
			attempts = "1 attempt"
		}
		return fmt.Sprintf("registration to trunk %s failed (%s; %s)", r.Trunk, why, attempts)
	}
	return fmt.Sprintf("not registered to trunk %s (%s)", r.Trunk, r.State)
}

// sweepRecords deletes records past their retention, at start and hourly.
func sweepRecords(ctx context.Context, s *record.Store, log zerolog.Logger) {
	for {
		if n := s.Sweep(time.Now()); n > 0 {
			log.Info().Int("files", n).Msg("records: old records deleted")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Hour):
		}
	}
}

// webhookDrain bounds how long a stopping voicebot waits for call-ended
// deliveries still queued or being retried.
const webhookDrain = 15 * time.Second
