package sip

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/rs/zerolog"
)

// Codec is an audio codec as SDP names it. In Config.Codecs it is one
// voicebot speaks (the media codec table's name, static payload type and
// clock rate); in Media, the one negotiated, with the payload type the
// peer gave it.
type Codec struct {
	Name        string // encoding name, upper case: PCMU, PCMA
	PayloadType uint8
	ClockRate   int
}

// rtpmap is the codec's encoding as an rtpmap line writes it.
func (c Codec) rtpmap() string { return c.Name + "/" + strconv.Itoa(c.ClockRate) }

// static reports whether the codec's payload type is an RFC 3551 static
// one, which a peer may offer without an rtpmap line.
func (c Codec) static() bool { return c.PayloadType < 96 }

// Media is the outcome of an offer/answer exchange.
type Media struct {
	// Remote is where the peer receives RTP (connection address and port).
	Remote netip.AddrPort
	Codec  Codec
	// DTMFPayloadType is the peer's telephone-event type at 8 kHz, 0 if none.
	DTMFPayloadType uint8
	// Direction is ours in the answer: sendrecv, sendonly, recvonly or inactive.
	Direction string
	// PtimeMS is the peer's requested packet time, 0 if unstated.
	PtimeMS int
	// SRTP is the stream's keying when it is RTP/SAVP, nil for plain RTP.
	SRTP *SDES
	// Quirk, when set, says how the peer's SDP strayed from the standard
	// and how it was read, for the log.
	Quirk string
}

// logQuirk says in the call's log how the peer's SDP was read leniently.
func logQuirk(log zerolog.Logger, m Media) {
	if m.Quirk != "" {
		log.Info().Str("quirk", m.Quirk).Msg("sip: the peer's SDP strays from the standard; read leniently")
	}
}

// misnamedRates are rtpmap strings peers write for a codec in place of the
// one RFC 3551 fixes, read as it. G.722 samples at 16 kHz but its RTP clock
// is 8000 (§4.5.2, a historic error kept for compatibility); many phones
// write the sampling rate instead.
var misnamedRates = map[string]string{"G722/16000": "G722/8000", "G722/16000/1": "G722/8000"}

// Sends reports whether our direction lets us send RTP. A call whose peer
// offered sendonly or inactive (or the old c=0.0.0.0) is on hold.
func (m Media) Sends() bool {
	return m.Direction == "sendrecv" || m.Direction == "sendonly" || m.Direction == ""
}

// OnHold reports whether the peer has put the call on hold.
func (m Media) OnHold() bool { return !m.Sends() }

// Offer/answer failures, each with the SIP answer it calls for.
var (
	ErrSDPMalformed = errors.New("malformed SDP")          // 400
	ErrSDPNoAudio   = errors.New("no usable audio stream") // 488
	ErrSDPNoCodec   = errors.New("no common codec")        // 488
)

// Negotiate reads an SDP offer (or answer) and picks, from prefs in order,
// the first codec the peer offered. telephone-event/8000 is taken when
// offered. srtp decides whether RTP/AVP and RTP/SAVP streams are taken.
func Negotiate(offer []byte, prefs []Codec, srtp SRTPPolicy) (Media, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(offer); err != nil {
		return Media{}, fmt.Errorf("%w: %v", ErrSDPMalformed, err)
	}
	var lastErr error = ErrSDPNoAudio
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" || md.MediaName.Port.Value == 0 {
			continue
		}
		m, err := negotiateAudio(&sd, md, prefs, srtp)
		if err == nil {
			return m, nil
		}
		lastErr = err
	}
	return Media{}, lastErr
}

func negotiateAudio(sd *sdp.SessionDescription, md *sdp.MediaDescription, prefs []Codec, policy SRTPPolicy) (Media, error) {
	var keys *SDES
	switch proto := strings.Join(md.MediaName.Protos, "/"); {
	case proto == "RTP/AVP" && policy == SRTPRequired:
		return Media{}, fmt.Errorf("%w: plain RTP offered and media.srtp is required", ErrSDPNoAudio)
	case proto == "RTP/SAVP" && policy == SRTPOff:
		return Media{}, fmt.Errorf("%w: SRTP offered and media.srtp is off", ErrSDPNoAudio)
	case proto == "RTP/SAVP":
		k, err := parseCrypto(md)
		if err != nil {
			return Media{}, err
		}
		keys = k
	case proto != "RTP/AVP":
		return Media{}, fmt.Errorf("%w: transport %s is not supported (RTP/AVP and RTP/SAVP with SDES only)", ErrSDPNoAudio, proto)
	}
	conn := md.ConnectionInformation
	if conn == nil {
		conn = sd.ConnectionInformation
	}
	if conn == nil || conn.Address == nil {
		return Media{}, fmt.Errorf("%w: no connection address", ErrSDPMalformed)
	}
	addr, err := netip.ParseAddr(conn.Address.Address)
	if err != nil {
		return Media{}, fmt.Errorf("%w: connection address %q is not an IP address", ErrSDPNoAudio, conn.Address.Address)
	}
	port := md.MediaName.Port.Value
	if port < 1 || port > 65535 {
		return Media{}, fmt.Errorf("%w: port %d", ErrSDPMalformed, port)
	}

	// Map every offered payload type to its encoding name.
	names := map[uint8]string{}
	offered := make([]uint8, 0, len(md.MediaName.Formats))
	for _, f := range md.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 7)
		if err != nil {
			continue
		}
		offered = append(offered, uint8(pt))
		for _, c := range prefs {
			if c.static() && uint8(pt) == c.PayloadType {
				names[uint8(pt)] = c.rtpmap()
			}
		}
	}
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		ptStr, enc, ok := strings.Cut(a.Value, " ")
		pt, err := strconv.ParseUint(ptStr, 10, 7)
		if !ok || err != nil {
			continue
		}
		names[uint8(pt)] = strings.ToUpper(strings.TrimSpace(enc))
	}
	m := Media{Remote: netip.AddrPortFrom(addr, uint16(port)), Direction: answerDirection(sd, md), SRTP: keys}
	misnamed := map[uint8]string{} // what the peer wrote, where it was read leniently
	for pt, enc := range names {
		if std, ok := misnamedRates[enc]; ok {
			names[pt], misnamed[pt] = std, enc
		}
	}
	if addr.IsUnspecified() {
		m.Direction = "inactive" // RFC 2543 hold: the peer wants nothing sent
	}
	if v, ok := md.Attribute("ptime"); ok {
		m.PtimeMS, _ = strconv.Atoi(strings.TrimSpace(v))
	}
	found := false
	for _, want := range prefs {
		for _, pt := range offered {
			if enc := names[pt]; enc == want.rtpmap() || enc == want.rtpmap()+"/1" {
				m.Codec = Codec{Name: want.Name, PayloadType: pt, ClockRate: want.ClockRate}
				found = true
				break
			}
		}
		if found {
			break
		}
	}
	if !found {
		accept := make([]string, len(prefs))
		for i, c := range prefs {
			accept[i] = c.rtpmap()
		}
		return Media{}, fmt.Errorf("%w: offered %v, we accept %v", ErrSDPNoCodec, describe(offered, names), accept)
	}
	// Events are timed on the audio codec's clock (RFC 4733 §2.1).
	for _, pt := range offered {
		if names[pt] == "TELEPHONE-EVENT/"+strconv.Itoa(m.Codec.ClockRate) {
			m.DTMFPayloadType = pt
			break
		}
	}
	if enc, ok := misnamed[m.Codec.PayloadType]; ok {
		m.Quirk = fmt.Sprintf("payload type %d offered as %s: read as %s, the rate RFC 3551 gives its RTP clock", m.Codec.PayloadType, enc, m.Codec.rtpmap())
		if m.DTMFPayloadType == 0 {
			// Such a peer often times its events at the rate it wrote.
			m.Quirk += "; no telephone-event/" + strconv.Itoa(m.Codec.ClockRate) + " offered (keys by RTP are not taken; SIP INFO still is)"
		}
	}
	return m, nil
}

func describe(pts []uint8, names map[uint8]string) []string {
	out := make([]string, 0, len(pts))
	for _, pt := range pts {
		if n := names[pt]; n != "" {
			out = append(out, n)
		} else {
			out = append(out, strconv.Itoa(int(pt)))
		}
	}
	return out
}

// answerDirection mirrors the offer's direction (RFC 3264 §6.1).
func answerDirection(sd *sdp.SessionDescription, md *sdp.MediaDescription) string {
	dir := "sendrecv"
	for _, attrs := range [][]sdp.Attribute{sd.Attributes, md.Attributes} {
		for _, a := range attrs {
			switch a.Key {
			case "sendrecv", "sendonly", "recvonly", "inactive":
				dir = a.Key
			}
		}
	}
	switch dir {
	case "sendonly":
		return "recvonly"
	case "recvonly":
		return "sendonly"
	}
	return dir
}

// Answer builds our SDP answer: one audio stream at local (advertised as
// host, which may be an external address), the chosen codec, and
// telephone-event when the peer offered it.
func Answer(m Media, host string, localPort int, sessionID uint64, version uint64) ([]byte, error) {
	var s sdpStream
	s.codec(m.Codec.PayloadType, m.Codec)
	if m.DTMFPayloadType != 0 {
		s.telephoneEvent(m.DTMFPayloadType, m.Codec.ClockRate)
	}
	if k := m.SRTP; k != nil {
		if len(k.Local) != sdesKeyLen {
			return nil, fmt.Errorf("sdp answer: no local SRTP key")
		}
		s.secure = true
		s.attrs = append(s.attrs, cryptoAttribute(k.Tag, k.Suite, k.Local))
	}
	return s.marshal(host, localPort, sessionID, version, m.Direction)
}

// Offer builds our SDP offer (an outbound call): one audio stream at
// host:localPort with codecs in order of preference and telephone-event on
// payload type 101, at the clock rate of the first codec.
//
// With srtpKey, the stream is RTP/SAVP offering that key for both suites.
func Offer(host string, localPort int, codecs []Codec, sessionID, version uint64, direction string, srtpKey []byte) ([]byte, error) {
	var s sdpStream
	for _, c := range codecs {
		if !c.static() {
			return nil, fmt.Errorf("sdp offer: codec %s has no static payload type", c.Name)
		}
		s.codec(c.PayloadType, c)
	}
	if len(codecs) == 0 {
		return nil, fmt.Errorf("sdp offer: no codecs")
	}
	s.telephoneEvent(OfferedDTMFPayloadType, codecs[0].ClockRate)
	if srtpKey != nil {
		s.secure = true
		s.attrs = append(s.attrs, cryptoAttribute(1, SuiteAES128SHA1_80, srtpKey), cryptoAttribute(2, SuiteAES128SHA1_32, srtpKey))
	}
	return s.marshal(host, localPort, sessionID, version, direction)
}

// OfferedDTMFPayloadType is the telephone-event payload type in our offers.
const OfferedDTMFPayloadType = 101

// sdpStream collects the formats of our one audio stream.
type sdpStream struct {
	formats []string
	attrs   []sdp.Attribute
	secure  bool // RTP/SAVP
}

func (s *sdpStream) codec(pt uint8, c Codec) {
	s.formats = append(s.formats, strconv.Itoa(int(pt)))
	s.attrs = append(s.attrs, sdp.NewAttribute("rtpmap", fmt.Sprintf("%d %s", pt, c.rtpmap())))
}

func (s *sdpStream) telephoneEvent(pt uint8, clockRate int) {
	s.formats = append(s.formats, strconv.Itoa(int(pt)))
	s.attrs = append(s.attrs,
		sdp.NewAttribute("rtpmap", fmt.Sprintf("%d telephone-event/%d", pt, clockRate)),
		sdp.NewAttribute("fmtp", fmt.Sprintf("%d 0-16", pt)))
}

// marshal writes the session: our origin, the connection at host, the
// stream at localPort with 20 ms packets and direction.
func (s *sdpStream) marshal(host string, localPort int, sessionID, version uint64, direction string) ([]byte, error) {
	addrType := "IP4"
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() && !a.Is4In6() {
		addrType = "IP6"
	}
	if direction == "" {
		direction = "sendrecv"
	}
	attrs := append(s.attrs, sdp.NewAttribute("ptime", "20"), sdp.NewPropertyAttribute(direction))
	protos := []string{"RTP", "AVP"}
	if s.secure {
		protos = []string{"RTP", "SAVP"}
	}
	sd := sdp.SessionDescription{
		Origin: sdp.Origin{Username: "voicebot", SessionID: sessionID, SessionVersion: version,
			NetworkType: "IN", AddressType: addrType, UnicastAddress: host},
		SessionName:           "voicebot",
		ConnectionInformation: &sdp.ConnectionInformation{NetworkType: "IN", AddressType: addrType, Address: &sdp.Address{Address: host}},
		TimeDescriptions:      []sdp.TimeDescription{{Timing: sdp.Timing{}}},
		MediaDescriptions: []*sdp.MediaDescription{{
			MediaName:  sdp.MediaName{Media: "audio", Port: sdp.RangedPort{Value: localPort}, Protos: protos, Formats: s.formats},
			Attributes: attrs,
		}},
	}
	return sd.Marshal()
}
