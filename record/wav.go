package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/voicebot/voicebot/resample"
)

// wavWriter streams a stereo PCM16 WAV: caller left, bot right, at the
// rate of the call's codec (the first audio's: 8 kHz for G.711, 16 kHz for
// G.722; audio at another rate, after a re-INVITE, is converted). Each
// side's frames land at the sample their time says, so the two line up
// whatever the network did; gaps are silence. A window of a few seconds is
// kept in memory and written out as time moves on.
//
// The frames come from the media workers, which serve many calls: a slow
// disk must not hold them up. The file is written by a goroutine of the
// recording's own, in 64 KiB chunks (2 s of audio); if the disk falls 16 s
// behind, the recording stops (logged at its end) and the calls go on.
type wavWriter struct {
	mu        sync.Mutex
	f         *os.File
	write     func([]byte) (int, error) // the file's Write (tests slow it down)
	handed    int64                     // bytes handed to the writer, header included
	chunk     []byte                    // encoded samples not yet handed to the writer
	chunks    chan []byte               // to the writer
	free      chan []byte               // back from it
	done      chan error                // the writer's end, with its first error
	rate      int                       // samples a second, set by the first audio
	convert   [2]*resample.Resampler    // each side's, for audio at another rate
	converted []int16                   // convert's output
	base      int64                     // the first sample in window
	window    []int16                   // interleaved, 2 per sample (4 s)
	highest   int64                     // one past the last sample either side wrote
	next      [2]int64                  // where each side's stream goes on
	err       error
}

// defaultRate is the recording's rate when a test adds samples without
// saying theirs.
const defaultRate = 8000

// The window's timings: a sample index stands for time at the rate.
const (
	// streamSlack is how far a frame's arrival may stray from where its
	// side's stream goes on and still be taken as its continuation:
	// network jitter and bursts (frames arriving together) must not pile
	// frames onto one another, while a real gap (hold, silence
	// suppression) stays a gap.
	streamSlack = time.Second / 2
	wavWindow   = 4 * time.Second // kept in memory
	wavFlush    = 2 * time.Second // written out once the window is this far ahead
)

// samples is d in samples at the recording's rate.
func (w *wavWriter) samples(d time.Duration) int64 {
	return int64(d) * int64(w.rate) / int64(time.Second)
}

const (
	wavChunk  = 64 << 10
	wavQueued = 8 // chunks waiting for the disk before the recording gives up
)

// errSlowDisk stops a recording whose disk cannot keep up.
var errSlowDisk = errors.New("the disk fell behind; recording stopped")

func newWAVWriter(path string) (*wavWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, err
	}
	w := &wavWriter{f: f, write: f.Write, chunk: make([]byte, 0, wavChunk),
		chunks: make(chan []byte, wavQueued), free: make(chan []byte, wavQueued+1), done: make(chan error, 1)}
	w.chunk = append(w.chunk, wavHeader(0, defaultRate)...) // the real one is written at the end
	go w.writeFile()
	return w, nil
}

// writeFile writes the chunks handed to it, in order, until close.
func (w *wavWriter) writeFile() {
	var first error
	for b := range w.chunks {
		if first == nil {
			if _, err := w.write(b); err != nil {
				first = err
			}
		}
		select {
		case w.free <- b[:0]:
		default:
		}
	}
	w.done <- first
}

// handOffLocked passes the filled chunk to the writer. Caller holds mu.
func (w *wavWriter) handOffLocked() {
	if len(w.chunk) == 0 {
		return
	}
	select {
	case w.chunks <- w.chunk:
		w.handed += int64(len(w.chunk))
	default:
		w.err = errSlowDisk
		w.chunk = w.chunk[:0]
		return
	}
	select {
	case w.chunk = <-w.free:
	default:
		w.chunk = make([]byte, 0, wavChunk)
	}
}

// setRate fixes the recording's rate. Caller holds mu.
func (w *wavWriter) setRate(rate int) {
	w.rate = rate
	w.window = make([]int16, 2*w.samples(wavWindow))
}

// addAt writes pcm, at rate, to channel ch (0 left, 1 right) where since
// (the time from the call's start) puts it.
func (w *wavWriter) addAt(ch int, since time.Duration, pcm []int16, rate int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rate == 0 {
		w.setRate(rate)
	}
	if rate != w.rate {
		r := w.convert[ch]
		if r == nil || r.OutRate() != w.rate {
			var err error
			if r, err = resample.New(rate, w.rate); err != nil {
				return
			}
			w.convert[ch] = r
		}
		w.converted = r.Process(w.converted[:0], pcm)
		pcm = w.converted
	}
	w.addLocked(ch, w.samples(since), pcm)
}

// add writes pcm at sample index at of channel ch (0 left, 1 right).
func (w *wavWriter) add(ch int, at int64, pcm []int16) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rate == 0 {
		w.setRate(defaultRate)
	}
	w.addLocked(ch, at, pcm)
}

// addLocked is add with mu held.
func (w *wavWriter) addLocked(ch int, at int64, pcm []int16) {
	if w.err != nil {
		return
	}
	slack := w.samples(streamSlack)
	if n := w.next[ch]; n > 0 && at > n-slack && at < n+slack {
		at = n
	}
	w.next[ch] = at + int64(len(pcm))
	for i, v := range pcm {
		n := at + int64(i)
		if n < w.base {
			continue // too late: that part is on disk already
		}
		for n-w.base >= w.samples(wavWindow) {
			w.flushLocked(w.samples(wavFlush))
		}
		w.window[2*(n-w.base)+int64(ch)] = v
		if n+1 > w.highest {
			w.highest = n + 1
		}
	}
	if second := w.samples(time.Second); w.highest-w.base > w.samples(wavFlush)+second {
		w.flushLocked(w.highest - w.base - second) // keep a second for late frames
	}
}

// flushLocked writes the window's first n samples and shifts it.
func (w *wavWriter) flushLocked(n int64) {
	for i := int64(0); i < n && w.err == nil; i++ {
		w.chunk = binary.LittleEndian.AppendUint16(w.chunk, uint16(w.window[2*i]))
		w.chunk = binary.LittleEndian.AppendUint16(w.chunk, uint16(w.window[2*i+1]))
		if len(w.chunk) >= wavChunk {
			w.handOffLocked()
		}
	}
	copy(w.window, w.window[2*n:])
	clear(w.window[len(w.window)-int(2*n):])
	w.base += n
}

func (w *wavWriter) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.highest > w.base && w.err == nil {
		w.flushLocked(w.highest - w.base)
	}
	if w.err == nil {
		w.handOffLocked()
	}
	close(w.chunks)
	if err := <-w.done; err != nil && w.err == nil {
		w.err = err
	}
	if _, err := w.f.WriteAt(wavHeader(max(w.handed-44, 0)/4, max(w.rate, defaultRate)), 0); err != nil && w.err == nil {
		w.err = err
	}
	if err := w.f.Close(); err != nil && w.err == nil {
		w.err = err
	}
	if w.highest == 0 && w.err == nil {
		// Not a sample either way (a call never answered): no file of
		// nothing but a header is left behind.
		w.err = os.Remove(w.f.Name())
	}
	if w.err != nil {
		return fmt.Errorf("wav: %w", w.err)
	}
	return nil
}

// wavHeader is the 44-byte header of a stereo PCM16 file of samples at rate.
func wavHeader(samples int64, rate int) []byte {
	data := uint32(samples * 4)
	h := make([]byte, 0, 44)
	h = append(h, "RIFF"...)
	h = binary.LittleEndian.AppendUint32(h, 36+data)
	h = append(h, "WAVEfmt "...)
	h = binary.LittleEndian.AppendUint32(h, 16)
	h = binary.LittleEndian.AppendUint16(h, 1) // PCM
	h = binary.LittleEndian.AppendUint16(h, 2) // stereo
	h = binary.LittleEndian.AppendUint32(h, uint32(rate))
	h = binary.LittleEndian.AppendUint32(h, uint32(rate*4))
	h = binary.LittleEndian.AppendUint16(h, 4)
	h = binary.LittleEndian.AppendUint16(h, 16)
	h = append(h, "data"...)
	h = binary.LittleEndian.AppendUint32(h, data)
	return h
}
