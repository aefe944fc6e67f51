// Command pcapaudio writes the RTP payloads of a pcap file, in order, as
// one raw audio file: what SIPp's rtp_stream action plays. test/load.sh
// turns SIPp's own g711a.pcap into the caller's speech with it, so that
// SIPp streams from ordinary UDP sockets instead of replaying the pcap
// through raw ones (see test/sipp/uac_load.xml).
//
// With -g722 the payloads (G.711 A-law) are decoded, brought to 16 kHz by
// voicebot's resampler and coded as G.722: the caller's speech of the
// G.722 load run (CODEC=G722 test/load.sh).
//
//	go run ./test/pcapaudio [-g722] in.pcap out.raw
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/resample"
)

func main() {
	g722 := flag.Bool("g722", false, "write the A-law speech as G.722 (16 kHz)")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: pcapaudio [-g722] in.pcap out.raw")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), flag.Arg(1), *g722); err != nil {
		fmt.Fprintln(os.Stderr, "pcapaudio:", err)
		os.Exit(1)
	}
}

func run(in, out string, g722 bool) error {
	data, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	audio, err := payloads(data)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if g722 {
		audio = toG722(audio)
	}
	return os.WriteFile(out, audio, 0o644)
}

// toG722 codes A-law speech as G.722: the same words, at 16 kHz, as one
// stream (a whole number of 20 ms frames).
func toG722(alaw []byte) []byte {
	rs := resample.MustNew(8000, 16000)
	pcm := rs.Flush(rs.Process(nil, media.PCMA.Decode(nil, alaw)))
	pcm = pcm[:len(pcm)/media.G722.FrameSamples*media.G722.FrameSamples]
	return media.G722.Encode(nil, pcm)
}

// payloads returns the RTP payloads of the UDP-over-IPv4 packets of a
// classic pcap (Ethernet or Linux cooked link type), concatenated.
func payloads(data []byte) ([]byte, error) {
	if len(data) < 24 {
		return nil, errors.New("no pcap header")
	}
	var order binary.ByteOrder
	switch binary.LittleEndian.Uint32(data) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		order = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		order = binary.BigEndian
	default:
		return nil, errors.New("not a pcap file")
	}
	var link int
	switch order.Uint32(data[20:]) {
	case 1: // Ethernet
		link = 14
	case 113: // Linux cooked capture
		link = 16
	default:
		return nil, fmt.Errorf("link type %d not handled", order.Uint32(data[20:]))
	}
	var audio []byte
	for rest := data[24:]; len(rest) > 0; {
		if len(rest) < 16 {
			return nil, io.ErrUnexpectedEOF
		}
		n := int(order.Uint32(rest[8:]))
		if len(rest) < 16+n {
			return nil, io.ErrUnexpectedEOF
		}
		pkt := rest[16 : 16+n]
		rest = rest[16+n:]
		if len(pkt) < link+20 || pkt[link]>>4 != 4 {
			continue // not IPv4
		}
		ip := pkt[link:]
		ihl := int(ip[0]&0x0f) * 4
		if ip[9] != 17 || len(ip) < ihl+8+12 {
			continue // not UDP, or too short for RTP
		}
		rtp := ip[ihl+8:]
		if rtp[0]>>6 != 2 {
			continue
		}
		header := 12 + int(rtp[0]&0x0f)*4
		if rtp[0]&0x10 != 0 { // extension
			if len(rtp) < header+4 {
				continue
			}
			header += 4 + int(binary.BigEndian.Uint16(rtp[header+2:]))*4
		}
		end := len(rtp)
		if rtp[0]&0x20 != 0 && end > header { // padding
			end -= int(rtp[end-1])
		}
		if header > end {
			continue
		}
		audio = append(audio, rtp[header:end]...)
	}
	if len(audio) == 0 {
		return nil, errors.New("no RTP payload found")
	}
	return audio, nil
}
