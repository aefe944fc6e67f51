package peers

import (
	"strings"
	"testing"
)

// SIPp presses 1 as RFC 4733 events over the greeting: voicebot stops the
// greeting, gives the model the key as text, and the model's answer comes back.
func TestSIPpKeyPress(t *testing.T) {
	need(t, "sipp")
	vb := startVoicebot(t, 33600)
	rec := newRecorder(t)
	runSIPp(t, vb, rec, "uac_dtmf.xml")
	logs := vb.logs()
	var presses []string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"message":"dtmf: caller pressed a key"`) {
			presses = append(presses, line)
		}
	}
	if len(presses) != 1 {
		t.Fatalf("%d key presses reported, want exactly 1 (its end packet is sent three times)", len(presses))
	}
	if !strings.Contains(presses[0], `"key":"1"`) || !strings.Contains(presses[0], `"source":"rfc4733"`) {
		t.Errorf("reported %s, want key 1 from RFC 4733", presses[0])
	}
	if len(bargeIns(logs)) != 1 {
		t.Errorf("the key press did not stop the greeting")
	}
	spurts := talkspurts(rec.packets())
	if len(spurts) < 2 {
		t.Fatalf("talkspurts %v: want the cut greeting and the answer to the key", spurts)
	}
	t.Logf("talkspurts (ms): %v", spurts)
}
