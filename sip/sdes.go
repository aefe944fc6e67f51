package sip

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// SRTPPolicy is when media is encrypted (media.srtp).
type SRTPPolicy int

const (
	// SRTPOptional encrypts when the peer offers RTP/SAVP, and offers
	// plain RTP itself (what most peers take).
	SRTPOptional SRTPPolicy = iota
	// SRTPOff refuses RTP/SAVP.
	SRTPOff
	// SRTPRequired refuses plain RTP and offers RTP/SAVP.
	SRTPRequired
)

// SDES is the SRTP keying of a stream negotiated with a=crypto (RFC 4568):
// the crypto suite, the tag of the peer's line we took, and the master key
// and salt (30 bytes: 16 + 14) each way.
type SDES struct {
	Tag    int
	Suite  string
	Remote []byte // the peer's key: it encrypts what we receive
	Local  []byte // ours: we encrypt what we send
}

// SDES crypto suites voicebot speaks: AES-128 counter mode with HMAC-SHA1
// tags of 80 or 32 bits, the two every SDES phone offers.
const (
	SuiteAES128SHA1_80 = "AES_CM_128_HMAC_SHA1_80"
	SuiteAES128SHA1_32 = "AES_CM_128_HMAC_SHA1_32"
	sdesKeyLen         = 30
)

// NewSRTPKey returns a fresh master key and salt.
func NewSRTPKey() []byte {
	k := make([]byte, sdesKeyLen)
	_, _ = rand.Read(k)
	return k
}

// parseCrypto picks the first a=crypto line of md whose suite we speak and
// whose key is usable. Lines with several keys, an MKI or session
// parameters are skipped: they are rare and we do not implement them.
func parseCrypto(md *sdp.MediaDescription) (*SDES, error) {
	var reasons []string
	for _, a := range md.Attributes {
		if a.Key != "crypto" {
			continue
		}
		f := strings.Fields(a.Value)
		if len(f) != 3 {
			reasons = append(reasons, "crypto with session parameters")
			continue
		}
		tag, err := strconv.Atoi(f[0])
		if err != nil || tag < 0 || tag > 999999999 {
			reasons = append(reasons, "bad crypto tag")
			continue
		}
		suite := strings.ToUpper(f[1])
		if suite != SuiteAES128SHA1_80 && suite != SuiteAES128SHA1_32 {
			reasons = append(reasons, "suite "+f[1])
			continue
		}
		params, ok := strings.CutPrefix(f[2], "inline:")
		if !ok || strings.Contains(params, ";") {
			reasons = append(reasons, "key method is not one inline key")
			continue
		}
		keyB64, rest, _ := strings.Cut(params, "|")
		if strings.Contains(rest, ":") {
			reasons = append(reasons, "MKI")
			continue
		}
		key, err := base64.StdEncoding.DecodeString(keyB64)
		if err != nil {
			key, err = base64.RawStdEncoding.DecodeString(keyB64)
		}
		if err != nil || len(key) != sdesKeyLen {
			reasons = append(reasons, "key is not 30 bytes of base64")
			continue
		}
		return &SDES{Tag: tag, Suite: suite, Remote: key}, nil
	}
	if len(reasons) == 0 {
		return nil, fmt.Errorf("%w: RTP/SAVP without a=crypto (DTLS-SRTP is not supported)", ErrSDPNoAudio)
	}
	return nil, fmt.Errorf("%w: no usable a=crypto (%s)", ErrSDPNoAudio, strings.Join(reasons, ", "))
}

// cryptoAttribute is our a=crypto line.
func cryptoAttribute(tag int, suite string, key []byte) sdp.Attribute {
	return sdp.NewAttribute("crypto", fmt.Sprintf("%d %s inline:%s", tag, suite, base64.StdEncoding.EncodeToString(key)))
}
