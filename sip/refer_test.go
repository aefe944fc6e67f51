package sip

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/voicebot/voicebot/internal/testpeer"
)

// transferring is a bot that answers, then transfers the call to each
// target it is given and reports how each went.
func transferring(targets <-chan string, results chan<- error) behaviour {
	return func(ctx context.Context, c *Call, rec *callRecord) {
		err := c.Answer(ctx, fakeRTPPort)
		rec.answered <- err
		if err != nil {
			return
		}
		for {
			select {
			case target := <-targets:
				results <- c.Transfer(ctx, target)
			case <-ctx.Done():
				return
			}
		}
	}
}

func transferResult(t *testing.T, results <-chan error) error {
	t.Helper()
	select {
	case err := <-results:
		return err
	case <-time.After(wait):
		t.Fatal("Transfer did not return")
		return nil
	}
}

// answerRefer makes c answer REFERs with code (other requests with 200).
func answerRefer(c *testpeer.Caller, code int) {
	c.SetAnswer(func(req *sip.Request) (int, []string, string) {
		if req.Method == sip.REFER {
			return code, nil, ""
		}
		return 200, nil, ""
	})
}

// notify reports the target's progress to the UA as a transferee does.
func notify(t *testing.T, c *testpeer.Caller, frag string) {
	t.Helper()
	res := send(t, c, "NOTIFY", "message/sipfrag;version=2.0", frag, "Event: refer", "Subscription-State: active;expires=60")
	if res.StatusCode != 200 {
		t.Errorf("NOTIFY: %d", res.StatusCode)
	}
}

// A blind transfer: REFER with Refer-To and Referred-By; the caller
// accepts it and reports the target's progress, and Transfer returns once
// the target answered.
func TestTransferSucceeds(t *testing.T) {
	targets, results := make(chan string, 1), make(chan error, 1)
	r := newRig(t, Config{}, transferring(targets, results))
	c := r.caller()
	answerRefer(c, 202)
	_, rec := r.established(c)
	targets <- "sip:operator@127.0.0.1:5999"
	refer := requestFrom(t, c.RequestsOf, "REFER", 1)
	if got := header(refer, "Refer-To"); got != "<sip:operator@127.0.0.1:5999>" {
		t.Errorf("Refer-To %q", got)
	}
	if got := header(refer, "Referred-By"); got != "<sip:bot@"+r.ua.Addr().String()+">" {
		t.Errorf("Referred-By %q", got)
	}
	if refer.Contact() == nil || refer.CallID().Value() != c.CallID {
		t.Errorf("REFER:\n%s", refer)
	}
	notify(t, c, "SIP/2.0 100 Trying\r\n")
	notify(t, c, "SIP/2.0 200 OK\r\n")
	if err := transferResult(t, results); err != nil {
		t.Errorf("Transfer: %v", err)
	}
	if rec.call.EndReason() != "" {
		t.Errorf("the call ended on its own: %q", rec.call.EndReason())
	}
}

// Transfers that do not happen: the REFER refused, the target failing, a
// bad target; and a caller that hangs up after accepting the REFER has
// transferred the call.
func TestTransferFailures(t *testing.T) {
	targets, results := make(chan string, 1), make(chan error, 1)
	r := newRig(t, Config{}, transferring(targets, results))
	c := r.caller()
	_, rec := r.established(c)

	answerRefer(c, 603)
	targets <- "sip:operator@127.0.0.1:5999"
	var te *TransferError
	if err := transferResult(t, results); !errors.As(err, &te) || !te.Refused || te.Code != 603 || te.Error() == "" {
		t.Errorf("a refused REFER: %v", err)
	}

	answerRefer(c, 202)
	targets <- "sip:operator@127.0.0.1:5999"
	requestFrom(t, c.RequestsOf, "REFER", 2)
	notify(t, c, "SIP/2.0 486 Busy Here\r\n")
	if err := transferResult(t, results); !errors.As(err, &te) || te.Refused || te.Code != 486 || te.Reason != "Busy Here" {
		t.Errorf("a target that is busy: %v", err)
	}

	targets <- "not a uri"
	if err := transferResult(t, results); err == nil || errors.As(err, &te) {
		t.Errorf("a bad target: %v", err)
	}
	if n := len(c.RequestsOf("REFER")); n != 2 {
		t.Errorf("%d REFERs, want 2 (none for the bad target)", n)
	}

	targets <- "sip:operator@127.0.0.1:5999"
	requestFrom(t, c.RequestsOf, "REFER", 3)
	if code, err := c.Bye(wait); err != nil || code != 200 {
		t.Fatalf("BYE: %d %v", code, err)
	}
	if err := transferResult(t, results); err != nil {
		t.Errorf("the caller hung up after accepting: %v, want success", err)
	}
	if why := rec.ended(t); why != EndRemoteBye {
		t.Errorf("ended %q", why)
	}
	if err := rec.call.Transfer(context.Background(), "sip:x@127.0.0.1"); err != ErrCallEnded {
		t.Errorf("Transfer of an ended call: %v", err)
	}
}

// One transfer at a time.
func TestTransferOneAtATime(t *testing.T) {
	r := newRig(t, Config{}, nil)
	c := r.caller()
	answerRefer(c, 202)
	_, rec := r.established(c)
	results := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func(i int) {
			results <- rec.call.Transfer(context.Background(), "sip:op"+strconv.Itoa(i)+"@127.0.0.1:5999")
		}(i)
	}
	// One of them is refused at once; the other waits for the NOTIFY.
	if err := transferResult(t, results); err == nil || errors.As(err, new(*TransferError)) {
		t.Errorf("a second transfer at once: %v", err)
	}
	requestFrom(t, c.RequestsOf, "REFER", 1)
	notify(t, c, "SIP/2.0 200 OK\r\n")
	if err := transferResult(t, results); err != nil {
		t.Errorf("the first transfer: %v", err)
	}
}
