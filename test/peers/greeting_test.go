package peers

import (
	"github.com/voicebot/voicebot/realtime/realtimetest"
	"github.com/voicebot/voicebot/resample"
)

// greetingPCM is the demo model's greeting at 24 kHz, as it sends it.
func greetingPCM() []int16 { return realtimetest.DefaultGreeting() }

// downsample takes 24 kHz audio to 8 kHz the way voicebot does.
func downsample(pcm []int16) []int16 { return resample.MustNew(24000, 8000).Process(nil, pcm) }
