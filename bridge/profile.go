package bridge

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/voicebot/voicebot/memory"
	"github.com/voicebot/voicebot/realtime"
	"github.com/voicebot/voicebot/secret"
	"github.com/voicebot/voicebot/tools"
	"github.com/voicebot/voicebot/vars"
)

// Profile is the agent a call talks to: what the model is told and how it
// listens (Session), how it opens the call, and what it may do.
type Profile struct {
	Name string
	// Model names the realtime model to dial ("" for the endpoint's default).
	Model   string
	Session realtime.SessionConfig
	// Greeting makes the bot speak first, with GreetingPrompt as that
	// response's instructions.
	Greeting       bool
	GreetingPrompt string
	// Tools the model may call: the built-in end_call, transfer_call and
	// send_dtmf, and names of Webhooks.
	Tools []string
	// TransferTargets are where transfer_call may send the caller, by name.
	TransferTargets map[string]TransferTarget
	// HangupOnTransferFailure: when the far end refuses a transfer, the bot
	// apologises and hangs up (true), or carries on with the caller.
	HangupOnTransferFailure bool
	// DTMF maps keys to actions instead of telling the model: "hangup",
	// "transfer:<target>", "ignore". Keys not listed reach the model as text.
	DTMF map[rune]string
	// Webhooks are the HTTP tools available to Tools, by name.
	Webhooks map[string]Webhook
	// Memory gives the model what a returning caller said before; the
	// SIP side names the caller to it (Setup.MemoryID, Policy.CallerID).
	Memory memory.Policy
}

// TransferTarget is one destination of transfer_call.
type TransferTarget struct {
	URI         string // sip: URI the caller is referred to
	Description string // tells the model when to use it
	// Headers go to the next party with the caller: templates of the
	// call's context, carried in the Refer-To URI.
	Headers map[string]string
}

// maxSummary bounds the summary the model gives the next party.
const maxSummary = 500

// referTo is the URI the caller is referred to: the target's, with the
// headers the next party's INVITE is to carry (RFC 3261 §19.1.1: the
// transferee copies a Refer-To URI's headers into its INVITE): the
// model's summary of the call (X-Summary) and the target's headers,
// rendered with the call's context. Empty values are left out.
func (t TransferTarget) referTo(summary string, v vars.Vars) string {
	headers := map[string]string{}
	for name, text := range t.Headers {
		headers[name] = vars.Render(text, v)
	}
	if summary = strings.TrimSpace(summary); summary != "" {
		if utf8.RuneCountInString(summary) > maxSummary {
			summary = string([]rune(summary)[:maxSummary])
		}
		headers["X-Summary"] = summary
	}
	names := make([]string, 0, len(headers))
	for name, value := range headers {
		if value != "" {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return t.URI
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(t.URI)
	sep := "?"
	if strings.Contains(t.URI, "?") {
		sep = "&"
	}
	for _, name := range names {
		b.WriteString(sep + uriEscape(name) + "=" + uriEscape(headers[name]))
		sep = "&"
	}
	return b.String()
}

// uriEscape percent-encodes all but a SIP URI header's unreserved
// characters (RFC 3261 §25.1 hname/hvalue): spaces are %20, not +.
func uriEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// Webhook is a tool the model calls that voicebot forwards over HTTP: the
// arguments are POSTed as JSON to URL, and the JSON response is the tool's
// output.
type Webhook struct {
	Name        string
	Description string
	Parameters  json.RawMessage // JSON Schema of the arguments
	URL         *url.URL
	Timeout     time.Duration
	// Headers are sent with every request (an Authorization token, say).
	Headers map[string]secret.Value
	// Payload adds fields to the arguments from the call's context:
	// templates (package vars), rendered per call; they win over the
	// model's arguments of the same name.
	Payload map[string]string
}

// withPayload is args (the model's JSON object) with w's payload fields,
// rendered with the call's context, set in it.
func (w Webhook) withPayload(args string, v vars.Vars) string {
	if len(w.Payload) == 0 {
		return args
	}
	fields := map[string]any{}
	if strings.TrimSpace(args) != "" {
		if err := json.Unmarshal([]byte(args), &fields); err != nil || fields == nil {
			return args // not an object: the webhook says what it makes of it
		}
	}
	for k, text := range w.Payload {
		fields[k] = vars.Render(text, v)
	}
	b, err := json.Marshal(fields)
	if err != nil {
		return args
	}
	return string(b)
}

// The built-in tools, as package tools names them.
const (
	ToolEndCall  = tools.EndCall
	ToolTransfer = tools.Transfer
	ToolSendDTMF = tools.SendDTMF
)

// has reports whether the profile enables tool.
func (p *Profile) has(tool string) bool {
	for _, t := range p.Tools {
		if t == tool {
			return true
		}
	}
	return false
}

// targetNames lists the transfer targets in a stable order.
func (p *Profile) targetNames() []string {
	names := make([]string, 0, len(p.TransferTargets))
	for n := range p.TransferTargets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// toolDeclarations are the function tools declared to the model.
func (p *Profile) toolDeclarations() []realtime.Tool {
	var out []realtime.Tool
	for _, name := range p.Tools {
		switch name {
		case ToolEndCall:
			out = append(out, realtime.Tool{Name: name,
				Description: "End the phone call. Say goodbye first: the call ends once you have finished speaking.",
				Parameters:  json.RawMessage(`{"type":"object","properties":{"reason":{"type":"string","description":"Why the call ends, for the call record."}}}`)})
		case ToolTransfer:
			names := p.targetNames()
			if len(names) == 0 {
				continue
			}
			var desc strings.Builder
			desc.WriteString("Transfer the caller to a person or department. Tell the caller first. Targets:")
			for _, n := range names {
				desc.WriteString(" " + n)
				if d := p.TransferTargets[n].Description; d != "" {
					desc.WriteString(" (" + d + ")")
				}
				desc.WriteString(";")
			}
			enum, _ := json.Marshal(names)
			out = append(out, realtime.Tool{Name: name, Description: strings.TrimSuffix(desc.String(), ";") + ".",
				Parameters: json.RawMessage(`{"type":"object","properties":{"target":{"type":"string","enum":` + string(enum) +
					`,"description":"Who to transfer the caller to."},"summary":{"type":"string","description":` +
					`"One or two sentences for the person taking over: who the caller is and what they need."}},"required":["target"]}`)})
		case ToolSendDTMF:
			out = append(out, realtime.Tool{Name: name,
				Description: "Press keys on the phone line (DTMF tones), for example to navigate an automated menu.",
				Parameters:  json.RawMessage(`{"type":"object","properties":{"digits":{"type":"string","pattern":"^[0-9*#A-D]{1,32}$","description":"The keys to press, in order."}},"required":["digits"]}`)})
		default:
			if w, ok := p.Webhooks[name]; ok {
				out = append(out, w.tool())
			}
		}
	}
	return out
}

// WebhookTools are the profile's tools that need no phone line (its
// webhooks), as declared to the model: what a conversation over HTTP can
// run.
func (p *Profile) WebhookTools() []realtime.Tool {
	var out []realtime.Tool
	for _, name := range p.Tools {
		if w, ok := p.Webhooks[name]; ok {
			out = append(out, w.tool())
		}
	}
	return out
}

func (w Webhook) tool() realtime.Tool {
	return realtime.Tool{Name: w.Name, Description: w.Description, Parameters: w.Parameters}
}
