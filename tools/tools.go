// Package tools names the tools voicebot implements itself, for the
// configuration (which profiles enable them, which names webhooks may not
// take) and the bridge (which runs them and declares them to the model):
// the one list both read.
package tools

import "slices"

// The built-in tools.
const (
	EndCall  = "end_call"      // hang up once the goodbye has been said
	Transfer = "transfer_call" // blind transfer (REFER) to one of the profile's targets
	SendDTMF = "send_dtmf"     // press keys on the line (RFC 4733)
)

// Builtin lists the built-in tools, in the order they are documented.
var Builtin = []string{EndCall, Transfer, SendDTMF}

// IsBuiltin reports whether name is a built-in tool.
func IsBuiltin(name string) bool { return slices.Contains(Builtin, name) }
