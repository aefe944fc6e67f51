package peers

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"

	"github.com/pion/rtp"
)

// bargeIn is one "barge-in: bot stopped" line of voicebot's JSON log.
type bargeIn struct {
	StopLatency string `json:"stop_latency"` // a duration as Go writes it: "1.2ms"
	DiscardedMS int    `json:"discarded_ms"`
	Truncated   []struct {
		ItemID     string `json:"item_id"`
		AudioEndMS int    `json:"audio_end_ms"`
	} `json:"truncated"`
}

func bargeIns(log string) []bargeIn {
	var out []bargeIn
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), `"message":"barge-in: bot stopped"`) {
			continue
		}
		var b bargeIn
		if json.Unmarshal(sc.Bytes(), &b) == nil {
			out = append(out, b)
		}
	}
	return out
}

// talkspurts splits a recorded stream at its marker bits and returns each
// talkspurt's audio length in ms: up to its last packet that is not the
// exact silence frame voicebot sends when it has nothing to play.
func talkspurts(pkts []rtp.Packet) []int {
	var out []int
	start := -1
	flush := func(end int) {
		if start < 0 {
			return
		}
		last := start
		for i := start; i < end; i++ {
			for _, b := range pkts[i].Payload {
				if b != 0xD5 {
					last = i
					break
				}
			}
		}
		out = append(out, (last-start+1)*20)
	}
	for i, p := range pkts {
		if p.Marker {
			flush(i)
			start = i
		}
	}
	flush(len(pkts))
	return out
}

// SIPp talks over the greeting, then over the echo 2.5 s into it. Each time
// the bot stops, and what the caller received of the interrupted answer is
// what voicebot told the model it heard.
func TestSIPpBargeIn(t *testing.T) {
	need(t, "sipp")
	vb := startVoicebot(t, 33400)
	rec := newRecorder(t)
	runSIPp(t, vb, rec, "uac_bargein.xml")

	bis := bargeIns(vb.logs())
	spurts := talkspurts(rec.packets())
	t.Logf("barge-ins %+v; talkspurts received (ms) %v", bis, spurts)
	if len(bis) < 2 || len(spurts) < 2 {
		t.Fatalf("want 2 barge-ins and 2 interrupted talkspurts, got %d and %d", len(bis), len(spurts))
	}
	for i := 0; i < 2; i++ {
		if len(bis[i].Truncated) != 1 {
			t.Fatalf("barge-in %d truncated %d items, want 1", i, len(bis[i].Truncated))
		}
		end := bis[i].Truncated[0].AudioEndMS
		if d := end - spurts[i]; d < -20 || d > 20 {
			t.Errorf("answer %d: truncated at %d ms, the caller received %d ms", i, end, spurts[i])
		}
		if bis[i].DiscardedMS <= 0 {
			t.Errorf("barge-in %d discarded nothing: the answer was not cut", i)
		}
	}
	// The echo was interrupted about 2.5 s in, well before its 6.4 s end.
	if spurts[1] < 1500 || spurts[1] > 4000 {
		t.Errorf("the echo played %d ms before the caller cut in (expected about 2500)", spurts[1])
	}
}
