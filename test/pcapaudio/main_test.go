package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"
)

// pcapOf builds a little-endian Ethernet pcap of one IPv4/UDP/RTP packet
// per payload.
func pcapOf(payloads ...[]byte) []byte {
	var b bytes.Buffer
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr, 0xa1b2c3d4)
	binary.LittleEndian.PutUint32(hdr[20:], 1)
	b.Write(hdr)
	for _, p := range payloads {
		pkt := make([]byte, 14+20+8+12, 14+20+8+12+len(p))
		pkt[14] = 0x45 // IPv4, 20-byte header
		pkt[14+9] = 17 // UDP
		pkt[14+20+8] = 0x80
		pkt = append(pkt, p...)
		rec := make([]byte, 16)
		binary.LittleEndian.PutUint32(rec[8:], uint32(len(pkt)))
		binary.LittleEndian.PutUint32(rec[12:], uint32(len(pkt)))
		b.Write(rec)
		b.Write(pkt)
	}
	return b.Bytes()
}

func TestPayloadsInOrder(t *testing.T) {
	got, err := payloads(pcapOf([]byte{1, 2}, []byte{3}, []byte{4, 5, 6}))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, []byte{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("payloads %v", got)
	}
}

func TestPayloadsBadInput(t *testing.T) {
	full := pcapOf([]byte{1, 2, 3})
	for name, data := range map[string][]byte{
		"empty":     nil,
		"not pcap":  bytes.Repeat([]byte{0x42}, 64),
		"truncated": full[:len(full)-2],
		"no rtp":    pcapOf(),
	} {
		if _, err := payloads(data); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// SIPp's own speech, which test/load.sh plays: 7 s of A-law.
func TestSIPpSpeech(t *testing.T) {
	data, err := os.ReadFile("/usr/share/sip-tester/g711a.pcap")
	if err != nil {
		t.Skipf("no SIPp pcap: %v", err)
	}
	audio, err := payloads(data)
	if err != nil {
		t.Fatal(err)
	}
	if seconds := float64(len(audio)) / 8000; seconds < 6.5 || seconds > 7.5 {
		t.Errorf("%.2f s of audio, want about 7", seconds)
	}
}

func FuzzPayloads(f *testing.F) {
	f.Add(pcapOf([]byte{1, 2, 3}))
	f.Add(pcapOf())
	f.Fuzz(func(t *testing.T, data []byte) { _, _ = payloads(data) })
}
