package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/voicebot/voicebot/outcome"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeCall struct {
	id, state string
	hungUp    bool
}

func (f *fakeCall) ID() string    { return f.id }
func (f *fakeCall) State() string { return f.state }
func (f *fakeCall) Hangup() error { f.hungUp = true; return nil }

// The outcome is JSON fields of their own: "outcome", "sip_code", "detail".
func TestCallInfoOutcomeFields(t *testing.T) {
	b, _ := json.Marshal(CallInfo{ID: "a", State: "ended", End: &outcome.End{Outcome: outcome.NoAnswer, SIPCode: 408, Detail: "no answer within 8s"}})
	for _, want := range []string{`"outcome":"no_answer"`, `"sip_code":408`, `"detail":"no answer within 8s"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	b, _ = json.Marshal(CallInfo{ID: "b", State: "answered"})
	if strings.Contains(string(b), "outcome") {
		t.Errorf("a call in progress has an outcome: %s", b)
	}
}

func TestRegistryKeepsEndedCallsForTheirOutcome(t *testing.T) {
	r := NewRegistry()
	a := &fakeCall{id: "a", state: "ringing"}
	r.Add(a, CallInfo{Direction: "inbound"})
	r.Add(a, CallInfo{Direction: "outbound"}) // again: no change
	if got := r.Active(); len(got) != 1 || got[0].Direction != "inbound" || got[0].State != "ringing" {
		t.Fatalf("active %+v", got)
	}
	if _, ok := r.Hangup("a"); !ok || !a.hungUp {
		t.Error("hangup did not reach the call")
	}
	if info, _ := r.Get("a"); info.End != nil {
		t.Errorf("a call in progress has an outcome: %+v", info.End)
	}
	r.End(a, outcome.End{Outcome: outcome.APIHungUp, Detail: "hung up through the API"})
	r.Add(a, CallInfo{}) // a late add after the end must not bring it back
	if r.Len() != 0 {
		t.Fatal("an ended call is still active")
	}
	if info, ok := r.Get("a"); !ok || info.State != "ended" || info.Ended == nil || info.End == nil || info.Outcome != outcome.APIHungUp {
		t.Errorf("recent call %+v %v", info, ok)
	}
	for i := 0; i < keepEnded+10; i++ {
		c := &fakeCall{id: string(rune('A'+i%26)) + strings.Repeat("x", i)}
		r.Add(c, CallInfo{})
		r.End(c, outcome.End{Outcome: outcome.CallerHungUp})
	}
	if len(r.recent) != keepEnded {
		t.Errorf("%d ended calls kept, want %d", len(r.recent), keepEnded)
	}
}

// FuzzPlaceCall posts arbitrary bodies: the answer is 201 or 400 with a
// JSON error, never a panic or a 5xx.
func FuzzPlaceCall(f *testing.F) {
	f.Add(`{"to":"+15550100"}`)
	f.Add(`{"to":"sip:x@y","agent":"sales","instructions":"hi"}`)
	f.Add(`{"to":1}`)
	f.Add(`{"to":"1"}{"to":"2"}`)
	f.Add(strings.Repeat("[", 10000))
	s := &Server{cfg: Config{Token: "fuzz-token-0123456789", Calls: NewRegistry(), Log: zerolog.Nop(),
		Place: func(r CallRequest) (string, error) {
			if strings.ContainsAny(r.To, "<>") {
				return "", &RequestError{Msg: "bad number"}
			}
			if r.Agent == "down" {
				return "", errors.New("shutting down")
			}
			return "call-1", nil
		}}}
	h := s.auth(s.placeCall)
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/v1/calls", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer fuzz-token-0123456789")
		w := httptest.NewRecorder()
		h(w, req)
		switch w.Code {
		case http.StatusCreated, http.StatusBadRequest, http.StatusServiceUnavailable:
		default:
			t.Fatalf("%q: status %d", body, w.Code)
		}
		if w.Code != http.StatusCreated && !strings.Contains(w.Body.String(), `"error"`) {
			t.Fatalf("%q: %d without an error: %s", body, w.Code, w.Body.String())
		}
	})
}

func TestServeStopsWithItsContext(t *testing.T) {
	s, err := Listen(Config{Listen: "127.0.0.1:0", Token: "serve-token-0123456789", Calls: NewRegistry(), Log: zerolog.Nop(),
		Place: func(CallRequest) (string, error) { return "", errors.New("no") }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	res, err := http.Get("http://" + s.Addr() + "/v1/calls")
	if err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated GET: %v %v", res, err)
	}
	res.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return")
	}
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// DELETE /v1/callers/{id}/memory: authenticated, the id normalised as the
// store keys it, and a clear answer when there is no store, no identity or
// the store is down.
func TestForgetCaller(t *testing.T) {
	const token = "forget-token-0123456789"
	var asked []string
	var fail error
	forget := func(_ context.Context, caller string) (int, error) {
		asked = append(asked, caller)
		return 4, fail
	}
	for _, c := range []struct {
		name   string
		forget func(context.Context, string) (int, error)
		path   string
		token  string
		fail   error
		code   int
		asked  string
	}{
		{"no token", forget, "/v1/callers/+15550100/memory", "", nil, 401, ""},
		{"normalised", forget, "/v1/callers/+1%20(555)%200100/memory", token, nil, 200, "+15550100"},
		{"no identity", forget, "/v1/callers/anonymous/memory", token, nil, 400, ""},
		{"store down", forget, "/v1/callers/15550100/memory", token, errors.New("connection refused"), 503, "15550100"},
		{"no store", nil, "/v1/callers/15550100/memory", token, nil, 404, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			asked, fail = nil, c.fail
			s, err := Listen(Config{Listen: "127.0.0.1:0", Token: token, Calls: NewRegistry(), Log: zerolog.Nop(), Forget: c.forget})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Serve(ctx) }()
			defer func() { cancel(); <-done }()
			req, _ := http.NewRequest("DELETE", "http://"+s.Addr()+c.path, nil)
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != c.code {
				t.Errorf("status %d, want %d", res.StatusCode, c.code)
			}
			if got := strings.Join(asked, ","); got != c.asked {
				t.Errorf("store asked to forget %q, want %q", got, c.asked)
			}
		})
	}
}

// A known path with the wrong method is 405 with Allow, an unknown path
// 404; the browser's favicon request needs no token and logs nothing.
func TestMethodsAndFavicon(t *testing.T) {
	var logs strings.Builder
	s, err := Listen(Config{Listen: "127.0.0.1:0", Token: "method-token-0123456789", Calls: NewRegistry(), Log: zerolog.New(&logs),
		Place: func(CallRequest) (string, error) { return "", errors.New("no") }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.ln.Close()
	for _, c := range []struct {
		method, path string
		want         int
		allow        string
	}{
		{"PUT", "/v1/calls", 405, "GET, POST"},
		{"PATCH", "/v1/calls/abc", 405, "GET, DELETE"},
		{"GET", "/v1/nothing", 404, ""},
		{"GET", "/favicon.ico", 204, ""},
	} {
		req := httptest.NewRequest(c.method, c.path, nil)
		if c.path != "/favicon.ico" {
			req.Header.Set("Authorization", "Bearer method-token-0123456789")
		}
		w := httptest.NewRecorder()
		s.srv.Handler.ServeHTTP(w, req)
		if w.Code != c.want || w.Header().Get("Allow") != c.allow {
			t.Errorf("%s %s: %d (Allow %q), want %d (Allow %q)", c.method, c.path, w.Code, w.Header().Get("Allow"), c.want, c.allow)
		}
	}
	if strings.Contains(logs.String(), "unauthorized") {
		t.Errorf("a warning was logged: %s", logs.String())
	}
}

// A call whose signalling ended is not listed as in progress while its
// handler tears down; it can still be fetched by id.
func TestEndedCallsAreNotListedAsActive(t *testing.T) {
	r := NewRegistry()
	live, gone := &fakeCall{id: "live", state: "answered"}, &fakeCall{id: "gone", state: "ended"}
	r.Add(live, CallInfo{Direction: "inbound"})
	r.Add(gone, CallInfo{Direction: "inbound"})
	if got := r.Active(); len(got) != 1 || got[0].ID != "live" {
		t.Errorf("active %+v, want only the live call", got)
	}
	if info, ok := r.Get("gone"); !ok || info.State != "ended" {
		t.Errorf("the ended call by id: %+v %v", info, ok)
	}
}

type fakeCluster struct {
	finds int
	at    Remote
}

func (c *fakeCluster) Find(context.Context, string) (Remote, bool, error) {
	c.finds++
	return c.at, c.at.API != "", nil
}

func (c *fakeCluster) Calls(context.Context) ([]CallInfo, error) { return []CallInfo{c.at.Info}, nil }

// A request another instance forwarded is answered from this instance's
// calls only: never forwarded again, nor listed with the cluster's.
func TestForwardedRequestsStayHere(t *testing.T) {
	cl := &fakeCluster{at: Remote{Instance: "b", API: "127.0.0.1:1", Info: CallInfo{ID: "elsewhere", State: "answered"}}}
	s, err := Listen(Config{Listen: "127.0.0.1:0", Token: "fwd-token-0123456789", Calls: NewRegistry(), Log: zerolog.Nop(), Cluster: cl})
	if err != nil {
		t.Fatal(err)
	}
	defer s.ln.Close()
	do := func(method, path string, forwarded bool) (int, string) {
		req := httptest.NewRequest(method, path, nil)
		req.Header.Set("Authorization", "Bearer fwd-token-0123456789")
		if forwarded {
			req.Header.Set(forwardedHeader, "1")
		}
		w := httptest.NewRecorder()
		s.srv.Handler.ServeHTTP(w, req)
		return w.Code, w.Body.String()
	}
	for _, m := range []string{"GET", "DELETE"} {
		if code, _ := do(m, "/v1/calls/elsewhere", true); code != 404 {
			t.Errorf("forwarded %s: %d", m, code)
		}
	}
	if _, body := do("GET", "/v1/calls", true); strings.Contains(body, "elsewhere") {
		t.Errorf("a forwarded list has the cluster's calls: %s", body)
	}
	if cl.finds != 0 {
		t.Errorf("the cluster was asked %d times for forwarded requests", cl.finds)
	}
	if _, body := do("GET", "/v1/calls", false); !strings.Contains(body, "elsewhere") {
		t.Errorf("the list lacks the cluster's calls: %s", body)
	}
	// Not forwarded: the owner is asked (here it does not answer: 502).
	if code, _ := do("GET", "/v1/calls/elsewhere", false); code != http.StatusBadGateway || cl.finds != 1 {
		t.Errorf("GET of a call elsewhere, its owner down: %d (finds %d)", code, cl.finds)
	}
	s.proxy.CloseIdleConnections()
}
