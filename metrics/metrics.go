// Package metrics is voicebot's Prometheus instrumentation: what every call
// is doing (calls by outcome and agent, RTP, jitter, pacer lateness,
// response and barge-in latency, model reconnects and errors), what the SIP
// side answers and refuses, and the registrations. Producers call its
// methods, all safe on a nil *Metrics (metrics off) and none on a per-frame
// path: calls report their media in deltas every few seconds.
package metrics

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/outcome"
)

// Metrics holds every collector, in a registry of its own.
type Metrics struct {
	reg *prometheus.Registry

	callsActive     *prometheus.GaugeVec
	callsTotal      *prometheus.CounterVec
	webhooks        *prometheus.CounterVec
	callDuration    prometheus.Histogram
	sipResponses    *prometheus.CounterVec
	rtpPackets      *prometheus.CounterVec
	rtpLost         prometheus.Counter
	jitter          prometheus.Histogram
	responseLatency prometheus.Histogram
	bargeIns        prometheus.Counter
	bargeInStop     prometheus.Histogram
	truncates       prometheus.Counter
	reconnects      *prometheus.CounterVec
	rollovers       prometheus.Counter
	memory          *prometheus.CounterVec
	modelErrors     *prometheus.CounterVec
	modelResponses  *prometheus.CounterVec
	tools           *prometheus.CounterVec

	lateness latenessCollector

	mu        sync.Mutex
	refused   func() map[string]uint64
	regStates func() map[string]string
}

// New returns the collectors registered, with the Go and process ones.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	sec := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "voicebot", Name: name, Help: help, Buckets: buckets})
	}
	m.callsActive = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "voicebot", Name: "calls_active",
		Help: "Calls in progress (answered), by direction."}, []string{"direction"})
	m.callsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "voicebot", Name: "calls_total",
		Help: "Calls ended, by direction, agent (route) and outcome (caller_hung_up, bot_hung_up, api_hung_up, transferred, busy, no_answer, declined, unreachable, cancelled, rejected, timeout, model_failed, drained, error). INVITEs refused before becoming calls count as rejected with agent=\"\"."}, []string{"direction", "agent", "outcome"})
	m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "voicebot", Name: "webhook_deliveries_total",
		Help: "Call-ended webhook deliveries, by result: delivered, failed (attempts used up or refused), dropped (the queue was full)."}, []string{"result"})
	m.callDuration = sec("call_duration_seconds", "Length of answered calls.", []float64{5, 15, 30, 60, 120, 300, 600, 1800, 3600})
	m.sipResponses = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "voicebot", Name: "sip_responses_sent_total",
		Help: "SIP responses voicebot sent, by status code."}, []string{"code"})
	m.rtpPackets = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "voicebot", Name: "rtp_packets_total",
		Help: "RTP packets, by direction (in: accepted from callers; out: sent)."}, []string{"direction"})
	m.rtpLost = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "voicebot", Name: "rtp_packets_lost_total",
		Help: "Caller RTP packets that never arrived (sequence gaps)."})
	m.jitter = sec("rtp_jitter_seconds", "RFC 3550 interarrival jitter of callers' RTP, sampled per call every few seconds.",
		[]float64{.001, .002, .005, .01, .02, .04, .08, .16})
	m.responseLatency = sec("response_latency_seconds", "From the caller's end of speech to the bot's first audio of its answer.",
		[]float64{.2, .3, .4, .5, .6, .8, 1, 1.5, 2, 3, 5})
	m.bargeIns = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "voicebot", Name: "barge_ins_total",
		Help: "Times the caller talked over the bot and it stopped."})
	m.bargeInStop = sec("barge_in_stop_seconds", "From the caller's speech being heard to the bot's last audio packet.",
		[]float64{0, .005, .01, .02, .04, .08, .16})
	m.truncates = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "voicebot", Name: "truncates_total",
		Help: "conversation.item.truncate events sent (what the caller heard of an interrupted answer)."})
	m.reconnects = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "voicebot", Name: "model_reconnects_total",
		Help: "Lost model connections, by result: resumed, or failed (the budget ran out)."}, []string{"result"})
	m.rollovers = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "voicebot", Name: "model_rollovers_total",
		Help: "Model sessions replaced before they expired."})
	m.memory = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "voicebot", Name: "memory_total",
		Help: "Caller memory, by event: recalled (earlier turns given to the model), new (a caller with none), kept (a call stored), failed (the store did not answer; the call went on without)."}, []string{"event"})
	m.modelErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "voicebot", Name: "model_errors_total",
		Help: "Error events from the model, by code."}, []string{"code"})
	m.modelResponses = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "voicebot", Name: "model_responses_total",
		Help: "Responses the model finished, by status: completed, cancelled (barge-in), incomplete (cut short), failed."}, []string{"status"})
	m.tools = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "voicebot", Name: "tool_calls_total",
		Help: "Tool calls the model made, by tool."}, []string{"tool"})
	m.lateness.desc = prometheus.NewDesc("voicebot_pacer_lateness_seconds",
		"How late each 20 ms frame was sent against its exact schedule.", nil, nil)
	m.reg.MustRegister(m.webhooks)
	m.reg.MustRegister(m.callsActive, m.callsTotal, m.callDuration, m.sipResponses, m.rtpPackets, m.rtpLost, m.jitter,
		m.responseLatency, m.bargeIns, m.bargeInStop, m.truncates, m.reconnects, m.rollovers, m.modelErrors, m.modelResponses, m.tools,
		m.memory, &m.lateness, (*funcCollector)(m),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, d := range []string{"inbound", "outbound"} {
		m.callsActive.WithLabelValues(d)
	}
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Sources sets where refusal counts and registration states are read at
// each scrape (the SIP user agent keeps them).
func (m *Metrics) Sources(refused func() map[string]uint64, registrations func() map[string]string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.refused, m.regStates = refused, registrations
	m.mu.Unlock()
}

// CallAnswered counts a call in.
func (m *Metrics) CallAnswered(direction string) {
	if m != nil {
		m.callsActive.WithLabelValues(direction).Inc()
	}
}

// CallEnded counts a call out, answered or not, by its outcome (a value
// outside the vocabulary counts as error: the label stays bounded).
func (m *Metrics) CallEnded(direction, agent string, o outcome.Outcome, answered bool, d time.Duration) {
	if m == nil {
		return
	}
	if answered {
		m.callsActive.WithLabelValues(direction).Dec()
		m.callDuration.Observe(d.Seconds())
	}
	if !o.Valid() {
		o = outcome.Error
	}
	m.callsTotal.WithLabelValues(direction, agent, string(o)).Inc()
}

// CallRefused counts an inbound INVITE refused before it became a call
// (admission, capacity, an offer voicebot cannot take) as a call ended
// rejected, with no agent: none was chosen yet.
func (m *Metrics) CallRefused() {
	if m != nil {
		m.callsTotal.WithLabelValues("inbound", "", string(outcome.Rejected)).Inc()
	}
}

// WebhookDelivery counts a call-ended webhook's delivery by its result.
func (m *Metrics) WebhookDelivery(result string) {
	if m == nil {
		return
	}
	m.webhooks.WithLabelValues(result).Inc()
}

// SIPResponse counts a response sent.
func (m *Metrics) SIPResponse(code int) {
	if m != nil {
		m.sipResponses.WithLabelValues(codeLabel(code)).Inc()
	}
}

// Media adds what a call's RTP did since its last report (now minus last).
func (m *Metrics) Media(now, last media.Stats) {
	if m == nil {
		return
	}
	m.rtpPackets.WithLabelValues("in").Add(float64(now.PacketsIn - last.PacketsIn))
	m.rtpPackets.WithLabelValues("out").Add(float64(now.PacketsOut - last.PacketsOut))
	m.rtpLost.Add(float64(now.Lost - last.Lost))
	if now.PacketsIn > last.PacketsIn {
		m.jitter.Observe(now.Jitter.Seconds())
	}
	m.lateness.add(now.Lateness, last.Lateness, now.AvgLateness, now.PacketsOut, last.PacketsOut)
}

// ResponseLatency records one answer's latency.
func (m *Metrics) ResponseLatency(d time.Duration) {
	if m != nil {
		m.responseLatency.Observe(d.Seconds())
	}
}

// BargeIn records an interruption: how long the bot took to stop, and how
// many items were truncated.
func (m *Metrics) BargeIn(stop time.Duration, truncated int) {
	if m == nil {
		return
	}
	m.bargeIns.Inc()
	m.bargeInStop.Observe(stop.Seconds())
	m.truncates.Add(float64(truncated))
}

// Reconnect records a lost model connection and whether it came back.
func (m *Metrics) Reconnect(resumed bool) {
	if m == nil {
		return
	}
	r := "failed"
	if resumed {
		r = "resumed"
	}
	m.reconnects.WithLabelValues(r).Inc()
}

// Rollover records a session replaced before its expiry.
func (m *Metrics) Rollover() {
	if m != nil {
		m.rollovers.Inc()
	}
}

// Memory counts a caller memory event: recalled, new, kept or failed.
func (m *Metrics) Memory(event string) {
	if m != nil {
		m.memory.WithLabelValues(event).Inc()
	}
}

// ModelError counts a model error event.
func (m *Metrics) ModelError(code string) {
	if m != nil {
		if code == "" {
			code = "none"
		}
		m.modelErrors.WithLabelValues(Label(code)).Inc()
	}
}

// ModelResponse counts a response.done by its status.
func (m *Metrics) ModelResponse(status string) {
	if m != nil {
		if status == "" {
			status = "none"
		}
		m.modelResponses.WithLabelValues(Label(status)).Inc()
	}
}

// Tool counts a tool call.
func (m *Metrics) Tool(name string) {
	if m != nil {
		m.tools.WithLabelValues(Label(name)).Inc()
	}
}

// Label makes a reason a label value: lower case, runs of anything else
// than letters and digits as one underscore, bounded, so what a remote
// party writes cannot make label values without end.
func Label(s string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			under = false
		} else if !under && b.Len() > 0 {
			b.WriteByte('_')
			under = true
		}
		if b.Len() >= 64 {
			break
		}
	}
	return strings.TrimSuffix(b.String(), "_")
}

func codeLabel(code int) string {
	if code < 100 || code > 699 {
		return "other"
	}
	return string(rune('0'+code/100)) + string(rune('0'+code/10%10)) + string(rune('0'+code%10))
}

// latenessCollector is the pacer lateness histogram, summed from every
// call's own (media keeps fixed buckets so its hot path stays free of
// Prometheus).
type latenessCollector struct {
	desc    *prometheus.Desc
	buckets [len(media.LatenessBounds) + 1]atomic.Uint64
	sumNS   atomic.Int64
}

func (c *latenessCollector) add(now, last media.LatenessHistogram, avg time.Duration, packets, lastPackets uint64) {
	for i := range now {
		c.buckets[i].Add(now[i] - last[i])
	}
	c.sumNS.Add(int64(avg) * int64(packets-lastPackets)) // the average stands in for the exact sum
}

func (c *latenessCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *latenessCollector) Collect(ch chan<- prometheus.Metric) {
	cum := map[float64]uint64{}
	var total uint64
	for i, b := range media.LatenessBounds {
		total += c.buckets[i].Load()
		cum[b.Seconds()] = total
	}
	total += c.buckets[len(media.LatenessBounds)].Load()
	ch <- prometheus.MustNewConstHistogram(c.desc, total, time.Duration(c.sumNS.Load()).Seconds(), cum)
}

// funcCollector reads the SIP side's counts at scrape time.
type funcCollector Metrics

var (
	refusedDesc = prometheus.NewDesc("voicebot_sip_invites_refused_total",
		"INVITEs refused before becoming calls, by reason (rate_limited, source_not_allowed, auth_failed, challenged, over_capacity, shutting_down).",
		[]string{"reason"}, nil)
	registrationDesc = prometheus.NewDesc("voicebot_registration_up",
		"1 while the trunk's registration is in place, else 0.", []string{"trunk", "state"}, nil)
)

func (f *funcCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- refusedDesc
	ch <- registrationDesc
}

func (f *funcCollector) Collect(ch chan<- prometheus.Metric) {
	f.mu.Lock()
	refused, regs := f.refused, f.regStates
	f.mu.Unlock()
	if refused != nil {
		for reason, n := range refused() {
			ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.CounterValue, float64(n), reason)
		}
	}
	if regs != nil {
		for trunk, state := range regs() {
			up := 0.0
			if state == "registered" {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(registrationDesc, prometheus.GaugeValue, up, trunk, state)
		}
	}
}
