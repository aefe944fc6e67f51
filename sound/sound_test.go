package sound

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func wav(format, channels uint16, rate uint32, bits uint16, data []byte) []byte {
	b := []byte("RIFF\x00\x00\x00\x00WAVEfmt ")
	b = binary.LittleEndian.AppendUint32(b, 16)
	b = binary.LittleEndian.AppendUint16(b, format)
	b = binary.LittleEndian.AppendUint16(b, channels)
	b = binary.LittleEndian.AppendUint32(b, rate)
	b = binary.LittleEndian.AppendUint32(b, rate*uint32(channels)*uint32(bits)/8)
	b = binary.LittleEndian.AppendUint16(b, channels*bits/8)
	b = binary.LittleEndian.AppendUint16(b, bits)
	b = append(b, "data"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	b = append(b, data...)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-8))
	return b
}

func tone16(n int, rate float64) []byte {
	var out []byte
	for i := 0; i < n; i++ {
		out = binary.LittleEndian.AppendUint16(out, uint16(int16(8000*math.Sin(2*math.Pi*440*float64(i)/rate))))
	}
	return out
}

func TestBuiltInPrompts(t *testing.T) {
	for name, pcm := range map[string][]int16{"apology": Apology(), "moment": Moment(), "comfort": ComfortTone()} {
		if len(pcm) < Rate/2 {
			t.Errorf("%s: %d samples, want at least half a second", name, len(pcm))
		}
		silent := 0
		for _, v := range pcm {
			if v == 0 {
				silent++
			}
		}
		if silent > len(pcm)/2 {
			t.Errorf("%s: %d of %d samples are digital silence", name, silent, len(pcm))
		}
	}
}

func TestParseWAVFormats(t *testing.T) {
	// One second at 16 kHz stereo must come out as one second at 8 kHz mono.
	stereo := tone16(2*16000, 16000) // interleaved: both channels the same tone, shifted
	pcm, err := ParseWAV(wav(formatPCM, 2, 16000, 16, stereo))
	if err != nil {
		t.Fatal(err)
	}
	if len(pcm) < 7900 || len(pcm) > 8100 {
		t.Errorf("16 kHz stereo: %d samples at 8 kHz, want about 8000", len(pcm))
	}
	ulaw := make([]byte, 800)
	for i := range ulaw {
		ulaw[i] = 0x00 // µ-law 0x00 is full negative scale
	}
	pcm, err = ParseWAV(wav(formatMuLaw, 1, 8000, 8, ulaw))
	if err != nil || len(pcm) != 800 || pcm[0] > -30000 {
		t.Errorf("µ-law: %d samples, first %v, err %v", len(pcm), pcm[:1], err)
	}
	pcm, err = ParseWAV(wav(formatPCM, 1, 8000, 8, []byte{0, 128, 255}))
	if err != nil || pcm[0] != -32768 || pcm[1] != 0 {
		t.Errorf("8-bit: %v, %v", pcm, err)
	}
}

func TestParseWAVRefusesBadInput(t *testing.T) {
	cases := map[string][]byte{
		"empty":          nil,
		"not riff":       []byte("RIFX\x00\x00\x00\x00WAVE"),
		"no data":        wav(formatPCM, 1, 8000, 16, nil)[:36],
		"float":          wav(3, 1, 8000, 32, make([]byte, 64)),
		"24-bit":         wav(formatPCM, 1, 8000, 24, make([]byte, 60)),
		"zero channels":  wav(formatPCM, 0, 8000, 16, make([]byte, 64)),
		"odd rate":       wav(formatPCM, 1, 44100, 16, make([]byte, 64)),
		"absurd rate":    wav(formatPCM, 1, 1, 16, make([]byte, 64)),
		"fmt past end":   []byte("RIFF\x00\x00\x00\x00WAVEfmt \xff\xff\x00\x00"),
		"short fmt":      []byte("RIFF\x00\x00\x00\x00WAVEfmt \x04\x00\x00\x00\x01\x00\x01\x00"),
		"too long audio": wav(formatPCM, 1, 8000, 8, make([]byte, (MaxSeconds+1)*8000)),
	}
	for name, b := range cases {
		if _, err := ParseWAV(b); !errors.Is(err, ErrNotWAV) {
			t.Errorf("%s: err %v, want ErrNotWAV", name, err)
		}
	}
}

func TestLoadWAVNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "filler.wav")
	if err := os.WriteFile(path, []byte("not audio"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadWAV(path); err == nil || !errors.Is(err, ErrNotWAV) {
		t.Fatalf("err %v", err)
	}
	if err := os.WriteFile(path, wav(formatPCM, 1, 8000, 16, tone16(800, 8000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if pcm, err := LoadWAV(path); err != nil || len(pcm) != 800 {
		t.Fatalf("%d samples, %v", len(pcm), err)
	}
}

func FuzzParseWAV(f *testing.F) {
	f.Add(apologyWAV[:2000])
	f.Add(wav(formatMuLaw, 1, 8000, 8, make([]byte, 16)))
	f.Add(wav(formatPCM, 2, 16000, 16, make([]byte, 64)))
	f.Fuzz(func(t *testing.T, b []byte) {
		pcm, err := ParseWAV(b)
		if err == nil && len(pcm) > MaxSeconds*Rate*2 {
			t.Fatalf("%d samples past the bound", len(pcm))
		}
	})
}

// Uploads come at any common rate, mono or stereo: each reaches 24 kHz
// mono at its length, the channels mixed.
func TestDecodeWAVToTheModelsRate(t *testing.T) {
	for _, rate := range []int{8000, 11025, 16000, 22050, 32000, 44100, 48000} {
		for _, channels := range []int{1, 2} {
			n := rate // 1 s
			pcm := make([]int16, n*channels)
			for i := 0; i < n; i++ {
				v := int16(8000 * math.Sin(2*math.Pi*440*float64(i)/float64(rate)))
				for c := 0; c < channels; c++ {
					pcm[i*channels+c] = v
				}
			}
			b := EncodeWAV(pcm, rate)
			if channels == 2 {
				binary.LittleEndian.PutUint16(b[22:], 2)
				binary.LittleEndian.PutUint32(b[28:], uint32(4*rate))
				binary.LittleEndian.PutUint16(b[32:], 4)
			}
			out, err := DecodeWAV(b, 24000, 60)
			if err != nil {
				t.Fatalf("%d Hz × %d: %v", rate, channels, err)
			}
			if len(out) < 24000 || len(out) > 24400 {
				t.Errorf("%d Hz × %d: %d samples for 1 s at 24 kHz", rate, channels, len(out))
			}
			var peak int16
			for _, v := range out[2400 : len(out)-2400] {
				peak = max(peak, v)
			}
			if peak < 7800 || peak > 8200 {
				t.Errorf("%d Hz × %d: peak %d, want 8000", rate, channels, peak)
			}
		}
	}
	if _, err := DecodeWAV(EncodeWAV(make([]int16, 8000*3), 8000), 24000, 2); !errors.Is(err, ErrTooLong) || !errors.Is(err, ErrNotWAV) {
		t.Errorf("3 s against a 2 s bound: %v", err)
	}
}
