package server

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/voicebot/voicebot/api"
	"github.com/voicebot/voicebot/config"
	"github.com/voicebot/voicebot/internal/testpeer"
	"github.com/voicebot/voicebot/internal/testredis"
)

// inCluster has an instance join the cluster on the Redis at addr, with a
// short TTL (an instance that stops is forgotten within a second).
func inCluster(addr string, mutate ...func(*config.Config)) func(*config.Config) {
	return func(c *config.Config) {
		c.API.Listen, c.API.Token = "127.0.0.1:0", apiToken
		c.Cluster.Redis.Addr = addr
		c.Cluster.TTL, c.Cluster.Heartbeat = config.Duration(time.Second), config.Duration(100*time.Millisecond)
		for _, m := range mutate {
			m(c)
		}
	}
}

func listed(t *testing.T, r *rig) []string {
	t.Helper()
	_, out := apiCall(t, r, "GET", "/v1/calls", apiToken, nil)
	var ids []string
	calls, _ := out["calls"].([]any)
	for _, c := range calls {
		ids = append(ids, c.(map[string]any)["id"].(string))
	}
	return ids
}

// Two instances share a call registry in Redis: a call placed through A's
// API is shown, listed, streamed and hung up through B's, which forwards
// to A; once A stops, B lists its calls no more.
func TestAnyInstanceAnswersForAnyCall(t *testing.T) {
	redis := testredis.Start(t)
	p := pbx(t)
	a := startRig(t, inCluster(redis.Addr, withTrunk(p, false)), nil)
	b := startRig(t, inCluster(redis.Addr, func(c *config.Config) { c.Media.PortMin, c.Media.PortMax = 32000, 32999 }), nil)
	// A stops first, whatever happens; b, stopped last, checks that nothing
	// of either is left.
	a.notLast = true
	t.Cleanup(a.stop)

	code, out := apiCall(t, a, "POST", "/v1/calls", apiToken, api.CallRequest{To: "5551234", Variables: map[string]string{"order": "4711"}})
	if code != 201 {
		t.Fatalf("POST /v1/calls on A: %d %v", code, out)
	}
	id := out["id"].(string)
	waitFor(t, "the call answered", 5*time.Second, func() bool {
		_, got := apiCall(t, a, "GET", "/v1/calls/"+id, apiToken, nil)
		return got["state"] == "answered"
	})
	// B answers with A's JSON.
	var onA, onB map[string]any
	waitFor(t, "B to show A's call", 5*time.Second, func() bool {
		_, onA = apiCall(t, a, "GET", "/v1/calls/"+id, apiToken, nil)
		_, onB = apiCall(t, b, "GET", "/v1/calls/"+id, apiToken, nil)
		return reflect.DeepEqual(onA, onB)
	})
	if onB["variables"].(map[string]any)["order"] != "4711" || onB["direction"] != "outbound" {
		t.Errorf("B shows %v", onB)
	}
	if got := listed(t, b); len(got) != 1 || got[0] != id {
		t.Errorf("B lists %v", got)
	}
	if got := listed(t, a); len(got) != 1 || got[0] != id {
		t.Errorf("A lists %v (its own call once)", got)
	}
	if code, _ := apiCall(t, b, "GET", "/v1/calls/no-such-call", apiToken, nil); code != 404 {
		t.Errorf("an unknown call on B: %d", code)
	}
	if code, _ := apiCall(t, b, "GET", "/v1/calls/"+id, "wrong-token-0123456789", nil); code != 401 {
		t.Errorf("B forwards without the token: %d", code)
	}

	// The event feed through B is A's, live.
	req, _ := http.NewRequest("GET", "http://"+b.api+"/v1/calls/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := client.Do(req)
	if err != nil || res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events through B: %v %v", res, err)
	}
	defer res.Body.Close()
	events := make(chan map[string]any, 1000)
	go sseEvents(t, res, events)
	select {
	case ev := <-events:
		if ev["type"] != "call" {
			t.Errorf("first event through B: %v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event through B")
	}

	// Hung up through B: A ends it as api_hung_up.
	code, out = apiCall(t, b, "DELETE", "/v1/calls/"+id, apiToken, nil)
	if code != 202 || out["id"] != id {
		t.Fatalf("DELETE through B: %d %v", code, out)
	}
	waitFor(t, "BYE from A", 5*time.Second, func() bool { return len(p.Requests("BYE")) == 1 })
	var types []string
	timeout := time.After(5 * time.Second)
collect:
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				break collect
			}
			types = append(types, ev["type"].(string))
		case <-timeout:
			t.Fatalf("the stream through B did not end with the call; got %v", types)
		}
	}
	if len(types) == 0 || types[len(types)-1] != "ended" || !strings.Contains(strings.Join(types, ","), "answered") {
		t.Errorf("events through B: %v", types)
	}
	if got := ended(t, a, id); got["outcome"] != "api_hung_up" {
		t.Errorf("outcome on A: %v", got)
	}
	if got := ended(t, b, id); got["outcome"] != "api_hung_up" {
		t.Errorf("outcome through B: %v", got)
	}
	if got := listed(t, b); len(got) != 0 {
		t.Errorf("B lists the ended call: %v", got)
	}
	if code, _ := apiCall(t, b, "DELETE", "/v1/calls/"+id, apiToken, nil); code != 404 {
		t.Errorf("DELETE of the ended call through B: %d", code)
	}

	// A stops while a call is in progress: within the TTL, B lists
	// nothing of A's.
	_, out = apiCall(t, a, "POST", "/v1/calls", apiToken, api.CallRequest{To: "5551235"})
	second := out["id"].(string)
	waitFor(t, "B to list A's second call", 5*time.Second, func() bool {
		got := listed(t, b)
		return len(got) == 1 && got[0] == second
	})
	a.stop()
	waitFor(t, "B to forget A's calls", 5*time.Second, func() bool { return len(listed(t, b)) == 0 })
	for _, s := range []*syncBuffer{a.logs, b.logs} {
		if strings.Contains(s.String(), apiToken) {
			t.Error("the API token is in the log")
		}
	}
}

// Without cluster.redis.addr nothing joins a cluster: a call this instance
// does not hold is not found, as ever.
func TestNoClusterWithoutRedis(t *testing.T) {
	r := startRig(t, func(c *config.Config) { c.API.Listen, c.API.Token = "127.0.0.1:0", apiToken }, nil)
	if r.voicebot.cluster != nil {
		t.Fatal("a cluster without Redis configured")
	}
	code, out := apiCall(t, r, "GET", "/v1/calls/elsewhere", apiToken, nil)
	if code != 404 || out["error"] != "no such call" {
		t.Errorf("GET of an unknown call: %d %v", code, out)
	}
	c, err := testpeer.New(r.sip)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if res, err := c.Invite("", 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE: %v %v", res, err)
	}
	_, list := apiCall(t, r, "GET", "/v1/calls", apiToken, nil)
	b, _ := json.Marshal(list)
	if calls, _ := list["calls"].([]any); len(calls) != 1 {
		t.Errorf("GET /v1/calls: %s", b)
	}
	if strings.Contains(r.logs.String(), "cluster") {
		t.Error("the log speaks of a cluster")
	}
	if code, err := c.Bye(5 * time.Second); err != nil || code != 200 {
		t.Fatalf("BYE: %d %v", code, err)
	}
}
