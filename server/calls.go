package server

// The SIP side of calls: the placer of outbound calls, the adapters that
// make a *sip.Call a bridge.Call and an api.Call, and the media, codecs and
// context SIP negotiated or carried, as the bridge takes them.

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/voicebot/voicebot/api"
	"github.com/voicebot/voicebot/bridge"
	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/media"
	"github.com/voicebot/voicebot/memory"
	"github.com/voicebot/voicebot/outcome"
	"github.com/voicebot/voicebot/sip"
	"github.com/voicebot/voicebot/vars"
)

// placer places the calls the API asks for.
func placer(cfg config.Config, routes *atomic.Pointer[routing], ua *sip.UA, br *bridge.Bridge, calls *api.Registry) api.Placer {
	return func(r api.CallRequest) (string, error) {
		name := r.Agent
		if name == "" {
			name = config.DefaultProfile
		}
		base, ok := routes.Load().profiles[name]
		if !ok {
			return "", &api.RequestError{Msg: fmt.Sprintf("no agent named %q", name)}
		}
		p := *base
		for key, text := range map[string]string{"instructions": r.Instructions, "greeting_prompt": r.GreetingPrompt} {
			if err := vars.Check(text); err != nil {
				return "", &api.RequestError{Msg: key + ": " + err.Error()}
			}
		}
		if r.Instructions != "" {
			p.Session.Instructions = r.Instructions
		}
		if r.GreetingPrompt != "" {
			p.GreetingPrompt = r.GreetingPrompt
		}
		// The caller ID is the INVITE's: the request's, else the trunk's
		// from_user.
		info := func(call *sip.Call) api.CallInfo {
			return api.CallInfo{Direction: "outbound", From: call.FromUser(), To: r.To, Agent: name, Headers: r.Headers, Variables: r.Variables}
		}
		call, err := ua.Place(sip.PlaceRequest{To: r.To, From: r.From, Trunk: r.Trunk, RingTimeout: cfg.SIP.RingTimeout.D(), Headers: r.Headers},
			func(ctx context.Context, call *sip.Call) {
				calls.Add(registryCall{call}, info(call))
				calls.End(registryCall{call}, br.Handle(ctx, sipCall{call}, bridge.Setup{Profile: &p, Outbound: true, Caller: call.FromUser(), Called: r.To,
					MemoryID: memory.Identity(r.To),
					Vars:     vars.Vars{Caller: call.FromUser(), Called: r.To, Headers: r.Headers, Values: r.Variables}}))
			})
		if err != nil {
			if errors.Is(err, sip.ErrShuttingDown) || errors.Is(err, sip.ErrAtCapacity) {
				return "", err
			}
			return "", &api.RequestError{Msg: err.Error()}
		}
		// Listed at once for the API's answer; the handler adds it too, so
		// that its End always finds it, whichever of the two runs first.
		calls.Add(registryCall{call}, info(call))
		return call.ID(), nil
	}
}

func trunks(cfg config.Config) []sip.Trunk {
	out := make([]sip.Trunk, 0, len(cfg.SIP.Trunks))
	for _, t := range cfg.SIP.Trunks {
		out = append(out, sip.Trunk{Name: t.Name, Address: t.Address, Transport: t.Transport, Domain: t.Domain,
			Username: t.Username, AuthUsername: t.AuthUsername, Password: t.Password, FromUser: t.FromUser,
			Register: t.Register, RegisterExpires: t.RegisterExpires.D()})
	}
	return out
}

// sipCall adapts a SIP call to what the bridge and the API need of it.
type sipCall struct{ *sip.Call }

// refusals is what a SIP caller is told for each reason a call is refused
// before it is answered: the one place these codes are chosen. 503 for
// what may pass (a proxy may try another instance), 500 for what is ours,
// 488 for an offer voicebot cannot take.
var refusals = map[bridge.Refusal]struct {
	code   int
	phrase string
}{
	bridge.RefusedNoMediaPort:      {503, "Service Unavailable (no media port)"},
	bridge.RefusedModelUnreachable: {503, "Service Unavailable (model unreachable)"},
	bridge.RefusedModelNotReady:    {503, "Service Unavailable (model not ready)"},
	bridge.RefusedSessionUnsent:    {500, "Server Internal Error"},
	bridge.RefusedNoMedia:          {500, "Server Internal Error (no media)"},
	bridge.RefusedCodec:            {488, "Not Acceptable Here"},
}

// Refuse answers a call not yet connected with the SIP status for why.
func (c sipCall) Refuse(why bridge.Refusal) error {
	r, ok := refusals[why]
	if !ok {
		r.code, r.phrase = 500, "Server Internal Error"
	}
	return c.Call.Reject(r.code, r.phrase)
}

func (c sipCall) Observe(o bridge.Observer) {
	c.Call.OnEvent(func(e sip.Event) {
		if e.Key != 0 {
			o.KeyPressed(e.Key)
		}
		if e.Media != nil {
			o.MediaChanged(callMedia(c.Call, *e.Media), e.Early)
		}
	})
}

// registryCall adapts a SIP call to what the API's registry needs of it: a
// DELETE of an answered call ends it as api_hung_up (one still ringing is
// cancelled), not as hung up by the bot or the caller.
type registryCall struct{ *sip.Call }

func (c registryCall) Hangup() error {
	return c.Call.HangupAs(outcome.End{Outcome: outcome.APIHungUp, Detail: "hung up through the API"})
}

// inboundVars is an inbound call's context: its numbers and the headers
// sip.context_headers names (those it carries).
func inboundVars(call *sip.Call, headers []string) vars.Vars {
	v := vars.Vars{Caller: call.FromUser(), Called: call.ToUser()}
	for _, name := range headers {
		if value := call.Header(name); value != "" {
			if v.Headers == nil {
				v.Headers = map[string]string{}
			}
			v.Headers[name] = value
		}
	}
	return v
}

// sipCodecs are the configured codecs as SDP needs them, from media's
// table (config has checked the names).
func sipCodecs(names []string) []sip.Codec {
	out := make([]sip.Codec, 0, len(names))
	for _, n := range names {
		if c, err := media.CodecByName(n); err == nil {
			out = append(out, sip.Codec{Name: c.Name, PayloadType: c.PayloadType, ClockRate: c.ClockRate})
		}
	}
	return out
}

// callMedia is the bridge's view of negotiated SIP media.
func callMedia(call *sip.Call, m sip.Media) bridge.CallMedia {
	cm := bridge.CallMedia{Remote: m.Remote, DTMFPayloadType: m.DTMFPayloadType, OnHold: m.OnHold(),
		Signalling: call.RemoteSource().Addr()}
	if codec, err := media.CodecByName(m.Codec.Name); err == nil {
		codec.PayloadType = m.Codec.PayloadType
		cm.Codec = codec
	}
	if k := m.SRTP; k != nil {
		cm.SRTP = &media.SRTP{Suite: k.Suite, Local: k.Local, Remote: k.Remote}
	}
	return cm
}
