package media

import (
	"testing"
	"time"
)

type press struct {
	digit rune
	dur   time.Duration
}

func feed(d *dtmfDecoder, out *[]press, ts uint32, event byte, end bool, dur uint16) {
	flags := byte(10) // volume
	if end {
		flags |= 0x80
	}
	d.push(time.Unix(0, 0), ts, []byte{event, flags, byte(dur >> 8), byte(dur)}, func(r rune, t time.Duration) { *out = append(*out, press{r, t}) })
}

func TestDTMFOnePressPerEvent(t *testing.T) {
	d := dtmfDecoder{clockRate: PCMU.ClockRate}
	var got []press
	// The packets of SIPp's dtmf_2833_1.pcap: '1', growing duration, end x3.
	for i, dur := range []uint16{0, 320, 640, 960, 1280, 1600, 1920} {
		_ = i
		feed(&d, &got, 13280, 1, false, dur)
	}
	for i := 0; i < 3; i++ {
		feed(&d, &got, 13280, 1, true, 2240)
	}
	if len(got) != 1 || got[0].digit != '1' || got[0].dur != 280*time.Millisecond {
		t.Fatalf("got %v, want one '1' of 280 ms", got)
	}
	// Then '#' and '*', the second with all its end packets lost.
	feed(&d, &got, 20000, 11, false, 160)
	feed(&d, &got, 20000, 11, true, 800)
	feed(&d, &got, 30000, 10, false, 160)
	feed(&d, &got, 30000, 10, false, 480)
	feed(&d, &got, 40000, 5, true, 800)
	want := []rune{'1', '#', '*', '5'}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %q", got, string(want))
	}
	for i, w := range want {
		if got[i].digit != w {
			t.Errorf("press %d: %q, want %q", i, got[i].digit, w)
		}
	}
	if got[2].dur != 60*time.Millisecond {
		t.Errorf("'*' without an end: duration %v, want the longest seen (60ms)", got[2].dur)
	}
}

func TestDTMFIgnoresNonKeysAndShortPayloads(t *testing.T) {
	d := dtmfDecoder{clockRate: PCMU.ClockRate}
	var got []press
	feed(&d, &got, 1, 16, true, 800) // flash
	feed(&d, &got, 2, 200, true, 800)
	d.push(time.Unix(0, 0), 3, []byte{1, 0x80}, func(r rune, _ time.Duration) { got = append(got, press{r, 0}) })
	if len(got) != 0 {
		t.Errorf("got %v from non-key events", got)
	}
}

func TestDTMFWithoutEndIsReportedAfterQuiet(t *testing.T) {
	d := dtmfDecoder{clockRate: PCMU.ClockRate}
	var got []press
	emit := func(r rune, t time.Duration) { got = append(got, press{r, t}) }
	t0 := time.Unix(100, 0)
	d.push(t0, 500, []byte{7, 10, 0, 160}, emit)
	d.push(t0.Add(50*time.Millisecond), 500, []byte{7, 10, 1, 64}, emit)
	d.expire(t0.Add(300*time.Millisecond), emit)
	if len(got) != 0 {
		t.Fatalf("reported %v before the event went quiet", got)
	}
	if want := t0.Add(50*time.Millisecond + dtmfEndTimeout); !d.deadline().Equal(want) {
		t.Errorf("deadline %v, want %v", d.deadline(), want)
	}
	d.expire(t0.Add(50*time.Millisecond+dtmfEndTimeout), emit)
	if len(got) != 1 || got[0].digit != '7' || got[0].dur != 40*time.Millisecond {
		t.Fatalf("got %v, want one '7' of 40 ms", got)
	}
	// A late end packet of the same event is not a second press.
	d.push(t0.Add(time.Second), 500, []byte{7, 0x8a, 1, 160}, emit)
	if len(got) != 1 || !d.deadline().IsZero() {
		t.Errorf("late end packet reported again: %v", got)
	}
}
