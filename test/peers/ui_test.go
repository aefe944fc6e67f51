package peers

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/realtime/realtimetest"
)

// dumpDOM loads url in headless Chromium, lets its scripts run for a few
// seconds (fetching the calls and their live events), and returns the DOM.
func dumpDOM(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=4000", "--dump-dom", url).Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return string(out)
}

// The built-in page, in a real browser: given the token in the URL's
// fragment, it lists the call in progress and shows its transcript as it
// happens: the greeting first, the caller's turn once they have spoken.
func TestLiveViewInChromium(t *testing.T) {
	need(t, "chromium", "sipp")
	vb := startVoicebot(t, 34200, withAPI())
	rec := newRecorder(t)
	s := startSIPp(t, "uac_echo.xml", vb.addr, "-key", "record_port", itoa(rec.port()))
	vb.waitLog(t, `"who":"bot"`, 1, 10*time.Second)
	m := regexp.MustCompile(`"call_id":"([^"]+)"`).FindStringSubmatch(vb.logs())
	if m == nil {
		t.Fatal("no call id in the log")
	}
	url := "http://" + vb.api + "/ui#token=" + apiToken

	dom := dumpDOM(t, url)
	for _, want := range []string{`id="call-` + m[1] + `"`, "agent default", "bot: " + realtimetest.GreetingText} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %q:\n%s", want, dom[strings.Index(dom, "<body"):])
		}
	}
	if strings.Contains(dom, apiToken) {
		t.Error("the token stays in the page")
	}
	// Once the caller has spoken (7 s of speech), their turn shows too.
	vb.waitLog(t, `"who":"caller"`, 1, 20*time.Second)
	if dom := dumpDOM(t, url); !strings.Contains(dom, `class="line who-caller">caller: `) {
		t.Errorf("the caller's turn is not on the page:\n%s", dom[strings.Index(dom, "<body"):])
	}
	if err := s.wait(40 * time.Second); err != nil {
		t.Fatal(err)
	}
}
