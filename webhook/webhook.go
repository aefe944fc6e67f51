// Package webhook tells a CRM, a dialler or a data warehouse about every
// call that ended: one signed JSON POST per call, sent from a queue of its
// own (a slow or broken receiver never holds a call's teardown up),
// retried with backoff on 5xx answers and timeouts, counted by result,
// and delivered before a graceful shutdown ends (bounded).
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/voicebot/voicebot/clock"
	"github.com/voicebot/voicebot/secret"
)

// CallEnded is the body of the call-ended webhook. The keys are an
// interface: receivers depend on them exactly.
type CallEnded struct {
	CallID     string            `json:"call_id"`
	Direction  string            `json:"direction"` // inbound or outbound
	Caller     string            `json:"caller"`
	Called     string            `json:"called"`
	Agent      string            `json:"agent"`
	Variables  map[string]string `json:"variables"`
	StartedAt  time.Time         `json:"started_at"`
	AnsweredAt *time.Time        `json:"answered_at"` // null: never answered
	EndedAt    time.Time         `json:"ended_at"`
	DurationMS int64             `json:"duration_ms"` // answered to ended; 0 if never answered
	Outcome    string            `json:"outcome"`
	SIPCode    int               `json:"sip_code"`
	Detail     string            `json:"detail"`
	Transcript []Turn            `json:"transcript"`
	ToolCalls  int               `json:"tool_calls"`
	BargeIns   int               `json:"barge_ins"`
	Recording  string            `json:"recording"` // the recording's file, "" when none
}

// Turn is one thing said on the call.
type Turn struct {
	Role string    `json:"role"` // user (the caller) or assistant (the bot)
	Text string    `json:"text"`
	At   time.Time `json:"at"`
}

// Headers of a delivery.
const (
	// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the
	// body with the configured secret.
	SignatureHeader = "X-Voicebot-Signature"
	// TimestampHeader is when the delivery was made (Unix seconds): a
	// receiver may refuse old ones.
	TimestampHeader = "X-Voicebot-Timestamp"
)

// Sign is the signature of body with secret, as SignatureHeader writes it.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Config configures a Sender.
type Config struct {
	URL     string
	Secret  secret.Value
	Timeout time.Duration // per attempt (default 5 s)
	Retries int           // attempts after the first (default 3)
	// Backoff is the wait before the first retry, doubled each time
	// (default 1 s).
	Backoff time.Duration
	// Counted is told each delivery's end: "delivered", "failed"
	// (attempts used up or a 4xx) or "dropped" (the queue was full).
	Counted func(result string)
	Client  *http.Client
	Clock   clock.Clock
	Log     zerolog.Logger
}

// queueSize bounds the deliveries waiting: a receiver that is down for long
// costs memory no more than this many calls' summaries.
const queueSize = 1000

// workers deliver in parallel, so one slow receiver answer does not delay
// the others more than it must.
const workers = 4

// Sender delivers call-ended webhooks. Send never blocks.
type Sender struct {
	cfg   Config
	queue chan CallEnded
	wg    sync.WaitGroup
	// stopped ends once Close's deadline passes: attempts in flight are
	// cut, retries and what is still queued abandoned.
	stopped context.Context
	stop    context.CancelFunc
	once    sync.Once
}

// New starts a Sender's workers; Close stops them.
func New(cfg Config) *Sender {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Counted == nil {
		cfg.Counted = func(string) {}
	}
	s := &Sender{cfg: cfg, queue: make(chan CallEnded, queueSize)}
	s.stopped, s.stop = context.WithCancel(context.Background())
	for i := 0; i < workers; i++ {
		s.wg.Add(1)
		go s.work()
	}
	return s
}

// Send queues a call's summary; it never blocks (a full queue drops it,
// logged and counted).
func (s *Sender) Send(ev CallEnded) {
	select {
	case s.queue <- ev:
	default:
		s.cfg.Counted("dropped")
		s.cfg.Log.Error().Str("call_id", ev.CallID).Int("queued", queueSize).Msg("webhook: queue full; call_ended not delivered")
	}
}

// Close waits for the queued deliveries until ctx ends, then abandons
// what is left (logged and counted as failed).
func (s *Sender) Close(ctx context.Context) {
	s.once.Do(func() {
		close(s.queue)
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			s.stop()
			<-done
		}
		s.stop()
	})
}

func (s *Sender) work() {
	defer s.wg.Done()
	for ev := range s.queue {
		if s.stopped.Err() != nil {
			s.cfg.Counted("failed")
			s.cfg.Log.Error().Str("call_id", ev.CallID).Msg("webhook: call_ended abandoned at shutdown")
			continue
		}
		s.deliver(ev)
	}
}

// deliver POSTs one summary, retrying 5xx answers, timeouts and
// connection failures with backoff.
func (s *Sender) deliver(ev CallEnded) {
	body, err := json.Marshal(ev)
	if err != nil {
		s.cfg.Counted("failed")
		s.cfg.Log.Error().Err(err).Str("call_id", ev.CallID).Msg("webhook: call_ended not encoded")
		return
	}
	log := s.cfg.Log.With().Str("call_id", ev.CallID).Logger()
	wait := s.cfg.Backoff
	for attempt := 0; ; attempt++ {
		retry, err := s.post(body)
		if err == nil {
			s.cfg.Counted("delivered")
			log.Debug().Int("attempt", attempt+1).Msg("webhook: call_ended delivered")
			return
		}
		if !retry || attempt >= s.cfg.Retries {
			s.cfg.Counted("failed")
			log.Error().Err(err).Int("attempts", attempt+1).Msg("webhook: call_ended not delivered")
			return
		}
		log.Warn().Err(err).Dur("retry_in", wait).Msg("webhook: call_ended not delivered yet; retrying")
		t := s.cfg.Clock.NewTimer(wait)
		select {
		case <-t.C():
		case <-s.stopped.Done():
			t.Stop()
			s.cfg.Counted("failed")
			log.Error().Err(err).Msg("webhook: call_ended abandoned at shutdown")
			return
		}
		wait *= 2
	}
}

// post makes one attempt; retry says whether another may succeed.
func (s *Sender) post(body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(s.stopped, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "voicebot")
	req.Header.Set(SignatureHeader, Sign([]byte(s.cfg.Secret.Reveal()), body))
	req.Header.Set(TimestampHeader, strconv.FormatInt(s.cfg.Clock.Now().Unix(), 10))
	res, err := s.cfg.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return true, fmt.Errorf("no answer within %s", s.cfg.Timeout)
		}
		// The URL may hold a token: say only where it went.
		return true, fmt.Errorf("unreachable (%s)", req.URL.Host)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
		return false, nil
	case res.StatusCode >= 500 || res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusRequestTimeout:
		return true, fmt.Errorf("HTTP %d", res.StatusCode)
	}
	return false, fmt.Errorf("HTTP %d (not retried)", res.StatusCode)
}
