package sip

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/voicebot/voicebot/secret"
)

// Trunk is an upstream SIP server (a PBX extension, a carrier's trunk
// account) that voicebot places calls through and may register with.
type Trunk struct {
	Name string
	// Address is the server's host:port (port 5060 when left out); requests
	// for the trunk are sent there whatever their Request-URI says.
	Address   string
	Transport string // udp (default) or tcp
	// Domain is the SIP domain of our account, the host of our address of
	// record; default: the host of Address.
	Domain string
	// Username is the account: the user of our address of record and of
	// the From of calls placed through the trunk.
	Username string
	// AuthUsername is the digest user name, when it is not Username.
	AuthUsername string
	Password     secret.Value
	// FromUser is the caller ID of outbound calls; default Username.
	FromUser string
	// Register keeps a registration with the server so it routes calls to
	// us; RegisterExpires is the lifetime asked for (default 1 h).
	Register        bool
	RegisterExpires time.Duration
}

func (t *Trunk) normalize() error {
	if t.Address == "" {
		return errors.New("no address")
	}
	if _, _, err := net.SplitHostPort(t.Address); err != nil {
		t.Address = net.JoinHostPort(t.Address, "5060")
	}
	host, port, err := net.SplitHostPort(t.Address)
	if err != nil || host == "" {
		return fmt.Errorf("address %q: want host:port", t.Address)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("address %q: bad port", t.Address)
	}
	t.Transport = strings.ToLower(t.Transport)
	if t.Transport == "" {
		t.Transport = "udp"
	}
	if t.Transport != "udp" && t.Transport != "tcp" {
		return fmt.Errorf("transport %q: want udp or tcp", t.Transport)
	}
	if t.Domain == "" {
		t.Domain = host
	}
	if t.AuthUsername == "" {
		t.AuthUsername = t.Username
	}
	if t.FromUser == "" {
		t.FromUser = t.Username
	}
	if t.Register && t.Username == "" {
		return errors.New("register needs a username")
	}
	if t.RegisterExpires <= 0 {
		t.RegisterExpires = time.Hour
	}
	return nil
}

// aor is our address of record at the trunk.
func (t *Trunk) aor() sip.Uri {
	host, port := t.Domain, 0
	if h, p, err := net.SplitHostPort(t.Domain); err == nil {
		host = h
		port, _ = strconv.Atoi(p)
	}
	return sip.Uri{Scheme: "sip", User: t.Username, Host: host, Port: port}
}

// uri is the Request-URI for user at the trunk: a number or name, or a
// full sip: URI used as it is.
// dialString is a phone number as people write it ("+1 (555) 010-0100",
// "555.010.0100") with the punctuation dropped: what a trunk dials. A user
// name that is not a number is left as it is.
func dialString(s string) string {
	s = strings.TrimSpace(s)
	digits := 0
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
			b.WriteRune(r)
		case r == '+' && b.Len() == 0, r == '*', r == '#':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')' || r == '/':
		default:
			return s // letters: a user name, not a number
		}
	}
	if digits == 0 {
		return s
	}
	return b.String()
}

func (t *Trunk) uri(user string) (sip.Uri, error) {
	var u sip.Uri
	if strings.HasPrefix(strings.ToLower(user), "sip:") {
		if err := sip.ParseUri(user, &u); err != nil {
			return u, fmt.Errorf("bad SIP URI %q: %w", user, err)
		}
		return u, nil
	}
	user = dialString(user)
	if user == "" || strings.ContainsAny(user, " <>@;\"\r\n") {
		return u, fmt.Errorf("bad number or user %q", user)
	}
	u = t.aor()
	u.User = user
	if t.Transport == "tcp" {
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", "tcp")
	}
	return u, nil
}

// authorize answers a 401 or 407 challenge in res by adding credentials to
// req (RFC 3261 §22, via icholy/digest: MD5 and SHA-256, qop auth).
func (t *Trunk) authorize(req *sip.Request, res *sip.Response) error {
	challengeHeader, credentialHeader := "WWW-Authenticate", "Authorization"
	if res.StatusCode == 407 {
		challengeHeader, credentialHeader = "Proxy-Authenticate", "Proxy-Authorization"
	}
	h := res.GetHeader(challengeHeader)
	if h == nil {
		return fmt.Errorf("%d without %s", res.StatusCode, challengeHeader)
	}
	chal, err := digest.ParseChallenge(h.Value())
	if err != nil {
		return fmt.Errorf("bad %s: %w", challengeHeader, err)
	}
	chal.Algorithm = strings.ToUpper(chal.Algorithm)
	cred, err := digest.Digest(chal, digest.Options{
		Method: string(req.Method), URI: req.Recipient.String(),
		Username: t.AuthUsername, Password: t.Password.Reveal(),
	})
	if err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	req.RemoveHeader(credentialHeader)
	req.AppendHeader(sip.NewHeader(credentialHeader, cred.String()))
	return nil
}
