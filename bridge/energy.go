package bridge

import (
	"math"
	"sync/atomic"
)

// energyVAD measures the caller's speech from frame energy, on the media
// receive goroutine. It keeps a running total of voiced milliseconds (the
// bridge reads it to tell a cough from an interruption) and, when the local
// barge-in trigger is on, signals the bridge as soon as speech has lasted
// minSpeechMS.
type energyVAD struct {
	threshold   float64 // mean square power a frame must exceed (from dBFS)
	minSpeechMS int
	trigger     chan struct{} // nil: measure only
	voicedMS    atomic.Int64  // total voiced time so far
	inputMS     atomic.Int64  // total caller audio so far (the input timeline)
	runMS       int           // consecutive voiced ms
	quietMS     int           // consecutive unvoiced ms
	armed       bool          // may trigger (re-armed after a pause in speech)
	perMS       int           // samples a millisecond: the call codec's rate
}

// hangMS of quiet re-arm the trigger: one utterance triggers once.
const hangMS = 300

func newEnergyVAD(thresholdDB float64, minSpeechMS, sampleRate int, trigger chan struct{}) *energyVAD {
	amp := 32768 * math.Pow(10, thresholdDB/20)
	return &energyVAD{threshold: amp * amp, minSpeechMS: minSpeechMS, trigger: trigger, armed: true, perMS: sampleRate / 1000}
}

func (v *energyVAD) frame(pcm []int16) {
	if len(pcm) == 0 {
		return
	}
	var sum float64
	for _, s := range pcm {
		sum += float64(s) * float64(s)
	}
	ms := len(pcm) / v.perMS
	v.inputMS.Add(int64(ms))
	if sum/float64(len(pcm)) > v.threshold {
		v.voicedMS.Add(int64(ms))
		v.runMS += ms
		v.quietMS = 0
		if v.armed && v.runMS >= v.minSpeechMS && v.trigger != nil {
			v.armed = false
			select {
			case v.trigger <- struct{}{}:
			default:
			}
		}
		return
	}
	v.quietMS += ms
	if v.quietMS >= hangMS {
		v.runMS = 0
		v.armed = true
	}
}
