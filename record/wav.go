package record

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
)

// wavWriter streams a stereo 8 kHz PCM16 WAV: caller left, bot right. Each
// side's frames land at the sample their time says, so the two line up
// whatever the network did; gaps are silence. A window of a few seconds is
// kept in memory and written out as time moves on.
type wavWriter struct {
	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	base    int64    // the first sample in window
	window  []int16  // interleaved, 2 per sample
	highest int64    // one past the last sample either side wrote
	written int64    // samples on disk
	next    [2]int64 // where each side's stream goes on
	err     error
}

// streamSlack is how far a frame's arrival may stray from where its side's
// stream goes on and still be taken as its continuation: network jitter
// and bursts (frames arriving together) must not pile frames onto one
// another, while a real gap (hold, silence suppression) stays a gap.
const streamSlack = wavRate / 2

const (
	wavRate   = 8000
	wavWindow = 4 * wavRate // samples kept in memory
	wavFlush  = 2 * wavRate // written out once the window is this far ahead
)

func newWAVWriter(path string) (*wavWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, err
	}
	w := &wavWriter{f: f, w: bufio.NewWriterSize(f, 64<<10), window: make([]int16, 2*wavWindow)}
	w.w.Write(wavHeader(0))
	return w, nil
}

// add writes pcm at sample index at of channel ch (0 left, 1 right).
func (w *wavWriter) add(ch int, at int64, pcm []int16) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return
	}
	if n := w.next[ch]; n > 0 && at > n-streamSlack && at < n+streamSlack {
		at = n
	}
	w.next[ch] = at + int64(len(pcm))
	for i, v := range pcm {
		n := at + int64(i)
		if n < w.base {
			continue // too late: that part is on disk already
		}
		for n-w.base >= wavWindow {
			w.flushLocked(wavFlush)
		}
		w.window[2*(n-w.base)+int64(ch)] = v
		if n+1 > w.highest {
			w.highest = n + 1
		}
	}
	if w.highest-w.base > wavFlush+wavRate {
		w.flushLocked(w.highest - w.base - wavRate) // keep a second for late frames
	}
}

// flushLocked writes the window's first n samples and shifts it.
func (w *wavWriter) flushLocked(n int64) {
	var b [4]byte
	for i := int64(0); i < n; i++ {
		binary.LittleEndian.PutUint16(b[0:], uint16(w.window[2*i]))
		binary.LittleEndian.PutUint16(b[2:], uint16(w.window[2*i+1]))
		if _, err := w.w.Write(b[:]); err != nil {
			w.err = err
			return
		}
	}
	copy(w.window, w.window[2*n:])
	clear(w.window[len(w.window)-int(2*n):])
	w.base += n
	w.written += n
}

func (w *wavWriter) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.highest > w.base {
		w.flushLocked(w.highest - w.base)
	}
	if err := w.w.Flush(); err != nil && w.err == nil {
		w.err = err
	}
	if _, err := w.f.WriteAt(wavHeader(w.written), 0); err != nil && w.err == nil {
		w.err = err
	}
	if err := w.f.Close(); err != nil && w.err == nil {
		w.err = err
	}
	if w.err != nil {
		return fmt.Errorf("wav: %w", w.err)
	}
	return nil
}

// wavHeader is the 44-byte header of a stereo 8 kHz PCM16 file of samples.
func wavHeader(samples int64) []byte {
	data := uint32(samples * 4)
	h := make([]byte, 0, 44)
	h = append(h, "RIFF"...)
	h = binary.LittleEndian.AppendUint32(h, 36+data)
	h = append(h, "WAVEfmt "...)
	h = binary.LittleEndian.AppendUint32(h, 16)
	h = binary.LittleEndian.AppendUint16(h, 1) // PCM
	h = binary.LittleEndian.AppendUint16(h, 2) // stereo
	h = binary.LittleEndian.AppendUint32(h, wavRate)
	h = binary.LittleEndian.AppendUint32(h, wavRate*4)
	h = binary.LittleEndian.AppendUint16(h, 4)
	h = binary.LittleEndian.AppendUint16(h, 16)
	h = append(h, "data"...)
	h = binary.LittleEndian.AppendUint32(h, data)
	return h
}
