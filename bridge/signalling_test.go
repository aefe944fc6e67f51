package bridge

import (
	"net/netip"
	"testing"

	"github.com/voicebot/voicebot/media"
)

// Keys arrive from goroutines that must never wait on the call (the RTP
// reader, SIP transactions): a flood beyond the queue's room is dropped.
func TestKeyFloodNeverStallsTheSender(t *testing.T) {
	h := newHarness(t, nil)
	for i := 0; i < 100; i++ {
		h.c.rtpKey('1', 0)
		h.c.KeyPressed('2')
	}
	if len(h.c.rtpKeys) != cap(h.c.rtpKeys) || len(h.c.infoKeys) != cap(h.c.infoKeys) {
		t.Errorf("queued %d RTP and %d INFO keys, want each queue full", len(h.c.rtpKeys), len(h.c.infoKeys))
	}
	if d := h.c.keys.infoDropped.Load(); d != int64(100-cap(h.c.infoKeys)) {
		t.Errorf("%d INFO keys counted as dropped, want %d", d, 100-cap(h.c.infoKeys))
	}
}

// Where RTP goes: a peer whose SDP names another address than its
// signalling comes from is behind NAT; in auto mode it is answered where
// its RTP comes from, and RTP from its signalling address is accepted.
func TestSymmetricRTPModes(t *testing.T) {
	sig := netip.MustParseAddr("203.0.113.7")
	natted := CallMedia{Remote: netip.MustParseAddrPort("192.168.1.20:4000"), Codec: media.PCMA, Signalling: sig}
	direct := CallMedia{Remote: netip.MustParseAddrPort("203.0.113.7:4000"), Codec: media.PCMA, Signalling: sig}
	for _, c := range []struct {
		name      string
		mode      SymmetricRTP
		m         CallMedia
		symmetric bool
		sources   int
	}{
		{"auto, behind NAT", SymmetricAuto, natted, true, 1},
		{"auto, direct", SymmetricAuto, direct, false, 0},
		{"on, direct", SymmetricOn, direct, true, 0},
		{"on, behind NAT", SymmetricOn, natted, true, 1},
		{"off, behind NAT", SymmetricOff, natted, false, 0},
	} {
		p := New(Config{SymmetricRTP: c.mode}).peer(c.m)
		if p.Symmetric != c.symmetric || len(p.Sources) != c.sources || (c.sources == 1 && p.Sources[0] != sig) {
			t.Errorf("%s: symmetric %v, sources %v", c.name, p.Symmetric, p.Sources)
		}
		if p.Remote != c.m.Remote || p.Codec != media.PCMA {
			t.Errorf("%s: peer %v %s", c.name, p.Remote, p.Codec.Name)
		}
	}
	// Media without a codec: the session takes the zero Codec as PCMU.
	p := New(Config{}).peer(CallMedia{Remote: direct.Remote})
	if s := media.NewSession(nil, media.Config{Peer: p}); s.CurrentPeer().Codec != media.PCMU {
		t.Errorf("media without a codec is sent as %q, want PCMU", s.CurrentPeer().Codec.Name)
	}
}
