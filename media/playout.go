package media

import (
	"sync"

	"github.com/voicebot/voicebot/resample"
)

// ItemRef names the model output a piece of bot audio came from.
type ItemRef struct {
	ResponseID   string
	ItemID       string
	ContentIndex int
}

// ItemPlayed accounts for one item's audio: how much left as RTP and how much
// was still queued when playout was flushed.
type ItemPlayed struct {
	Ref           ItemRef
	SentSamples   int // samples that left in RTP packets
	QueuedSamples int // samples queued but not (yet) sent
	SampleRate    int // of the samples: the call's codec's
}

// SentMS is the item's audio the caller was sent, in whole milliseconds.
func (p ItemPlayed) SentMS() int { return p.SentSamples * 1000 / p.SampleRate }

// QueuedMS is the item's audio still queued, in whole milliseconds.
func (p ItemPlayed) QueuedMS() int { return p.QueuedSamples * 1000 / p.SampleRate }

// playout is the queue between the model's audio (arriving in bursts, faster
// than real time) and the pacer (taking a frame every 20 ms). It holds
// the audio in the form queued gives for the call's codec: G.711 encoded
// (a byte a sample, half the memory of PCM, and nothing left to encode
// when the frame goes); a stateful codec's as linear PCM, encoded as it
// leaves. It is
// shared by the bridge goroutine (enqueue, flush) and the media worker
// (pop), hence the mutex; every operation is short.
//
// The audio is kept in chunks from a pool all calls share: a call holds
// memory for the audio it has queued, not for the longest answer it ever
// had, and chunks played out serve the next call's answer without being
// allocated again.
type playout struct {
	mu       sync.Mutex
	chunks   []*chunk // queued audio, oldest first
	head     int      // index of the oldest queued byte in chunks[0]
	size     int      // queued bytes
	codec    Codec    // what the bytes are, for the accounts in samples
	spans    []span
	accounts []ItemPlayed // recent items, oldest first
	paused   bool         // a barge-in decision: pop returns nothing, the queue is kept
	held     bool         // the call is on hold: the same, and a flush does not end it
}

// span is a run of queued bytes belonging to one item.
type span struct {
	account int // index into accounts
	n       int
}

// maxAccounts bounds the per-item history kept for truncation decisions.
const maxAccounts = 16

// chunk holds queued audio: 100 ms of G.711, 25 ms of 16 kHz PCM.
type chunk [800]byte

var chunkPool = sync.Pool{New: func() any { return new(chunk) }}

func newPlayout(codec Codec) *playout {
	return &playout{chunks: make([]*chunk, 0, 8), codec: codec}
}

// enqueue appends the encoded audio pcm for item; it reports whether the
// queue was empty before (the start of a talkspurt, which the pacer sends
// at once).
func (p *playout) enqueue(ref ItemRef, pcm []byte) (wasEmpty bool) {
	if len(pcm) == 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	wasEmpty = p.size == 0
	p.appendLocked(pcm)

	acc := p.accountFor(ref)
	p.accounts[acc].QueuedSamples += p.codec.SamplesIn(len(pcm))
	if k := len(p.spans); k > 0 && p.spans[k-1].account == acc {
		p.spans[k-1].n += len(pcm)
	} else {
		p.spans = append(p.spans, span{account: acc, n: len(pcm)})
	}
	return wasEmpty
}

// appendLocked appends b to the queued bytes, in pooled chunks. Caller
// holds mu.
func (p *playout) appendLocked(b []byte) {
	for rest := b; len(rest) > 0; {
		tail := (p.head + p.size) % len(chunk{})
		if tail == 0 {
			p.chunks = append(p.chunks, chunkPool.Get().(*chunk))
		}
		n := copy(p.chunks[len(p.chunks)-1][tail:], rest)
		rest = rest[n:]
		p.size += n
	}
}

// drop releases n bytes from the front of the queue. Caller holds mu.
func (p *playout) drop(n int) {
	p.head += n
	p.size -= n
	done := p.head / len(chunk{})
	if p.size == 0 {
		done = len(p.chunks) // a partly filled last chunk is free too
	}
	for _, c := range p.chunks[:done] {
		chunkPool.Put(c)
	}
	p.chunks = p.chunks[:copy(p.chunks, p.chunks[done:])]
	p.head %= len(chunk{})
	if p.size == 0 {
		p.head = 0
	}
}

// accountFor finds or adds the account of ref. Caller holds mu.
func (p *playout) accountFor(ref ItemRef) int {
	for i := len(p.accounts) - 1; i >= 0; i-- {
		if p.accounts[i].Ref == ref {
			return i
		}
	}
	if len(p.accounts) == maxAccounts {
		// Forget the oldest item that has nothing queued.
		for i := range p.accounts {
			if p.accounts[i].QueuedSamples == 0 {
				p.accounts = append(p.accounts[:i], p.accounts[i+1:]...)
				for j := range p.spans {
					if p.spans[j].account > i {
						p.spans[j].account--
					}
				}
				break
			}
		}
	}
	p.accounts = append(p.accounts, ItemPlayed{Ref: ref, SampleRate: p.codec.SampleRate})
	return len(p.accounts) - 1
}

// pop moves up to len(frame) bytes into frame and returns how many; the
// rest of frame is left as it was (the caller pads the tail of a talkspurt
// with its codec's silence).
func (p *playout) pop(frame []byte) int {
	n, _ := p.take(frame, false)
	return n
}

// take is pop for the pacer, in one lock: it also reports a call on hold
// (nothing at all is to be sent), and with wait it leaves the queue alone
// (keys are being sent; bot audio waits for them).
func (p *playout) take(frame []byte, wait bool) (n int, held bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held || p.paused || wait {
		return 0, p.held
	}
	n = min(len(frame), p.size)
	for got, at := 0, p.head; got < n; {
		c := p.chunks[at/len(chunk{})]
		k := copy(frame[got:n], c[at%len(chunk{}):])
		got += k
		at += k
	}
	p.drop(n)
	for left := n; left > 0 && len(p.spans) > 0; {
		s := &p.spans[0]
		k := min(left, s.n)
		s.n -= k
		left -= k
		samples := p.codec.SamplesIn(k)
		p.accounts[s.account].SentSamples += samples
		p.accounts[s.account].QueuedSamples -= samples
		if s.n == 0 {
			p.spans = p.spans[:copy(p.spans, p.spans[1:])]
		}
	}
	return n, false
}

// setPaused holds or releases playout.
func (p *playout) setPaused(paused bool) {
	p.mu.Lock()
	p.paused = paused
	p.mu.Unlock()
}

func (p *playout) isPaused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused || p.held
}

// setHeld holds or releases playout for a call on hold.
func (p *playout) setHeld(held bool) {
	p.mu.Lock()
	p.held = held
	p.mu.Unlock()
}

// queued is the number of bytes waiting.
func (p *playout) queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.size
}

// queuedMS is the audio waiting, in whole milliseconds.
func (p *playout) queuedMS() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.codec.MS(p.size)
}

// flush drops everything queued and returns the accounts of the items that
// were playing or queued, with what was sent of each.
func (p *playout) flush(dst []ItemPlayed) []ItemPlayed {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.spans {
		dst = append(dst, p.accounts[s.account])
	}
	p.dropAll()
	p.paused = false
	return dst
}

// dropAll empties the queue; the accounts say nothing of it was sent.
// Caller holds mu.
func (p *playout) dropAll() {
	for _, s := range p.spans {
		p.accounts[s.account].QueuedSamples -= p.codec.SamplesIn(s.n)
	}
	p.spans = p.spans[:0]
	p.drop(p.size)
}

// recode turns the queued audio into another codec (a re-INVITE changed
// the call's codec while the bot was talking, or an outbound call's answer
// chose another codec than the one its early audio was queued in). Between
// codecs of one rate and frame size (G.711's laws) the audio is converted
// in place; to another rate (G.711 ⇄ G.722) it is decoded, resampled and
// encoded anew, and the accounts follow the new rate: nothing the model
// said is lost to the change.
func (p *playout) recode(to Codec) {
	p.mu.Lock()
	defer p.mu.Unlock()
	from := p.codec
	if from == to {
		return
	}
	if from.SampleRate != to.SampleRate || from.FrameBytes != to.FrameBytes || from.FrameSamples != to.FrameSamples {
		p.resampleLocked(to)
		return
	}
	var pcm []int16
	var out []byte
	for _, c := range p.chunks {
		pcm = from.Decode(pcm[:0], c[:])
		out = to.Encode(out[:0], pcm)
		copy(c[:], out)
	}
	p.codec = to
}

// resampleLocked is recode to another rate or frame shape. The queue is
// converted as one stream (the items follow one another on the wire), and
// each item keeps its share of it. Caller holds mu.
func (p *playout) resampleLocked(to Codec) {
	from := p.codec
	queued := make([]byte, 0, p.size)
	for at := p.head; len(queued) < p.size; {
		off := at % len(chunk{})
		k := min(len(chunk{})-off, p.size-len(queued))
		queued = append(queued, p.chunks[at/len(chunk{})][off:off+k]...)
		at += k
	}
	pcm := from.Decode(nil, queued)
	rs, err := resample.New(from.SampleRate, to.SampleRate)
	if err != nil {
		p.dropAll() // not a rate pair the resampler takes: the accounts say unsent
		p.codec = to
		return
	}
	converted := rs.Flush(rs.Process(nil, pcm))
	// Less the filter's lead-in: the audio keeps its length and its place.
	converted = converted[min(int(rs.Delay()+0.5), len(converted)):]
	// Each span's samples, in the new rate; the last takes what rounding left.
	ratio := float64(to.SampleRate) / float64(from.SampleRate)
	left := len(converted)
	for i := range p.spans {
		s := &p.spans[i]
		n := int(float64(from.SamplesIn(s.n))*ratio + 0.5)
		if i == len(p.spans)-1 || n > left {
			n = left
		}
		left -= n
		s.n = n * to.FrameBytes / to.FrameSamples
	}
	for i := range p.accounts {
		a := &p.accounts[i]
		a.SentSamples = int(float64(a.SentSamples)*ratio + 0.5)
		a.QueuedSamples = 0
		a.SampleRate = to.SampleRate
	}
	for _, s := range p.spans {
		p.accounts[s.account].QueuedSamples += to.SamplesIn(s.n)
	}
	p.drop(p.size)
	p.codec = to
	p.appendLocked(to.Encode(nil, converted))
}

// account returns the record of an item, if it is still known.
func (p *playout) account(itemID string) (ItemPlayed, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.accounts) - 1; i >= 0; i-- {
		if p.accounts[i].Ref.ItemID == itemID {
			return p.accounts[i], true
		}
	}
	return ItemPlayed{}, false
}
