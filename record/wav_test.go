package record

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A disk that stalls never holds up the frames (they come from the media
// workers, which serve other calls too): the recording stops instead, says
// so at its end, and its header matches what reached the file.
func TestWAVSlowDiskStopsTheRecordingNotTheCall(t *testing.T) {
	path := filepath.Join(t.TempDir(), "slow.wav")
	w, err := newWAVWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	stall := make(chan struct{})
	write := w.write
	w.write = func(b []byte) (int, error) { <-stall; return write(b) }

	frame := make([]int16, 160)
	start := time.Now()
	for i := int64(0); i < 60*50; i++ { // 60 s of both sides, as fast as it goes
		w.add(0, i*160, frame)
		w.add(1, i*160, frame)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("adding 60 s of audio to a stalled disk took %v", took)
	}
	close(stall)
	err = w.close()
	if !errors.Is(err, errSlowDisk) {
		t.Fatalf("close: %v, want the slow disk named", err)
	}
	data, _ := os.ReadFile(path)
	if got := int(binary.LittleEndian.Uint32(data[40:44])); got != len(data)-44 {
		t.Errorf("header says %d data bytes, the file has %d", got, len(data)-44)
	}
}

// A disk that keeps up gets every sample, in order, both sides aligned.
func TestWAVWritesEverySample(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ok.wav")
	w, err := newWAVWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	const frames = 10 * 50 // 10 s
	for i := int64(0); i < frames; i++ {
		left, right := make([]int16, 160), make([]int16, 160)
		for k := range left {
			left[k], right[k] = int16(i), int16(-i)
		}
		w.add(0, i*160, left)
		w.add(1, i*160, right)
		if i%50 == 0 {
			time.Sleep(time.Millisecond) // let the writer run alongside
		}
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if len(data) != 44+frames*160*4 {
		t.Fatalf("%d bytes, want %d", len(data), 44+frames*160*4)
	}
	for _, i := range []int{0, 1, 249, 499} {
		off := 44 + i*160*4
		l, r := int16(binary.LittleEndian.Uint16(data[off:])), int16(binary.LittleEndian.Uint16(data[off+2:]))
		if l != int16(i) || r != int16(-i) {
			t.Errorf("frame %d: left %d right %d", i, l, r)
		}
	}
}

// A live feed ends only once the call's files are complete: whoever
// follows it may fetch the recording the moment it ends.
func TestLiveFeedEndsAfterTheFilesAreComplete(t *testing.T) {
	dir := t.TempDir()
	s, err := NewStore(Config{Dir: dir, WAV: true, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	c := s.Start("slow-disk", Event{"direction": "inbound"})
	_, live, cancel := c.Subscribe()
	defer cancel()
	write := c.wav.write
	c.wav.write = func(b []byte) (int, error) { time.Sleep(100 * time.Millisecond); return write(b) }
	start := time.Now()
	frame := make([]int16, 160)
	for i := range frame {
		frame[i] = 1000
	}
	for i := 0; i < 5*50; i++ { // 5 s of the bot
		c.BotAudio(start.Add(time.Duration(i)*20*time.Millisecond), frame, 8000)
	}
	go c.End(Event{"outcome": "caller hung up"})
	for range live {
	}
	wavs, _ := filepath.Glob(filepath.Join(dir, "*", "*.wav"))
	if len(wavs) != 1 {
		t.Fatalf("recordings %v", wavs)
	}
	data, _ := os.ReadFile(wavs[0])
	if want := 44 + 5*8000*4; len(data) < want {
		t.Fatalf("the feed ended with %d bytes of the recording on disk, want %d", len(data), want)
	}
	if got := int(binary.LittleEndian.Uint32(data[40:44])); got != len(data)-44 {
		t.Errorf("header says %d data bytes, the file has %d", got, len(data)-44)
	}
}

// A call that never carried audio (never answered) leaves no recording:
// not an empty 44-byte WAV.
func TestNoRecordingWithoutAudio(t *testing.T) {
	dir := t.TempDir()
	s, err := NewStore(Config{Dir: dir, WAV: true, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	c := s.Start("unanswered", Event{"direction": "outbound"})
	c.End(Event{"outcome": "no_answer"})
	if wavs, _ := filepath.Glob(filepath.Join(dir, "*", "*.wav")); len(wavs) != 0 {
		t.Errorf("recordings of nothing: %v", wavs)
	}
	if logs, _ := filepath.Glob(filepath.Join(dir, "*", "*.jsonl")); len(logs) != 1 {
		t.Errorf("the call's record is missing: %v", logs)
	}
}

// A G.722 call is recorded at 16 kHz, its codec's rate; audio that comes
// at another rate after a re-INVITE (PCMU, 8 kHz) is converted into it,
// at its time, at its pitch.
func TestRecordingAtTheCallsRate(t *testing.T) {
	dir := t.TempDir()
	s, err := NewStore(Config{Dir: dir, WAV: true, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	c := s.Start("wideband", Event{"direction": "inbound"})
	start := c.start
	wide := make([]int16, 320)
	for i := range wide {
		wide[i] = int16(8000 * math.Sin(2*math.Pi*1000*float64(i)/16000))
	}
	narrow := make([]int16, 160)
	for i := range narrow {
		narrow[i] = int16(8000 * math.Sin(2*math.Pi*1000*float64(i)/8000))
	}
	for i := range 50 { // 1 s at 16 kHz, then 1 s at 8 kHz
		c.CallerAudio(start.Add(time.Duration(i)*20*time.Millisecond), wide, 16000)
	}
	for i := 50; i < 100; i++ {
		c.CallerAudio(start.Add(time.Duration(i)*20*time.Millisecond), narrow, 8000)
	}
	c.End(Event{"outcome": "caller_hung_up"})
	data, err := os.ReadFile(c.RecordingFile())
	if err != nil {
		t.Fatal(err)
	}
	if rate := binary.LittleEndian.Uint32(data[24:28]); rate != 16000 {
		t.Fatalf("recorded at %d Hz, want the call's 16000", rate)
	}
	samples := (len(data) - 44) / 4
	if samples < 31900 || samples > 32100 {
		t.Errorf("%d samples, want 2 s at 16 kHz", samples)
	}
	// The converted second: a 1 kHz tone still (not 2 kHz), at its level.
	left := make([]float64, 0, 16000)
	for i := 44 + 4*16400; i+4 <= 44+4*31600; i += 4 {
		left = append(left, float64(int16(binary.LittleEndian.Uint16(data[i:]))))
	}
	if a := amplitudeAt(left, 16000, 1000); a < 7000 || a > 9000 {
		t.Errorf("the 8 kHz audio's 1 kHz tone is at %.0f in the recording, want about 8000", a)
	}
}

func amplitudeAt(x []float64, rate, freq float64) float64 {
	var re, im float64
	for i, v := range x {
		w := 2 * math.Pi * freq * float64(i) / rate
		re += v * math.Cos(w)
		im += v * math.Sin(w)
	}
	return 2 * math.Hypot(re, im) / float64(len(x))
}
