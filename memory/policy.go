package memory

import "time"

// Policy is how much of a caller's past a profile remembers. Nothing is
// read or stored for a profile that is not Enabled.
type Policy struct {
	Enabled  bool
	MaxTurns int           // past turns given to the model, at most
	MaxAge   time.Duration // turns older than this are left out
	MaxChars int           // text budget, oldest turns dropped first
	// GreetingPrompt replaces the greeting's instructions for a caller
	// who has history ("welcome back").
	GreetingPrompt string
	// IdentityHeader names the SIP header that says who the caller is;
	// empty: their number.
	IdentityHeader string
}

// CallerID is who the caller is to the store under this policy: the
// identity header's value when the policy names one, else the caller's
// number or SIP user; "" when nothing is to be remembered (the policy is
// off, or the caller is anonymous). header reads a header of the call.
func (p Policy) CallerID(fromUser string, header func(name string) string) string {
	if !p.Enabled {
		return ""
	}
	if p.IdentityHeader != "" {
		return Identity(header(p.IdentityHeader))
	}
	return Identity(fromUser)
}

// Within is the policy with nothing older than a store keeping turns for
// ttl (0: for ever) given to the model.
func (p Policy) Within(ttl time.Duration) Policy {
	if ttl > 0 && ttl < p.MaxAge {
		p.MaxAge = ttl
	}
	return p
}
