package server

import (
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/config"
)

// media.srtp decides which offers are taken: required refuses plain RTP,
// off refuses RTP/SAVP, each with 488 and the reason in a Warning.
func TestSRTPPolicyRefusesWithA488(t *testing.T) {
	savp := func(c interface{ Offer() string }) string {
		o := strings.Replace(c.Offer(), "RTP/AVP", "RTP/SAVP", 1)
		return o + "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd\r\n"
	}
	for _, tc := range []struct {
		policy string
		secure bool
		want   int
	}{{"required", false, 488}, {"off", true, 488}, {"optional", true, 200}, {"required", true, 200}} {
		t.Run(tc.policy, func(t *testing.T) {
			r := startRig(t, func(c *config.Config) { c.Media.SRTP = tc.policy }, nil)
			c := r.caller()
			body := c.Offer()
			if tc.secure {
				body = savp(c)
			}
			res, err := c.Invite(body, 5*time.Second)
			if err != nil || res.StatusCode != tc.want {
				t.Fatalf("srtp %s, secure offer %v: %v %v, want %d", tc.policy, tc.secure, res, err, tc.want)
			}
			if tc.want == 200 {
				if !strings.Contains(string(res.Body()), "RTP/SAVP") || !strings.Contains(string(res.Body()), "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:") {
					t.Errorf("answer is not SRTP:\n%s", res.Body())
				}
				c.Bye(5 * time.Second)
			} else if w := res.GetHeader("Warning"); w == nil || !strings.Contains(w.Value(), "srtp") {
				t.Errorf("488 without the reason: %v", w)
			}
		})
	}
}
