package sip

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

var testKey = bytes.Repeat([]byte{7}, 30)
var testKeyB64 = base64.StdEncoding.EncodeToString(testKey)

func savpOffer(crypto string) string {
	return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/SAVP 0 101\r\n" +
		"a=rtpmap:101 telephone-event/8000\r\n" + crypto
}

func TestSDESOfferIsAnswered(t *testing.T) {
	offer := savpOffer("a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:" + base64.StdEncoding.EncodeToString(make([]byte, 46)) + "\r\n" +
		"a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:" + testKeyB64 + "|2^31\r\n")
	m, err := Negotiate([]byte(offer), []Codec{pcmu}, SRTPOptional)
	if err != nil {
		t.Fatal(err)
	}
	if m.SRTP == nil || m.SRTP.Tag != 2 || m.SRTP.Suite != SuiteAES128SHA1_80 || !bytes.Equal(m.SRTP.Remote, testKey) {
		t.Fatalf("keying %+v: want tag 2 (the suite we speak) and the offered key", m.SRTP)
	}
	if _, err := Answer(m, "127.0.0.1", 10000, 1, 1); err == nil {
		t.Fatal("answered SRTP without a key of ours")
	}
	m.SRTP.Local = NewSRTPKey()
	ans, err := Answer(m, "127.0.0.1", 10000, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	s := string(ans)
	if !strings.Contains(s, "m=audio 10000 RTP/SAVP 0 101") || !strings.Contains(s, "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:"+base64.StdEncoding.EncodeToString(m.SRTP.Local)) {
		t.Fatalf("answer:\n%s", s)
	}
	back, err := Negotiate(ans, []Codec{pcmu}, SRTPRequired)
	if err != nil || !bytes.Equal(back.SRTP.Remote, m.SRTP.Local) {
		t.Fatalf("our answer does not parse back: %+v %v", back.SRTP, err)
	}
}

func TestSRTPPolicy(t *testing.T) {
	plain := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"
	secure := savpOffer("a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:" + testKeyB64 + "\r\n")
	// Two streams: a SAVP one and its plain fallback (the "best effort" offer).
	both := secure + "m=audio 5002 RTP/AVP 0\r\n"
	cases := []struct {
		name   string
		offer  string
		policy SRTPPolicy
		ok     bool
		srtp   bool
	}{
		{"plain, optional", plain, SRTPOptional, true, false},
		{"plain, required", plain, SRTPRequired, false, false},
		{"plain, off", plain, SRTPOff, true, false},
		{"srtp, optional", secure, SRTPOptional, true, true},
		{"srtp, off", secure, SRTPOff, false, false},
		{"srtp, required", secure, SRTPRequired, true, true},
		{"both, off takes the plain one", both, SRTPOff, true, false},
		{"both, required takes the secure one", both, SRTPRequired, true, true},
	}
	for _, c := range cases {
		m, err := Negotiate([]byte(c.offer), []Codec{pcmu}, c.policy)
		if (err == nil) != c.ok || (err == nil && (m.SRTP != nil) != c.srtp) {
			t.Errorf("%s: srtp %v err %v", c.name, m.SRTP != nil, err)
		}
		if err != nil && !errors.Is(err, ErrSDPNoAudio) {
			t.Errorf("%s: %v is not a 488", c.name, err)
		}
	}
}

func TestBadCryptoLines(t *testing.T) {
	for _, line := range []string{
		"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=",                                // short key
		"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + testKeyB64 + "|2^20|1:4",             // MKI
		"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + testKeyB64 + ";inline:" + testKeyB64, // two keys
		"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + testKeyB64 + " UNENCRYPTED_SRTP",     // session parameter
		"a=crypto:x AES_CM_128_HMAC_SHA1_80 inline:" + testKeyB64,                           // tag
		"a=crypto:1 F8_128_HMAC_SHA1_80 inline:" + testKeyB64,                               // suite
		"a=crypto:1 AES_CM_128_HMAC_SHA1_80 uri:https://keys.example",                       // key method
		"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:!!!notbase64!!!",
	} {
		_, err := Negotiate([]byte(savpOffer(line+"\r\n")), []Codec{pcmu}, SRTPOptional)
		if !errors.Is(err, ErrSDPNoAudio) {
			t.Errorf("%s: %v", line, err)
		}
	}
}

func TestOfferWithSRTP(t *testing.T) {
	key := NewSRTPKey()
	offer, err := Offer("127.0.0.1", 10000, []Codec{pcmu}, 1, 1, "sendrecv", key)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Negotiate(offer, []Codec{pcmu}, SRTPRequired)
	if err != nil || !bytes.Equal(m.SRTP.Remote, key) || m.SRTP.Tag != 1 {
		t.Fatalf("%+v %v\n%s", m.SRTP, err, offer)
	}
}
