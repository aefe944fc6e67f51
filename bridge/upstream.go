package bridge

import (
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/voicebot/voicebot/realtime"
	"github.com/voicebot/voicebot/resample"
)

// sender is the part of a realtime connection the caller path uses.
type sender interface {
	Buffer() *[]byte
	SendBuffer(*[]byte) error
}

// upstream is the caller → model path: PCM16 8 kHz frames in, resampled to
// 24 kHz, batched to the append interval, out as input_audio_buffer.append
// events. It runs on a media worker and allocates nothing per
// frame once warm.
type upstream struct {
	rs      *resample.Resampler
	pcm24   []int16
	pending []byte // PCM16 LE at 24 kHz, waiting for a full batch
	batch   int    // bytes per append event
	seq     uint64
	// conn is set once the model session exists (an outbound call's media
	// runs, held, before it does).
	conn    atomic.Pointer[sender]
	vad     *energyVAD // may be nil
	dropped uint64     // events the connection refused, or audio before it existed

	// While the model session is being replaced, the caller's audio waits
	// in gap (the latest gapMax bytes) instead of going to a dead socket.
	gmu        sync.Mutex
	holding    atomic.Bool
	gap        []byte
	gapMax     int
	gapDropped int // bytes of held audio dropped, oldest first
	bytesPerMS int // of the model's input format
}

func newUpstream(conn sender, appendMS int) *upstream {
	batch := appendMS * 48 // 24 kHz × 2 bytes per ms
	u := &upstream{
		rs: resample.MustNew(8000, 24000),
		// Sized for 20 ms frames; a longer ptime grows them once.
		pcm24:      make([]int16, 0, 481),
		pending:    make([]byte, 0, batch+960),
		batch:      batch,
		bytesPerMS: 48,
	}
	if conn != nil {
		u.setConn(conn)
	}
	return u
}

func (u *upstream) setConn(conn sender) { u.conn.Store(&conn) }

func (u *upstream) write(pcm8 []int16) {
	if u.vad != nil {
		u.vad.frame(pcm8)
	}
	u.pcm24 = u.rs.Process(u.pcm24[:0], pcm8)
	n := len(u.pending)
	u.pending = slices.Grow(u.pending, 2*len(u.pcm24))[:n+2*len(u.pcm24)]
	out := u.pending[n:]
	for i, v := range u.pcm24 {
		binary.LittleEndian.PutUint16(out[2*i:], uint16(v))
	}
	u.flush()
}

// writeRaw is write for a passthrough call: the caller's G.711 bytes go to
// the model as they came (the model's input format is the call's codec).
func (u *upstream) writeRaw(g711 []byte) {
	u.pending = append(u.pending, g711...)
	u.flush()
}

// flush sends the pending audio in batches of the append interval.
func (u *upstream) flush() {
	if u.holding.Load() && u.holdPending() {
		return
	}
	cp := u.conn.Load()
	if cp == nil {
		u.dropped++
		u.pending = u.pending[:0]
		return
	}
	conn := *cp
	for len(u.pending) >= u.batch {
		b := conn.Buffer()
		if need := realtime.AppendInputAudioLen(u.batch); cap(*b) < need {
			*b = make([]byte, 0, need)
		}
		u.seq++
		*b = realtime.AppendInputAudio((*b)[:0], u.seq, u.pending[:u.batch])
		if err := conn.SendBuffer(b); err != nil {
			u.dropped++
		}
		u.pending = u.pending[:copy(u.pending, u.pending[u.batch:])]
	}
}

// holdPending moves the pending audio to the gap buffer while the session is
// away; false once it is back.
func (u *upstream) holdPending() bool {
	u.gmu.Lock()
	defer u.gmu.Unlock()
	if !u.holding.Load() {
		return false
	}
	u.gap = append(u.gap, u.pending...)
	u.pending = u.pending[:0]
	if over := len(u.gap) - u.gapMax; over > 0 {
		if u.bytesPerMS == 48 {
			over += over % 2 // whole PCM16 samples (G.711 is a byte each)
		}
		u.gap = u.gap[:copy(u.gap, u.gap[over:])]
		u.gapDropped += over
	}
	return true
}

// passthrough batches G.711 (8 bytes per ms) instead of PCM16 at 24 kHz.
func (u *upstream) passthrough(appendMS int) {
	u.bytesPerMS = 8
	u.batch = appendMS * 8
}

// hold keeps up to ms of the caller's audio until release.
func (u *upstream) hold(ms int) {
	u.gmu.Lock()
	defer u.gmu.Unlock()
	u.gapMax = ms * u.bytesPerMS
	u.gap = u.gap[:0]
	u.holding.Store(true)
}

// release sends the held audio to conn and resumes streaming there. It
// returns the milliseconds of audio sent.
func (u *upstream) release(conn sender) int {
	u.gmu.Lock()
	defer u.gmu.Unlock()
	sent := len(u.gap) / u.bytesPerMS
	chunk := 1000 * u.bytesPerMS // one second per append
	for off := 0; off < len(u.gap); off += chunk {
		audio := u.gap[off:min(len(u.gap), off+chunk)]
		b := conn.Buffer()
		if need := realtime.AppendInputAudioLen(len(audio)); cap(*b) < need {
			*b = make([]byte, 0, need)
		}
		u.seq++
		*b = realtime.AppendInputAudio((*b)[:0], u.seq, audio)
		if err := conn.SendBuffer(b); err != nil {
			u.dropped++
		}
	}
	u.gap = u.gap[:0]
	u.setConn(conn)
	u.holding.Store(false)
	return sent
}
