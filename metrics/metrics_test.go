package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/outcome"
)

func TestNilMetricsAreSafe(t *testing.T) {
	var m *Metrics
	m.CallAnswered("inbound")
	m.CallEnded("inbound", "default", outcome.CallerHungUp, true, time.Second)
	m.CallRefused()
	m.SIPResponse(200)
	m.Media(media.Stats{}, media.Stats{})
	m.BargeIn(0, 1)
	m.Reconnect(true)
	m.Rollover()
	m.ModelError("x")
	m.Tool("end_call")
	m.ResponseLatency(time.Second)
	m.Sources(nil, nil)
}

func TestLabelsAreBounded(t *testing.T) {
	cases := map[string]string{
		"caller hung up":                           "caller_hung_up",
		"no RTP from the caller":                   "no_rtp_from_the_caller",
		"  Weird--Code!! ":                         "weird_code",
		strings.Repeat("a", 100):                   strings.Repeat("a", 64),
		"conversation_already_has_active_response": "conversation_already_has_active_response",
	}
	for in, want := range cases {
		if got := Label(in); got != want {
			t.Errorf("Label(%q) = %q, want %q", in, got, want)
		}
	}
	for code, want := range map[int]string{200: "200", 503: "503", 42: "other", 1000: "other"} {
		if got := codeLabel(code); got != want {
			t.Errorf("codeLabel(%d) = %q", code, got)
		}
	}
}

func TestExposition(t *testing.T) {
	m := New()
	var a, b media.Stats
	b.PacketsOut, b.PacketsIn, b.Lost, b.AvgLateness, b.Jitter = 100, 90, 2, time.Millisecond, 3*time.Millisecond
	b.Lateness[0], b.Lateness[3] = 60, 40
	m.Media(b, a)
	m.CallEnded("outbound", "sales", outcome.APIHungUp, true, time.Second)
	m.CallEnded("outbound", "sales", "caller hung up", false, 0) // not a value of the vocabulary
	m.CallRefused()
	m.Sources(func() map[string]uint64 { return map[string]uint64{"rate_limited": 7} },
		func() map[string]string { return map[string]string{"pbx": "registered", "backup": "failed"} })
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	s := string(body)
	for _, want := range []string{
		`voicebot_rtp_packets_total{direction="out"} 100`,
		`voicebot_rtp_packets_lost_total 2`,
		`voicebot_pacer_lateness_seconds_bucket{le="0.00025"} 60`,
		`voicebot_pacer_lateness_seconds_bucket{le="0.002"} 100`,
		`voicebot_pacer_lateness_seconds_count 100`,
		`voicebot_sip_invites_refused_total{reason="rate_limited"} 7`,
		`voicebot_registration_up{state="registered",trunk="pbx"} 1`,
		`voicebot_registration_up{state="failed",trunk="backup"} 0`,
		`voicebot_rtp_jitter_seconds_count 1`,
		`voicebot_calls_total{agent="sales",direction="outbound",outcome="api_hung_up"} 1`,
		`voicebot_calls_total{agent="sales",direction="outbound",outcome="error"} 1`,
		`voicebot_calls_total{agent="",direction="inbound",outcome="rejected"} 1`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
}
