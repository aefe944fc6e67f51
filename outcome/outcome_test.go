package outcome

import "testing"

// The values are an interface: outside tests and dashboards match them.
func TestVocabulary(t *testing.T) {
	want := []string{"caller_hung_up", "bot_hung_up", "api_hung_up", "transferred", "busy", "no_answer", "declined",
		"unreachable", "cancelled", "rejected", "timeout", "model_failed", "drained", "error"}
	all := All()
	if len(all) != len(want) {
		t.Fatalf("%d outcomes, want %d", len(all), len(want))
	}
	for i, o := range all {
		if string(o) != want[i] || !o.Valid() {
			t.Errorf("outcome %d is %q, want %q", i, o, want[i])
		}
	}
	if Outcome("local_bye").Valid() || Outcome("").Valid() {
		t.Error("a value outside the vocabulary is valid")
	}
}

func TestForSIPFailure(t *testing.T) {
	for code, want := range map[int]Outcome{486: Busy, 600: Busy, 408: NoAnswer, 480: NoAnswer, 404: Declined,
		403: Declined, 603: Declined, 503: Declined, 200: Error} {
		if got := ForSIPFailure(code); got != want {
			t.Errorf("%d: %s, want %s", code, got, want)
		}
	}
}

func TestString(t *testing.T) {
	for _, c := range []struct {
		e    End
		want string
	}{
		{End{NoAnswer, 408, "no answer within 8s"}, "no_answer (408 no answer within 8s)"},
		{End{Timeout, 0, "no RTP from the caller for 30s"}, "timeout (no RTP from the caller for 30s)"},
		{End{Outcome: CallerHungUp}, "caller_hung_up"},
	} {
		if got := c.e.String(); got != c.want {
			t.Errorf("%q, want %q", got, c.want)
		}
	}
}
