package sip

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Blind transfer (RFC 3515): we send REFER with the target in Refer-To; the
// peer answers 202 and calls the target itself, reporting how that goes in
// NOTIFYs whose message/sipfrag body is the target's status line.

// TransferError is a transfer that did not happen: the REFER was refused,
// or the peer reported that calling the target failed.
type TransferError struct {
	Code   int // the REFER's answer, or the target's final status from NOTIFY; 408 for no answer in time
	Reason string
	// Refused is true when the peer refused the REFER itself.
	Refused bool
}

func (e *TransferError) Error() string {
	if e.Refused {
		return fmt.Sprintf("transfer refused: %d %s", e.Code, e.Reason)
	}
	return fmt.Sprintf("transfer failed: the target answered %d %s", e.Code, e.Reason)
}

// transferTimeout bounds how long a transfer may take to report an outcome.
const transferTimeout = 30 * time.Second

// Transfer asks the peer to call target (a sip: URI) and waits until the
// peer reports success (the target answered: nil), failure (*TransferError)
// or nothing within 30 s. A peer that hangs up after accepting the REFER is
// taken to have transferred the call.
func (c *Call) Transfer(ctx context.Context, target string) error {
	var to sip.Uri
	if err := sip.ParseUri(target, &to); err != nil || to.Host == "" {
		return fmt.Errorf("transfer: bad target %q", target)
	}
	d := c.dialog()
	if d == nil || c.ctx.Err() != nil {
		return ErrCallEnded
	}
	progress := make(chan sipfrag, 8)
	c.mu.Lock()
	if c.refer != nil {
		c.mu.Unlock()
		return errors.New("transfer: one is already in progress")
	}
	c.refer = progress
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.refer = nil
		c.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()

	req := d.request(sip.REFER, c.ua.cfg.UserAgent, c.ua.contact(d.transport, d.dest))
	req.AppendHeader(sip.NewHeader("Refer-To", "<"+to.String()+">"))
	local := d.local
	req.AppendHeader(sip.NewHeader("Referred-By", "<"+local.Addr()+">"))
	c.log.Info().Str("target", to.String()).Msg("sip: transferring the call (REFER)")
	res, err := c.ua.do(ctx, req)
	if err != nil {
		if c.ctx.Err() != nil {
			return ErrCallEnded
		}
		return &TransferError{Code: 408, Reason: "no answer to REFER", Refused: true}
	}
	if res.StatusCode >= 300 {
		return &TransferError{Code: res.StatusCode, Reason: res.Reason, Refused: true}
	}
	for {
		select {
		case code := <-progress:
			switch {
			case code.code < 200:
				continue
			case code.code < 300:
				c.log.Info().Int("code", code.code).Msg("sip: transfer succeeded")
				return nil
			default:
				return &TransferError{Code: code.code, Reason: code.reason}
			}
		case <-c.ctx.Done():
			if c.EndReason() == EndRemoteBye {
				c.log.Info().Msg("sip: the peer hung up after accepting the transfer")
				return nil
			}
			return ErrCallEnded
		case <-ctx.Done():
			return &TransferError{Code: 408, Reason: "no outcome reported in time"}
		}
	}
}

// onNotify takes NOTIFYs of the refer event package: progress of our
// transfer.
func (u *UA) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	c := u.inDialog(req, tx)
	if c == nil {
		return
	}
	event := strings.ToLower(strings.TrimSpace(strings.Split(headerValue(req, "Event", "o"), ";")[0]))
	if event != "refer" {
		u.respond(tx, req, 489, "Bad Event", nil, sip.NewHeader("Allow-Events", "refer"))
		return
	}
	frag, ok := parseSipfrag(req.Body())
	u.respond(tx, req, 200, "OK", nil)
	if !ok {
		c.log.Debug().Msg("sip: NOTIFY without a status line")
		return
	}
	c.mu.Lock()
	ch := c.refer
	c.mu.Unlock()
	if ch != nil {
		select {
		case ch <- frag:
		default:
		}
	}
}

// sipfrag is the status line a NOTIFY of the refer package reports.
type sipfrag struct {
	code   int
	reason string
}

// parseSipfrag reads the status line of a message/sipfrag body
// ("SIP/2.0 486 Busy Here").
func parseSipfrag(body []byte) (sipfrag, bool) {
	line, _, _ := strings.Cut(string(body), "\n")
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(strings.ToUpper(f[0]), "SIP/") {
		return sipfrag{}, false
	}
	code, err := strconv.Atoi(f[1])
	if err != nil || code < 100 || code > 699 {
		return sipfrag{}, false
	}
	return sipfrag{code: code, reason: sanitize(strings.Join(f[2:], " "))}, true
}
