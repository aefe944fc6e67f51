package realtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
)

// MaxEventBytes bounds one server event. Audio deltas and session objects with
// long instructions are far larger than WebSocket libraries' defaults expect;
// a bound still stops a broken server from exhausting memory.
const MaxEventBytes = 16 << 20

// ErrClosed is returned by Send after the connection has closed.
var ErrClosed = errors.New("realtime: connection closed")

// Conn is one model session over WebSocket. One goroutine reads and decodes
// server events into Events(); one goroutine writes queued client events.
// Close stops both and waits for them.
type Conn struct {
	ws      *websocket.Conn
	dialect Dialect
	log     zerolog.Logger
	events  chan ServerEvent
	out     chan *[]byte
	free    chan *[]byte
	done    chan struct{}
	wg      sync.WaitGroup

	closeOnce sync.Once
	errMu     sync.Mutex
	err       error
}

// DialConfig configures Dial.
type DialConfig struct {
	Endpoint Endpoint
	Dialect  Dialect
	Logger   zerolog.Logger
	// EventBuffer is how many decoded events may wait for the consumer.
	EventBuffer int
}

// HandshakeError is a refused WebSocket upgrade, with what the server said.
type HandshakeError struct {
	Status int
	Body   string
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("realtime: handshake refused: HTTP %d: %s", e.Status, e.Body)
}

// writeBuffers is the WebSocket write buffers' pool, shared by every
// connection (gorilla wants one pool per WriteBufferSize).
var writeBuffers = &sync.Pool{}

// Dial opens the WebSocket and starts the reader and writer. ctx bounds the
// handshake only.
func Dial(ctx context.Context, cfg DialConfig) (*Conn, error) {
	d := websocket.Dialer{
		HandshakeTimeout: 30 * time.Second,
		ReadBufferSize:   8 << 10, // a 100 ms delta fits; larger events are read past it; each call holds one
		WriteBufferSize:  8 << 10, // a 100 ms append fits in one frame
		// A call writes for microseconds every append interval: one pool of
		// write buffers serves every call, instead of one buffer held by each.
		WriteBufferPool: writeBuffers,
		Proxy:           http.ProxyFromEnvironment,
		NetDialContext:  dialTCP,
	}
	ws, resp, err := d.DialContext(ctx, cfg.Endpoint.URL, cfg.Endpoint.Header)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			return nil, fmt.Errorf("realtime dial %s: %w", redactURL(cfg.Endpoint.URL), &HandshakeError{Status: resp.StatusCode, Body: strings.TrimSpace(string(body))})
		}
		return nil, fmt.Errorf("realtime dial %s: %w", redactURL(cfg.Endpoint.URL), err)
	}
	ws.SetReadLimit(MaxEventBytes)
	if cfg.EventBuffer <= 0 {
		cfg.EventBuffer = 16 // a burst beyond waits in the socket: the reader blocks, nothing is lost
	}
	c := &Conn{
		ws:      ws,
		dialect: cfg.Dialect,
		log:     cfg.Logger,
		events:  make(chan ServerEvent, cfg.EventBuffer),
		out:     make(chan *[]byte, 256), // room for a history replay at once
		free:    make(chan *[]byte, 64),
		done:    make(chan struct{}),
	}
	c.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
	return c, nil
}

// redactURL drops the query, which may carry an api-key.
func redactURL(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}

// Dialect is the dialect this connection speaks.
func (c *Conn) Dialect() Dialect { return c.dialect }

// Events delivers decoded server events in arrival order. It is closed when
// the connection ends; Err then says why.
func (c *Conn) Events() <-chan ServerEvent { return c.events }

// Err is the reason the connection ended, or nil while it is open.
func (c *Conn) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

func (c *Conn) setErr(err error) {
	c.errMu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.errMu.Unlock()
}

// Buffer returns a buffer for building an outgoing event; give it to
// SendBuffer, which takes ownership.
func (c *Conn) Buffer() *[]byte {
	select {
	case b := <-c.free:
		*b = (*b)[:0]
		return b
	default:
		// Most events are small; a caller that needs more (an audio
		// append) grows it once, and the buffer is reused after.
		b := make([]byte, 0, 2<<10)
		return &b
	}
}

// SendBuffer queues an event built in a buffer from Buffer. The connection
// owns the buffer from here on. It does not block: when the writer is this
// far behind, the model connection is unusable anyway and the event is refused.
func (c *Conn) SendBuffer(b *[]byte) error {
	select {
	case <-c.done:
		return ErrClosed
	default:
	}
	select {
	case c.out <- b:
		return nil
	case <-c.done:
		return ErrClosed
	default:
		return fmt.Errorf("realtime: send queue full")
	}
}

// Send queues an encoded event (it is copied).
func (c *Conn) Send(event []byte) error {
	b := c.Buffer()
	*b = append(*b, event...)
	return c.SendBuffer(b)
}

// Close ends the connection and waits for its goroutines. Safe to call more than once.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.setErr(ErrClosed)
		close(c.done)
		// A close frame is polite; the server may already be gone.
		_ = c.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.ws.Close()
	})
	c.wg.Wait()
	return nil
}

func (c *Conn) writeLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case b := <-c.out:
			err := c.ws.WriteMessage(websocket.TextMessage, *b)
			select {
			case c.free <- b:
			default:
			}
			if err != nil {
				c.setErr(fmt.Errorf("realtime write: %w", err))
				c.ws.Close() // ends the reader too
				return
			}
		}
	}
}

func (c *Conn) readLoop() {
	defer c.wg.Done()
	defer close(c.events)
	dec := NewDecoder(64)
	var frame []byte
	for {
		typ, r, err := c.ws.NextReader()
		if err != nil {
			select {
			case <-c.done:
			default:
				c.setErr(fmt.Errorf("realtime read: %w", err))
			}
			return
		}
		if typ != websocket.TextMessage {
			c.log.Debug().Int("frame_type", typ).Msg("realtime: ignoring non-text frame")
			continue
		}
		frame, err = readAll(r, frame[:0])
		if err != nil {
			c.setErr(fmt.Errorf("realtime read: %w", err))
			return
		}
		ev, err := dec.Decode(frame)
		if err != nil {
			// A bad event is the server's problem, not the call's: log and go on.
			c.log.Warn().Err(err).Int("bytes", len(frame)).Msg("realtime: dropping undecodable event")
			continue
		}
		if ev.Kind == KindUnknown {
			c.log.Debug().Str("type", ev.Type).Msg("realtime: ignoring unknown event")
			continue
		}
		select {
		case c.events <- ev:
		case <-c.done:
			ev.Release()
			return
		}
	}
}

// readAll reads r to the end into buf, reusing its capacity.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
