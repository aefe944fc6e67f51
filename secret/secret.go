// Package secret holds credentials (API keys, SIP passwords) in a type that
// never prints: whatever the verb, a log line, an error or a dumped config
// shows [redacted].
package secret

import "fmt"

// Value is a credential. Only Reveal gives it up.
type Value string

// Redacted is what a Value prints as.
const Redacted = "[redacted]"

func (Value) String() string   { return Redacted }
func (Value) GoString() string { return Redacted }

// Format covers every fmt verb, %x and %q included.
func (Value) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// MarshalYAML and MarshalJSON keep secrets out of dumped configs.
func (Value) MarshalYAML() (any, error)    { return Redacted, nil }
func (Value) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText keeps it out of encoders that use text marshalling (zerolog's
// Interface, encoding/xml).
func (Value) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// Reveal returns the credential itself, for the one place that sends it.
func (v Value) Reveal() string { return string(v) }
