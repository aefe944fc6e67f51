package record

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestCallRecordAndLiveFeed(t *testing.T) {
	dir := t.TempDir()
	s, err := NewStore(Config{Dir: dir, WAV: true, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	c := s.Start("abc123@host/../../etc", Event{"direction": "inbound", "from": "alice"})
	past, live, cancel := c.Subscribe()
	defer cancel()
	if len(past) != 1 || past[0]["type"] != "call" {
		t.Fatalf("past %v", past)
	}
	c.Emit("transcript", Event{"who": "caller", "text": "hello"})
	if ev := <-live; ev["type"] != "transcript" || ev["text"] != "hello" {
		t.Fatalf("live %v", ev)
	}
	// Caller speaks at 0-0.5 s (left), in frames with network jitter and a
	// burst; the bot at 0.5-1 s (right).
	tone := func(n int) []int16 {
		out := make([]int16, n)
		for i := range out {
			out[i] = int16(8000 * math.Sin(float64(i)/3))
		}
		return out
	}
	for f := 0; f < 25; f++ {
		at := c.start.Add(time.Duration(f)*20*time.Millisecond + time.Duration(f%3)*4*time.Millisecond)
		if f >= 10 && f < 15 {
			at = c.start.Add(300 * time.Millisecond) // five frames arrive together
		}
		c.CallerAudio(at, tone(160), 8000)
	}
	for f := 25; f < 50; f++ {
		c.BotAudio(c.start.Add(time.Duration(f)*20*time.Millisecond), tone(160), 8000)
	}
	c.End(Event{"outcome": "caller hung up"})
	var lastType any
	for ev := range live { // the feed ends with the call
		lastType = ev["type"]
	}
	if lastType != "ended" {
		t.Fatalf("the feed's last event is %v, want ended", lastType)
	}
	if got, ok := s.Get("abc123@host/../../etc"); !ok || got != c {
		t.Fatal("an ended call is not readable")
	}
	_, l2, _ := c.Subscribe()
	if _, ok := <-l2; ok {
		t.Fatal("subscribing after the end gives a closed feed")
	}

	day := filepath.Join(dir, c.start.UTC().Format("2006-01-02"))
	files, _ := filepath.Glob(filepath.Join(day, "*"))
	if len(files) != 3 {
		t.Fatalf("files %v", files)
	}
	txt, _ := os.ReadFile(strings.TrimSuffix(files[0], filepath.Ext(files[0])) + ".txt")
	if !strings.Contains(string(txt), "] caller: hello\n") || !strings.Contains(string(txt), "ended: caller hung up") {
		t.Errorf("transcript:\n%s", txt)
	}
	for _, f := range files {
		if !strings.HasPrefix(f, day+string(filepath.Separator)) || strings.Contains(filepath.Base(f), "/") {
			t.Errorf("file %s escapes the day directory", f)
		}
	}
	jf, _ := os.Open(strings.TrimSuffix(files[0], filepath.Ext(files[0])) + ".jsonl")
	defer jf.Close()
	var types []string
	sc := bufio.NewScanner(jf)
	for sc.Scan() {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		if _, err := time.Parse(time.RFC3339Nano, ev["t"].(string)); err != nil {
			t.Errorf("bad time %v", ev["t"])
		}
		types = append(types, ev["type"].(string))
	}
	if strings.Join(types, ",") != "call,transcript,ended" {
		t.Errorf("events %v", types)
	}
	wav, err := os.ReadFile(strings.TrimSuffix(files[0], filepath.Ext(files[0])) + ".wav")
	if err != nil {
		t.Fatal(err)
	}
	if string(wav[:4]) != "RIFF" || binary.LittleEndian.Uint16(wav[22:]) != 2 || binary.LittleEndian.Uint32(wav[40:]) != uint32(len(wav)-44) {
		t.Fatalf("header: stereo %d, data %d of %d", binary.LittleEndian.Uint16(wav[22:]), binary.LittleEndian.Uint32(wav[40:]), len(wav)-44)
	}
	frames := (len(wav) - 44) / 4
	if frames != 8000 {
		t.Fatalf("%d samples, want 8000 (one second)", frames)
	}
	energy := func(ch, from, to int) float64 {
		var e float64
		for i := from; i < to; i++ {
			v := float64(int16(binary.LittleEndian.Uint16(wav[44+4*i+2*ch:])))
			e += v * v
		}
		return math.Sqrt(e / float64(to-from))
	}
	if l, r := energy(0, 0, 4000), energy(1, 0, 4000); l < 4000 || r != 0 {
		t.Errorf("first half: left %.0f right %.0f, want the caller only", l, r)
	}
	if l, r := energy(0, 4000, 8000), energy(1, 4000, 8000); l != 0 || r < 4000 {
		t.Errorf("second half: left %.0f right %.0f, want the bot only", l, r)
	}
}

func TestNilRecordIsOff(t *testing.T) {
	var s *Store
	c := s.Start("x", nil)
	c.Emit("transcript", nil)
	c.CallerAudio(time.Now(), make([]int16, 160), 8000)
	c.End(nil)
	if _, ok := s.Get("x"); ok {
		t.Fatal("a nil store found a call")
	}
}

func TestRetentionSweep(t *testing.T) {
	dir := t.TempDir()
	s, _ := NewStore(Config{Dir: dir, Retention: time.Hour})
	old := filepath.Join(dir, "2026-01-01")
	os.MkdirAll(old, 0o750)
	for _, f := range []string{"a.jsonl", "a.wav", "keep.md"} {
		os.WriteFile(filepath.Join(old, f), []byte("x"), 0o640)
		os.Chtimes(filepath.Join(old, f), time.Now().Add(-2*time.Hour), time.Now().Add(-2*time.Hour))
	}
	c := s.Start("fresh", nil)
	c.End(nil)
	if n := s.Sweep(time.Now()); n != 2 {
		t.Fatalf("swept %d, want the two old record files", n)
	}
	if _, err := os.Stat(filepath.Join(old, "keep.md")); err != nil {
		t.Error("a file that is not a record was removed")
	}
	if fresh, _ := filepath.Glob(filepath.Join(dir, "*", "fresh.jsonl")); len(fresh) != 1 {
		t.Error("a fresh record was removed")
	}
}

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{"../../etc/passwd": "_.._etc_passwd", "a b@c": "a_b@c", "": "call", "...": "call"} {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkRecordFrame is one 20 ms frame each way into a call's WAV.
func BenchmarkRecordFrame(b *testing.B) {
	s, _ := NewStore(Config{Dir: b.TempDir(), WAV: true})
	c := s.Start("bench", nil)
	defer c.End(nil)
	frame := make([]int16, 160)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		at := c.start.Add(time.Duration(i) * 20 * time.Millisecond)
		c.CallerAudio(at, frame, 8000)
		c.BotAudio(at, frame, 8000)
	}
}
