package media

import "sync"

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
	SentSamples   int // 8 kHz samples that left in RTP packets
	QueuedSamples int // samples queued but not (yet) sent
}

// SentMS is the item's audio the caller was sent, in whole milliseconds.
func (p ItemPlayed) SentMS() int { return p.SentSamples * 1000 / SampleRate }

// playout is the queue between the model's audio (arriving in bursts, faster
// than real time) and the pacer (taking 160 samples every 20 ms). It is
// shared by the bridge goroutine (enqueue, flush) and the pacer goroutine
// (pop), hence the mutex; every operation is short and allocation-free once
// the ring has grown to the longest answer.
type playout struct {
	mu       sync.Mutex
	ring     []int16
	head     int // index of the oldest queued sample
	size     int // queued samples
	spans    []span
	accounts []ItemPlayed // recent items, oldest first
	paused   bool         // a barge-in decision: pop returns nothing, the queue is kept
	held     bool         // the call is on hold: the same, and a flush does not end it
}

// span is a run of queued samples belonging to one item.
type span struct {
	account int // index into accounts
	n       int
}

// maxAccounts bounds the per-item history kept for truncation decisions.
const maxAccounts = 16

func newPlayout() *playout {
	return &playout{ring: make([]int16, 2*SampleRate)}
}

// enqueue appends pcm for item; it reports whether the queue was empty before
// (the start of a talkspurt, which the pacer sends at once).
func (p *playout) enqueue(ref ItemRef, pcm []int16) (wasEmpty bool) {
	if len(pcm) == 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	wasEmpty = p.size == 0
	if p.size+len(pcm) > len(p.ring) {
		p.grow(p.size + len(pcm))
	}
	tail := (p.head + p.size) % len(p.ring)
	n := copy(p.ring[tail:], pcm)
	copy(p.ring, pcm[n:])
	p.size += len(pcm)

	acc := p.accountFor(ref)
	p.accounts[acc].QueuedSamples += len(pcm)
	if k := len(p.spans); k > 0 && p.spans[k-1].account == acc {
		p.spans[k-1].n += len(pcm)
	} else {
		p.spans = append(p.spans, span{account: acc, n: len(pcm)})
	}
	return wasEmpty
}

func (p *playout) grow(need int) {
	size := len(p.ring) * 2
	for size < need {
		size *= 2
	}
	ring := make([]int16, size)
	n := copy(ring, p.ring[p.head:min(len(p.ring), p.head+p.size)])
	copy(ring[n:], p.ring[:p.size-n])
	p.ring, p.head = ring, 0
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
	p.accounts = append(p.accounts, ItemPlayed{Ref: ref})
	return len(p.accounts) - 1
}

// pop moves up to len(frame) samples into frame and returns how many; the
// rest of frame is zeroed (the tail of a talkspurt is padded with silence).
func (p *playout) pop(frame []int16) int {
	n, _ := p.take(frame, false)
	return n
}

// take is pop for the pacer, in one lock: it also reports a call on hold
// (nothing at all is to be sent), and with wait it leaves the queue alone
// (keys are being sent; bot audio waits for them).
func (p *playout) take(frame []int16, wait bool) (n int, held bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held || p.paused || wait {
		clear(frame)
		return 0, p.held
	}
	n = min(len(frame), p.size)
	first := copy(frame[:n], p.ring[p.head:min(len(p.ring), p.head+n)])
	copy(frame[first:n], p.ring[:n-first])
	clear(frame[n:])
	p.head = (p.head + n) % len(p.ring)
	p.size -= n
	for left := n; left > 0 && len(p.spans) > 0; {
		s := &p.spans[0]
		k := min(left, s.n)
		s.n -= k
		left -= k
		p.accounts[s.account].SentSamples += k
		p.accounts[s.account].QueuedSamples -= k
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

// queued is the number of samples waiting.
func (p *playout) queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.size
}

// flush drops everything queued and returns the accounts of the items that
// were playing or queued, with what was sent of each.
func (p *playout) flush(dst []ItemPlayed) []ItemPlayed {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.spans {
		dst = append(dst, p.accounts[s.account])
	}
	for _, s := range p.spans {
		p.accounts[s.account].QueuedSamples -= s.n
	}
	p.spans = p.spans[:0]
	p.head, p.size = 0, 0
	p.paused = false
	return dst
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
