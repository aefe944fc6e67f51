package converse

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/voicebot/voicebot/memory"
	"github.com/voicebot/voicebot/realtime"
)

// Input is one user turn: text, or audio (PCM16 mono at 24 kHz, the
// model's rate).
type Input struct {
	Text  string
	Audio []int16
	// TextOnly asks for a text answer: the model generates no audio.
	TextOnly bool
}

// Event is one piece of a streamed answer. Type is one of the Event*
// constants; the fields it uses are set.
type Event struct {
	Type      string
	Text      string // transcript, text.delta, done (the whole answer)
	Audio     []byte // audio.delta: PCM16 LE 24 kHz mono, valid during the emit only
	Name      string // tool_call
	Arguments string // tool_call
	AudioMS   int    // done
	Code      string // error
	Message   string // error
}

// The events of an answer, as the HTTP stream names them.
const (
	EventTranscript = "transcript" // what the user said, as the model transcribed it
	EventTextDelta  = "text.delta"
	EventAudioDelta = "audio.delta"
	EventToolCall   = "tool_call"
	EventDone       = "done"
	EventError      = "error"
)

// maxToolRounds bounds the answers one turn may chain through tools.
const maxToolRounds = 8

// Turn runs one user turn of conversation id: emit is called with each
// event of the answer, in order, ending with done (or error). The turn is
// kept in the conversation once the answer is complete; a turn whose
// client went away (ctx ended) is not, and its model session is closed.
func (s *Service) Turn(ctx context.Context, id string, in Input, emit func(Event)) error {
	if strings.TrimSpace(in.Text) == "" && len(in.Audio) == 0 {
		return ErrEmptyTurn
	}
	if in.Text == "" && len(in.Audio) < realtime.PCM16.SampleRate()/10 {
		return ErrShortAudio
	}
	if err := s.acquire(id); err != nil {
		return err
	}
	defer s.release(id)
	conv, turns, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	agent, ok := s.cfg.Agent(conv.Agent)
	if !ok {
		return fmt.Errorf("%w: %q (it was removed from the configuration)", ErrUnknownAgent, conv.Agent)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.TurnTimeout)
	defer cancel()
	log := s.cfg.Log.With().Str("conversation", id).Str("agent", agent.Name).Logger()

	sess := s.takeIdle(id, conv.Updated, len(turns))
	if sess == nil {
		if sess, err = s.open(ctx, agent, conv, turns); err != nil {
			log.Warn().Err(err).Msg("conversation: no model session")
			return fmt.Errorf("%w: %v", ErrModel, err)
		}
	}
	started := s.cfg.Clock.Now()
	res, err := sess.turn(ctx, agent, in, emit)
	if err != nil {
		sess.close()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			log.Warn().Dur("timeout", s.cfg.TurnTimeout).Msg("conversation: no complete answer in time; nothing kept")
			return fmt.Errorf("%w: no complete answer within %s", ErrModel, s.cfg.TurnTimeout)
		}
		if ctx.Err() != nil {
			log.Info().Msg("conversation: the client went away mid-turn; nothing kept")
			return ctx.Err()
		}
		log.Warn().Err(err).Msg("conversation: turn failed")
		return fmt.Errorf("%w: %v", ErrModel, err)
	}
	now := s.cfg.Clock.Now()
	user := in.Text
	if user == "" {
		user = res.transcript
	}
	if user == "" {
		user = fmt.Sprintf("(%.1f s of speech)", float64(len(in.Audio))/float64(realtime.PCM16.SampleRate()))
	}
	kept := []memory.Turn{{Role: "user", Text: user, At: started, CallID: id}}
	if res.text != "" {
		kept = append(kept, memory.Turn{Role: "assistant", Text: res.text, At: now, CallID: id})
	}
	if err := s.cfg.Store.AppendConversation(context.WithoutCancel(ctx), id, kept, now); err != nil {
		// The answer was given; only the history is short of it.
		sess.close()
		log.Warn().Err(err).Msg("conversation: turn not kept")
		emit(Event{Type: EventDone, Text: res.text, AudioMS: res.audioMS})
		return nil
	}
	emit(Event{Type: EventDone, Text: res.text, AudioMS: res.audioMS})
	log.Info().Int("audio_in_ms", len(in.Audio)/24).Int("audio_out_ms", res.audioMS).Int("chars_out", len(res.text)).
		Dur("took", now.Sub(started)).Msg("conversation: turn answered")
	s.keepIdle(id, sess, now, len(turns)+len(kept))
	return nil
}

// session is a conversation's model session.
type session struct {
	conn *realtime.Conn
	// seen and seenTurns are the conversation's Updated and turn count
	// when this session last had all of it.
	seen      time.Time
	seenTurns int
	taken     chan struct{}
	seq       uint64
	// userItem is the item the turn's committed audio became: only its
	// transcript is this turn's (a late one of an earlier turn is not).
	userItem string
}

func (s *session) close() { s.conn.Close() }

func (s *session) eventID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%d", prefix, s.seq)
}

// replayMaxChars bounds the text a new session is given of the
// conversation so far (as a call's replay is bounded).
const replayMaxChars = 24000

// sessionWait bounds the wait for the session's configuration to be taken.
const sessionWait = 15 * time.Second

// open dials a session for the conversation, configures it for push to
// talk (the client's turn is committed whole: no VAD) and replays the
// turns so far.
func (s *Service) open(ctx context.Context, agent Agent, conv memory.Conversation, turns []memory.Turn) (*session, error) {
	conn, err := s.cfg.Model.Dial(ctx, agent.Model)
	if err != nil {
		return nil, err
	}
	sess := &session{conn: conn}
	cfg := agent.Session
	if conv.Instructions != "" {
		cfg.Instructions = conv.Instructions
	}
	cfg.TurnDetection = nil
	cfg.InputFormat, cfg.OutputFormat = realtime.PCM16, realtime.PCM16
	d := conn.Dialect()
	up, err := d.SessionUpdate(sess.eventID("session_"), cfg)
	if err == nil {
		err = conn.Send(up)
	}
	// The newest turns that fit the replay budget calls use for a
	// returning caller (memory.Budget): older ones are left out.
	for _, t := range memory.Budget(turns, replayMaxChars) {
		if t.Role != "user" && t.Role != "assistant" {
			continue
		}
		var ev []byte
		if ev, err = d.ItemCreate(sess.eventID("history_"), realtime.HistoryItem{Role: t.Role, Text: t.Text}); err == nil {
			err = conn.Send(ev)
		}
		if err != nil {
			break
		}
	}
	if err == nil {
		err = sess.waitConfigured(ctx)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return sess, nil
}

// waitConfigured reads until the server has taken the session.update.
func (sess *session) waitConfigured(ctx context.Context) error {
	t := time.NewTimer(sessionWait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return errors.New("no session.updated")
		case ev, ok := <-sess.conn.Events():
			if !ok {
				return fmt.Errorf("the session closed: %v", sess.conn.Err())
			}
			ev.Release()
			switch ev.Kind {
			case realtime.KindSessionUpdated:
				return nil
			case realtime.KindError:
				return ev.Err
			}
		}
	}
}

type result struct {
	text       string
	transcript string
	audioMS    int
}

// turn sends the user's turn, asks for an answer and relays it, running
// the tools the model calls, until the answer is complete.
func (sess *session) turn(ctx context.Context, agent Agent, in Input, emit func(Event)) (result, error) {
	var res result
	d, conn := sess.conn.Dialect(), sess.conn
	if in.Text != "" {
		sess.userItem = noAudioItem
		ev, err := d.UserText(sess.eventID("user_"), in.Text)
		if err == nil {
			err = conn.Send(ev)
		}
		if err != nil {
			return res, err
		}
	} else {
		sess.userItem = ""
		if err := sess.sendAudio(in.Audio); err != nil {
			return res, err
		}
	}
	var audioBytes int
	var text strings.Builder
	for round := 0; ; round++ {
		rc, err := d.ResponseCreate(sess.eventID("response_"), realtime.ResponseRequest{TextOnly: in.TextOnly})
		if err == nil {
			err = conn.Send(rc)
		}
		if err != nil {
			return res, err
		}
		calls, err := sess.relay(ctx, agent, emit, &text, &audioBytes, &res.transcript)
		if err != nil {
			return res, err
		}
		if len(calls) == 0 || round == maxToolRounds {
			break
		}
		for _, c := range calls {
			out, ev := sess.runTool(ctx, agent, c), []byte(nil)
			if ev, err = d.FunctionCallOutput(sess.eventID("tool_"), c.CallID, out); err == nil {
				err = conn.Send(ev)
			}
			if err != nil {
				return res, err
			}
		}
	}
	if len(in.Audio) > 0 && res.transcript == "" && agent.Session.Transcription != nil {
		// Transcription runs beside the answer and may finish after it.
		res.transcript = sess.awaitTranscript(ctx, emit)
	}
	res.text = strings.TrimSpace(text.String())
	res.audioMS = audioBytes / realtime.PCM16.BytesPerMS()
	return res, nil
}

// noAudioItem is userItem for a text turn: no transcript is its own.
const noAudioItem = "-"

// transcriptWait bounds the wait for a transcript that is late.
const transcriptWait = 3 * time.Second

// awaitTranscript waits a little for the turn's transcript once the
// answer is done; "" when it does not come (the turn is kept without).
func (sess *session) awaitTranscript(ctx context.Context, emit func(Event)) string {
	t := time.NewTimer(transcriptWait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ""
		case <-t.C:
			return ""
		case ev, ok := <-sess.conn.Events():
			if !ok {
				return ""
			}
			ev.Release()
			switch ev.Kind {
			case realtime.KindInputCommitted:
				sess.userItem = ev.ItemID
			case realtime.KindInputTranscript:
				if sess.userItem == "" || ev.ItemID == sess.userItem {
					emit(Event{Type: EventTranscript, Text: ev.Text})
					return ev.Text
				}
			case realtime.KindInputTranscriptFailed:
				return ""
			}
		}
	}
}

// sendAudio appends the turn's audio in one-second events and commits it.
func (sess *session) sendAudio(pcm []int16) error {
	const second = 24000
	raw := make([]byte, 2*min(len(pcm), second))
	for off := 0; off < len(pcm); off += second {
		piece := pcm[off:min(len(pcm), off+second)]
		b := raw[:2*len(piece)]
		for i, v := range piece {
			binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
		}
		buf := sess.conn.Buffer()
		sess.seq++
		*buf = realtime.AppendInputAudio((*buf)[:0], sess.seq, b)
		if err := sess.conn.SendBuffer(buf); err != nil {
			return err
		}
	}
	return sess.conn.Send(sess.conn.Dialect().InputAudioCommit(sess.eventID("commit_")))
}

// relay reads one response's events, emitting what the client sees, and
// returns the function calls it made.
func (sess *session) relay(ctx context.Context, agent Agent, emit func(Event), text *strings.Builder, audioBytes *int, transcript *string) ([]*realtime.Item, error) {
	var calls []*realtime.Item
	for {
		select {
		case <-ctx.Done():
			if ev, err := sess.conn.Dialect().ResponseCancel(sess.eventID("cancel_"), ""); err == nil {
				_ = sess.conn.Send(ev)
			}
			return nil, ctx.Err()
		case ev, ok := <-sess.conn.Events():
			if !ok {
				return nil, fmt.Errorf("the model session closed: %v", sess.conn.Err())
			}
			switch ev.Kind {
			case realtime.KindInputCommitted:
				sess.userItem = ev.ItemID
			case realtime.KindInputTranscript:
				if sess.userItem != "" && ev.ItemID != sess.userItem {
					break // an earlier turn's, late
				}
				*transcript = ev.Text
				emit(Event{Type: EventTranscript, Text: ev.Text})
			case realtime.KindTextDelta, realtime.KindTranscriptDelta:
				text.WriteString(ev.Text)
				emit(Event{Type: EventTextDelta, Text: ev.Text})
			case realtime.KindAudioDelta:
				*audioBytes += len(ev.Audio)
				emit(Event{Type: EventAudioDelta, Audio: ev.Audio})
			case realtime.KindOutputItemDone:
				if it := ev.Item; it != nil && it.Type == "function_call" {
					calls = append(calls, it)
					emit(Event{Type: EventToolCall, Name: it.Name, Arguments: it.Arguments})
				}
			case realtime.KindError:
				ev.Release()
				return nil, ev.Err
			case realtime.KindResponseDone:
				ev.Release()
				if r := ev.Response; r != nil && r.Status == "failed" {
					msg := "the response failed"
					if e := r.StatusDetails.Error; e != nil {
						msg = e.Error()
					}
					return nil, errors.New(msg)
				}
				return calls, nil
			}
			ev.Release()
		}
	}
}

// runTool runs a function call with the agent's tools and returns the
// output the model is given (a JSON error the model can speak about when
// the tool cannot run).
func (sess *session) runTool(ctx context.Context, agent Agent, call *realtime.Item) string {
	if agent.RunTool == nil {
		return `{"error":"no tools are available in this conversation"}`
	}
	out, err := agent.RunTool(ctx, call.Name, call.Arguments)
	if err != nil {
		return fmt.Sprintf(`{"error":%q}`, "the tool "+call.Name+" failed: "+err.Error())
	}
	return out
}

// takeIdle takes the conversation's idle session, if it is still open and
// has every turn (another instance may have continued the conversation:
// then it is closed and a fresh one gets the history).
func (s *Service) takeIdle(id string, updated time.Time, turns int) *session {
	s.mu.Lock()
	sess := s.idle[id]
	delete(s.idle, id)
	s.mu.Unlock()
	if sess == nil {
		return nil
	}
	close(sess.taken)
	if !sess.seen.Equal(updated) || sess.seenTurns != turns || sess.conn.Err() != nil {
		sess.close()
		return nil
	}
	return sess
}

// keepIdle keeps the session open for IdleSession for the next turn.
func (s *Service) keepIdle(id string, sess *session, updated time.Time, turns int) {
	if s.cfg.IdleSession < 0 {
		sess.close()
		return
	}
	// The waiter below keeps its own copy of taken: the next turn sets
	// the field again while this waiter may still be waking up.
	taken := make(chan struct{})
	sess.seen, sess.seenTurns, sess.taken = updated, min(turns, memory.MaxConversationTurns), taken
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sess.close()
		return
	}
	s.idle[id] = sess
	s.wg.Add(1)
	s.mu.Unlock()
	timer := s.cfg.Clock.NewTimer(s.cfg.IdleSession)
	go func() {
		defer s.wg.Done()
		defer timer.Stop()
		select {
		case <-taken:
			return
		case <-s.done:
		case <-timer.C():
		}
		s.mu.Lock()
		mine := s.idle[id] == sess
		if mine {
			delete(s.idle, id)
		}
		s.mu.Unlock()
		if mine {
			sess.close()
		}
	}()
}

// dropIdle closes a deleted conversation's idle session.
func (s *Service) dropIdle(id string) {
	s.mu.Lock()
	sess := s.idle[id]
	delete(s.idle, id)
	s.mu.Unlock()
	if sess != nil {
		close(sess.taken)
		sess.close()
	}
}
