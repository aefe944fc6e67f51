package record

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

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
