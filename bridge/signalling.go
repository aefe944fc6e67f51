package bridge

import (
	"sync"
	"sync/atomic"

	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/record"
)

// signalling is the call's side of its SIP events (the Observer). Its
// methods run on SIP goroutines: they touch only the media session (which is
// safe for that) and channels to the bridge loop.
type signalling struct {
	connected atomic.Bool // the call is answered
	peerHold  atomic.Bool // the last negotiation put the call on hold
	mu        sync.Mutex  // orders media changes from concurrent SIP transactions
}

// KeyPressed takes a key sent as SIP INFO. A flood beyond the channel's room
// is dropped rather than stalling the SIP stack.
func (c *callState) KeyPressed(key rune) {
	select {
	case c.infoKeys <- key:
	default:
		c.keys.infoDropped.Add(1)
	}
}

// MediaChanged applies renegotiated media: a new address or codec goes to
// the media session (which locks on and latches anew), hold and resume stop
// and restart media both ways. Until the call is answered media stays held:
// early media is ringback, not a caller.
func (c *callState) MediaChanged(m CallMedia, early bool) {
	s := &c.sig
	s.mu.Lock()
	defer s.mu.Unlock()
	p := c.b.peer(m)
	if was := c.media.CurrentPeer(); !samePeer(was, p) {
		c.media.SetPeer(p)
		if p.Codec != was.Codec && p.Codec.Valid() {
			c.rec.Emit("codec", record.Event{"codec": p.Codec.Name, "rate": p.Codec.SampleRate, "was": was.Codec.Name})
		}
	}
	if early {
		return
	}
	wasHeld := s.peerHold.Swap(m.OnHold)
	if !s.connected.Load() {
		return
	}
	c.media.Hold(m.OnHold)
	switch {
	case m.OnHold && !wasHeld:
		c.log.Info().Msg("call: on hold: playout and the model's input paused")
		c.rec.Emit("hold", nil)
	case !m.OnHold && wasHeld:
		c.log.Info().Msg("call: off hold: playout and the model's input resumed")
		c.rec.Emit("resume", nil)
	}
}

func samePeer(a, b media.Peer) bool {
	if a.Remote != b.Remote || a.Codec != b.Codec || a.DTMFPayloadType != b.DTMFPayloadType || !a.SRTP.Equal(b.SRTP) ||
		a.Symmetric != b.Symmetric || len(a.Sources) != len(b.Sources) {
		return false
	}
	for i := range a.Sources {
		if a.Sources[i] != b.Sources[i] {
			return false
		}
	}
	return true
}
