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

// upstream is the caller → model path: PCM16 frames at the call codec's
// rate in, resampled to the model's rate, batched to the append interval,
// out as input_audio_buffer.append events. It runs on a media worker and
// allocates nothing per frame once warm.
type upstream struct {
	rs       *resample.Resampler
	modelPCM []int16
	pending  []byte // in the model's format, waiting for a full batch
	batch    int    // bytes per append event
	appendMS int
	seq      uint64
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
	gapDropped int                  // bytes of held audio dropped, oldest first
	format     realtime.AudioFormat // the model's input format
	callRate   int                  // the caller's audio's, when transcoded
}

// newUpstream makes the path from PCM16 at callRate to the model's format.
func newUpstream(conn sender, appendMS, callRate int, format realtime.AudioFormat) *upstream {
	u := &upstream{appendMS: appendMS}
	u.useRates(callRate, format)
	if conn != nil {
		u.setConn(conn)
	}
	return u
}

// useRates resamples from the call's rate to format's (transcoded). It is
// for the call's setup, before its media runs: a media worker owns the
// path from then on.
func (u *upstream) useRates(callRate int, format realtime.AudioFormat) {
	u.format, u.callRate = format, callRate
	u.rs = resample.MustNew(callRate, format.SampleRate())
	// Sized for 20 ms frames; a longer ptime grows them once.
	frame := format.SampleRate() / 50
	u.modelPCM = make([]int16, 0, frame+1)
	u.batch = u.appendMS * format.BytesPerMS()
	u.pending = make([]byte, 0, u.batch+frame*format.BytesPerSample())
}

func (u *upstream) setConn(conn sender) { u.conn.Store(&conn) }

// followRate resamples from a new call rate mid-call. What is pending,
// already in the model's format, stays.
func (u *upstream) followRate(rate int) {
	u.callRate = rate
	u.rs = resample.MustNew(rate, u.format.SampleRate())
	if u.vad != nil {
		u.vad.perMS = rate / 1000
	}
}

// write takes a frame of the caller's audio at rate. A re-INVITE may have
// changed the codec, and with it the rate: the path follows it here, on
// the media worker that owns it.
func (u *upstream) write(pcm []int16, rate int) {
	if rate != u.callRate {
		u.followRate(rate)
	}
	if u.vad != nil {
		u.vad.frame(pcm)
	}
	u.modelPCM = u.rs.Process(u.modelPCM[:0], pcm)
	n := len(u.pending)
	u.pending = slices.Grow(u.pending, 2*len(u.modelPCM))[:n+2*len(u.modelPCM)]
	out := u.pending[n:]
	for i, v := range u.modelPCM {
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
		if r := over % u.format.BytesPerSample(); r != 0 {
			over += u.format.BytesPerSample() - r // whole samples
		}
		u.gap = u.gap[:copy(u.gap, u.gap[over:])]
		u.gapDropped += over
	}
	return true
}

// passthrough batches the call's payloads, in format, as they came: no
// resampling. Like useRates, it is for the call's setup.
func (u *upstream) passthrough(format realtime.AudioFormat, appendMS int) {
	u.format = format
	u.batch = appendMS * format.BytesPerMS()
}

// hold keeps up to ms of the caller's audio until release.
func (u *upstream) hold(ms int) {
	u.gmu.Lock()
	defer u.gmu.Unlock()
	u.gapMax = ms * u.format.BytesPerMS()
	u.gap = u.gap[:0]
	u.holding.Store(true)
}

// release sends the held audio to conn and resumes streaming there. It
// returns the milliseconds of audio sent.
func (u *upstream) release(conn sender) int {
	u.gmu.Lock()
	defer u.gmu.Unlock()
	sent := len(u.gap) / u.format.BytesPerMS()
	chunk := 1000 * u.format.BytesPerMS() // one second per append
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
