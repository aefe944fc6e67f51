package media

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// SRTP is the keying of an encrypted call (SDES, RFC 4568): the suite and
// one master key and salt (30 bytes) each way.
type SRTP struct {
	Suite  string // AES_CM_128_HMAC_SHA1_80 or AES_CM_128_HMAC_SHA1_32
	Local  []byte // ours: what we send is encrypted with it
	Remote []byte // the peer's: what we receive was encrypted with it
}

// Equal reports whether two keyings are the same (both nil included).
func (k *SRTP) Equal(o *SRTP) bool {
	if k == nil || o == nil {
		return k == o
	}
	return k.Suite == o.Suite && bytes.Equal(k.Local, o.Local) && bytes.Equal(k.Remote, o.Remote)
}

// srtpState holds a peer generation's contexts. enc is used only by the
// pacer (under pmu), dec only by the media worker; each keeps its own
// header scratch so neither allocates per packet.
type srtpState struct {
	keys   *SRTP
	enc    *srtp.Context
	dec    *srtp.Context
	encHdr rtp.Header
	decHdr rtp.Header
	err    error // the keys could not make contexts: nothing is sent or taken
}

var errSRTPUnusable = errors.New("srtp: no usable keys")

func newSRTPState(k *SRTP) *srtpState {
	st := &srtpState{keys: k}
	profile, ok := map[string]srtp.ProtectionProfile{
		"AES_CM_128_HMAC_SHA1_80": srtp.ProtectionProfileAes128CmHmacSha1_80,
		"AES_CM_128_HMAC_SHA1_32": srtp.ProtectionProfileAes128CmHmacSha1_32,
	}[k.Suite]
	if !ok || len(k.Local) != 30 || len(k.Remote) != 30 {
		st.err = fmt.Errorf("%w: suite %q with %d/%d-byte keys", errSRTPUnusable, k.Suite, len(k.Local), len(k.Remote))
		return st
	}
	var err error
	if st.enc, err = srtp.CreateContext(k.Local[:16], k.Local[16:], profile); err == nil {
		// The default replay window (64) is narrower than jitter buffers
		// on the far side reorder; 256 keeps reordered packets.
		st.dec, err = srtp.CreateContext(k.Remote[:16], k.Remote[16:], profile, srtp.SRTPReplayProtection(256))
	}
	if err != nil {
		st.enc, st.dec, st.err = nil, nil, fmt.Errorf("srtp: %w", err)
	}
	return st
}

// cryptoFor is the SRTP state of a new peer generation: the old one's when
// the keys are the same (its rollover counter must run on), else new.
func cryptoFor(p Peer, old *peerState) *srtpState {
	if p.SRTP == nil {
		return nil
	}
	if old != nil && old.crypto != nil && old.crypto.keys.Equal(p.SRTP) {
		return old.crypto
	}
	return newSRTPState(p.SRTP)
}

// protect encrypts an outgoing packet when the call is SRTP. The pacer
// calls it, holding pmu.
func (s *Session) protect(pkt []byte) error {
	c := s.peer.Load().crypto
	if c == nil {
		return s.out(pkt)
	}
	if c.err != nil {
		return c.err
	}
	b, err := c.enc.EncryptRTP(s.srtpOut[:0], pkt, &c.encHdr)
	if err != nil {
		return fmt.Errorf("srtp encrypt: %w", err)
	}
	s.srtpOut = b
	return s.out(b)
}

// unprotect decrypts and authenticates a received packet when the call is
// SRTP; false drops it (forged, replayed, or not SRTP at all).
func (s *Session) unprotect(p *peerState, data []byte) ([]byte, bool) {
	c := p.crypto
	if c == nil {
		return data, true
	}
	if c.err != nil {
		return nil, false
	}
	plain, err := c.dec.DecryptRTP(s.srtpIn[:0], data, &c.decHdr)
	if err != nil {
		return nil, false
	}
	s.srtpIn = plain
	return plain, true
}
