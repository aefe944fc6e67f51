package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/voicebot/voicebot/media"
)

// Validation: every value checked, each error naming its key.

// Validate checks every value and names the key of the first bad one.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	oneOf(bad, "log.level", c.Log.Level, "debug", "info", "warn", "error")
	c.validateMemory(bad)
	c.validateCluster(bad)
	c.validateConversations(bad)
	if w := c.Webhooks.CallEnded; w.URL != "" {
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("webhooks.call_ended.url", "want an http:// or https:// URL")
		}
		if w.Secret == "" {
			bad("webhooks.call_ended.secret", "required: it signs every delivery (X-Voicebot-Signature)")
		}
		if d := w.Timeout.D(); d < 100*time.Millisecond || d > time.Minute {
			bad("webhooks.call_ended.timeout", "must be 100ms-1m, got %s", w.Timeout)
		}
		if w.Retries < 0 || w.Retries > 10 {
			bad("webhooks.call_ended.retries", "want 0 to 10, got %d", w.Retries)
		}
	}
	oneOf(bad, "log.format", c.Log.Format, "console", "json")

	if _, err := netip.ParseAddrPort(c.SIP.Listen); err != nil {
		bad("sip.listen", "want IP:port, got %q", c.SIP.Listen)
	}
	if len(c.SIP.Transports) == 0 {
		bad("sip.transports", "at least one of udp, tcp")
	}
	for _, t := range c.SIP.Transports {
		oneOf(bad, "sip.transports", t, "udp", "tcp")
	}
	if t := c.SIP.TLS; t.Listen != "" {
		if _, err := netip.ParseAddrPort(t.Listen); err != nil {
			bad("sip.tls.listen", "want IP:port, got %q", t.Listen)
		}
		if t.CertFile == "" || t.KeyFile == "" {
			bad("sip.tls.cert_file", "cert_file and key_file are required with sip.tls.listen")
		}
	}
	oneOf(bad, "media.srtp", c.Media.SRTP, "off", "optional", "required")
	c.validateResilience(bad)
	if h := c.SIP.ExternalAddress; h != "" && (strings.ContainsAny(h, " /:@") && net.ParseIP(h) == nil) {
		bad("sip.external_address", "want a host name or IP address, got %q", h)
	}
	if len(c.SIP.Codecs) == 0 {
		bad("sip.codecs", "at least one of %s", strings.Join(media.CodecNames(), ", "))
	}
	for _, k := range c.SIP.Codecs {
		oneOf(bad, "sip.codecs", k, media.CodecNames()...)
	}
	if c.SIP.AckTimeout.D() < time.Second {
		bad("sip.ack_timeout", "must be at least 1s, got %s", c.SIP.AckTimeout)
	}

	if c.Media.IP != "" {
		if _, err := netip.ParseAddr(c.Media.IP); err != nil {
			bad("media.ip", "want an IP address, got %q", c.Media.IP)
		}
	}
	if c.Media.PortMin < 1024 || c.Media.PortMax > 65534 || c.Media.PortMin > c.Media.PortMax {
		bad("media.port_min", "RTP range %d-%d must lie within 1024-65534 with min <= max", c.Media.PortMin, c.Media.PortMax)
	}
	if c.Media.ReorderWindow < 0 || c.Media.ReorderWindow > 16 {
		bad("media.reorder_window", "must be 0-16 packets, got %d", c.Media.ReorderWindow)
	}
	if d := c.Media.InputSilenceAfter.D(); d < 20*time.Millisecond || d > 10*time.Second {
		bad("media.input_silence_after", "must be 20ms-10s, got %s", c.Media.InputSilenceAfter)
	}

	oneOf(bad, "realtime.provider", c.Realtime.Provider, "auto", "openai", "azure", "demo")
	oneOf(bad, "realtime.dialect", c.Realtime.Dialect, "ga", "beta")
	c.validateDialect(bad)
	if u := c.Realtime.URL; u != "" {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "ws" && pu.Scheme != "wss") || pu.Host == "" {
			// The value is not echoed: a URL may carry a key in its query.
			bad("realtime.url", "want a ws:// or wss:// URL")
		}
	}
	if c.Realtime.Model == "" {
		bad("realtime.model", "must not be empty")
	}
	if c.Realtime.Provider == "azure" && c.Realtime.URL == "" {
		if c.Realtime.Azure.Endpoint == "" {
			bad("realtime.azure.endpoint", "required for provider azure")
		}
		if c.Realtime.Azure.Deployment == "" {
			bad("realtime.azure.deployment", "required for provider azure")
		}
	}
	if c.Realtime.Provider == "openai" && c.Realtime.APIKey == "" {
		bad("realtime.api_key", "provider openai needs a key (set OPENAI_API_KEY)")
	}
	if c.Realtime.ConnectTimeout.D() <= 0 {
		bad("realtime.connect_timeout", "must be positive")
	}
	if d := c.Realtime.AppendInterval.D(); d < 20*time.Millisecond || d > 500*time.Millisecond || d%(20*time.Millisecond) != 0 {
		bad("realtime.append_interval", "must be a multiple of 20ms from 20ms to 500ms, got %s", c.Realtime.AppendInterval)
	}

	oneOf(bad, "barge_in.mode", c.BargeIn.Mode, "immediate", "pause")
	if v := c.BargeIn.MinSpeechMS; v < 0 || v > 5000 {
		bad("barge_in.min_speech_ms", "must be 0-5000, got %d", v)
	}
	if v := c.BargeIn.ResumeAfterMS; v < 100 || v > 30000 {
		bad("barge_in.resume_after_ms", "must be 100-30000, got %d", v)
	}
	if v := c.BargeIn.LocalVADThresholdDB; v < -90 || v > 0 {
		bad("barge_in.local_vad_threshold_db", "must be -90 to 0 dBFS, got %g", v)
	}
	if v := c.BargeIn.LocalVADMinSpeechMS; v < 20 || v > 2000 {
		bad("barge_in.local_vad_min_speech_ms", "must be 20-2000, got %d", v)
	}
	if c.Demo.Speed < 1 || c.Demo.Speed > 100 {
		bad("demo.speed", "must be 1-100, got %g", c.Demo.Speed)
	}
	oneOf(bad, "media.symmetric_rtp", c.Media.SymmetricRTP, "auto", "on", "off")
	c.validateCalls(bad)
	return errors.Join(errs...)
}

// validateMemory checks the store, and each profile's memory bounds.
func (c *Config) validateConversations(bad func(key, format string, args ...any)) {
	v := c.Conversations
	if !v.Enabled {
		return
	}
	if d := v.TTL.D(); d < time.Minute || d > 30*24*time.Hour {
		bad("conversations.ttl", "want 1m to 720h, got %s", v.TTL)
	}
	if d := v.IdleSession.D(); d < 0 || d > 10*time.Minute {
		bad("conversations.idle_session", "want 0 (close after every turn) to 10m, got %s", v.IdleSession)
	}
	if v.MaxTurns < 1 || v.MaxTurns > 10000 {
		bad("conversations.max_turns", "want 1 to 10000, got %d", v.MaxTurns)
	}
	if v.MaxBody < 1<<10 || v.MaxBody > 200<<20 {
		bad("conversations.max_body", "want 1024 to 209715200 bytes, got %d", v.MaxBody)
	}
	if d := v.MaxAudio.D(); d < time.Second || d > 10*time.Minute {
		bad("conversations.max_audio", "want 1s to 10m, got %s", v.MaxAudio)
	}
}

func (c *Config) validateMemory(bad func(key, format string, args ...any)) {
	oneOf(bad, "memory.store", c.Memory.Store, "sqlite", "redis")
	if c.Memory.Store == "sqlite" && c.Memory.Path == "" {
		bad("memory.path", "the sqlite file is needed")
	}
	if c.Memory.Store == "redis" {
		if _, _, err := net.SplitHostPort(c.Memory.Redis.Addr); err != nil {
			bad("memory.redis.addr", "want host:port, got %q", c.Memory.Redis.Addr)
		}
	}
	if c.Memory.TTL < 0 {
		bad("memory.ttl", "must not be negative")
	}
	if d := c.Memory.Timeout.D(); d <= 0 || d > 10*time.Second {
		bad("memory.timeout", "want more than 0 and at most 10s, got %s", c.Memory.Timeout)
	}
	check := func(key string, m AgentMemory) {
		if !m.Enabled {
			return
		}
		if m.MaxTurns < 1 || m.MaxTurns > 100 {
			bad(key+".max_turns", "want 1 to 100, got %d", m.MaxTurns)
		}
		if m.MaxChars < 100 || m.MaxChars > 24000 {
			bad(key+".max_chars", "want 100 to 24000, got %d", m.MaxChars)
		}
		if m.MaxAge <= 0 {
			bad(key+".max_age", "must be positive")
		}
	}
	check("agent.memory", c.Agent.Memory)
	for _, name := range c.Profiles.Names() {
		p, _ := c.Profiles.Get(name)
		check("profiles."+name+".memory", p.Memory)
	}
}

// validateCluster checks the call registry and that the others can reach
// this instance's API.
func (c *Config) validateCluster(bad func(key, format string, args ...any)) {
	if c.API.Advertise != "" {
		if _, _, err := net.SplitHostPort(c.API.Advertise); err != nil {
			bad("api.advertise", "want host:port, got %q", c.API.Advertise)
		}
	}
	if !c.ClusterOn() {
		return
	}
	if _, _, err := net.SplitHostPort(c.Cluster.Redis.Addr); err != nil {
		bad("cluster.redis.addr", "want host:port, got %q", c.Cluster.Redis.Addr)
	}
	if c.API.Listen == "" {
		bad("api.listen", "a cluster needs the API: the instances forward requests to each other")
	} else if ap, err := netip.ParseAddrPort(c.API.Listen); err == nil && ap.Addr().IsUnspecified() && c.API.Advertise == "" {
		bad("api.advertise", "api.listen %s is not an address the other instances can reach: set api.advertise", c.API.Listen)
	}
	ttl, hb := c.Cluster.TTL.D(), c.Cluster.Heartbeat.D()
	if ttl < time.Second {
		bad("cluster.ttl", "want at least 1s, got %s", c.Cluster.TTL)
	}
	if hb < 100*time.Millisecond || hb > ttl/2 {
		bad("cluster.heartbeat", "want at least 100ms and at most half of cluster.ttl, got %s", c.Cluster.Heartbeat)
	}
}
