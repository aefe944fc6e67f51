package server

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/internal/testpeer"
	"github.com/voicebot/voicebot/sip"
)

func scrape(t *testing.T, r *rig) string {
	t.Helper()
	res, err := http.Get("http://" + r.api + "/metrics") // no token: scrapers have none
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("/metrics: %d", res.StatusCode)
	}
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// metric is the value of the first sample whose line starts with prefix.
func metric(text, prefix string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

func probe(t *testing.T, r *rig, path string) int {
	t.Helper()
	res, err := http.Get("http://" + r.api + path)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// A call's life shows in /metrics: the call by outcome and agent, the SIP
// answers, RTP both ways, pacer lateness, the answer's latency; /healthz and
// /readyz answer probes, and a draining voicebot is not ready.
func TestMetricsAndProbes(t *testing.T) {
	r := startRig(t, func(c *config.Config) { c.API.Listen, c.API.Token = "127.0.0.1:0", apiToken }, nil)
	if probe(t, r, "/healthz") != 200 || probe(t, r, "/readyz") != 200 {
		t.Fatal("probes not 200 on a voicebot ready for calls")
	}
	c := r.caller()
	if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	waitFor(t, "greeting", 5*time.Second, func() bool { return rmsOf(audible(c.Received())) > 100 })
	waitFor(t, "calls_active 1 during the call", 2*time.Second, func() bool {
		v, _ := metric(scrape(t, r), `voicebot_calls_active{direction="inbound"}`)
		return v == 1
	})
	time.Sleep(800 * time.Millisecond)
	speech := testpeer.Speech(1.2, 3)
	before := len(c.Received())
	c.SendAudio(speech, 100, 16000, 0xCAFE)
	waitForEcho(t, c, before, speech, 8*time.Second)
	if code, err := c.Bye(5 * time.Second); err != nil || code != 200 {
		t.Fatalf("BYE: %d %v", code, err)
	}
	waitFor(t, "call log", 3*time.Second, func() bool { return strings.Contains(r.logs.String(), `"message":"call: ended"`) })
	text := scrape(t, r)
	want := map[string]func(float64) bool{
		`voicebot_calls_total{agent="default",direction="inbound",outcome="caller_hung_up"}`: func(v float64) bool { return v == 1 },
		`voicebot_calls_active{direction="inbound"}`:                                         func(v float64) bool { return v == 0 },
		`voicebot_sip_responses_sent_total{code="200"}`:                                      func(v float64) bool { return v >= 2 }, // the INVITE's and the BYE's
		`voicebot_rtp_packets_total{direction="in"}`:                                         func(v float64) bool { return v >= 60 },
		`voicebot_rtp_packets_total{direction="out"}`:                                        func(v float64) bool { return v >= 100 },
		`voicebot_rtp_packets_lost_total`:                                                    func(v float64) bool { return v == 0 },
		`voicebot_pacer_lateness_seconds_count`:                                              func(v float64) bool { return v >= 100 },
		`voicebot_response_latency_seconds_count`:                                            func(v float64) bool { return v >= 1 },
		`voicebot_rtp_jitter_seconds_count`:                                                  func(v float64) bool { return v >= 1 },
		`voicebot_call_duration_seconds_count`:                                               func(v float64) bool { return v == 1 },
		`go_goroutines`:                                                                      func(v float64) bool { return v > 0 },
	}
	for name, ok := range want {
		v, found := metric(text, name)
		if !found || !ok(v) {
			t.Errorf("%s = %v (found %v)", name, v, found)
		}
	}
	if m := regexp.MustCompile(`voicebot_pacer_lateness_seconds_bucket\{le="0.002"\} (\d+)`).FindStringSubmatch(text); m == nil {
		t.Error("no pacer lateness buckets")
	}
	// Draining, with a call still up: not ready, so a balancer sends calls
	// elsewhere; still healthy.
	last := r.caller()
	if res, err := last.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	r.voicebot.Drain()
	waitFor(t, "not ready while draining", 3*time.Second, func() bool { return probe(t, r, "/readyz") == 503 })
	if probe(t, r, "/healthz") != 200 {
		t.Error("a draining voicebot is still healthy")
	}
	last.Bye(5 * time.Second)
}

// /readyz says in words why a trunk is not registered.
func TestRegistrationProblemInWords(t *testing.T) {
	for r, want := range map[sip.RegistrationStatus]string{
		{Trunk: "pbx", State: sip.RegFailed, Code: 403, Error: "403 Forbidden", Failures: 3}: "registration to trunk pbx failed (403 Forbidden; 3 attempts in a row)",
		{Trunk: "pbx", State: sip.RegFailed, Failures: 1}:                                    "registration to trunk pbx failed (no answer; 1 attempt)",
		{Trunk: "pbx", State: sip.Registering}:                                               "not yet registered to trunk pbx",
	} {
		if got := registrationProblem(r); got != want {
			t.Errorf("%+v: %q, want %q", r, got, want)
		}
	}
}
