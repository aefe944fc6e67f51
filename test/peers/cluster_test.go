package peers

import (
	"encoding/json"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/voicebot/voicebot/internal/testredis"
)

// apiDo sends one request to an instance's API and decodes its JSON.
func apiDo(t *testing.T, method, api string, path string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+api+path, nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

// Two voicebot binaries sharing a Redis: a call answered by one is listed,
// fetched and hung up through the other's API, as a load balancer in
// front of the APIs would have it.
func TestClusterAnyInstanceAnswersTheAPI(t *testing.T) {
	need(t, "sipp")
	redis := testredis.Start(t)
	cluster := withEnv("VOICEBOT_CLUSTER_REDIS_ADDR="+redis.Addr, "VOICEBOT_CLUSTER_TTL=3s", "VOICEBOT_CLUSTER_HEARTBEAT=1s")
	one := startVoicebot(t, 34500, withAPI(), cluster)
	two := startVoicebot(t, 34600, withAPI(), cluster)

	rec := newRecorder(t)
	s := startSIPp(t, "uac_stays.xml", one.addr, "-key", "record_port", itoa(rec.port()))
	one.waitLog(t, "call: answered", 1, 10*time.Second)
	m := regexp.MustCompile(`"call_id":"([^"]+)"`).FindStringSubmatch(one.logs())
	if m == nil {
		t.Fatal("no call id in the log")
	}
	id := m[1]

	// The other instance lists it (from the registry) and fetches it (from
	// its owner), as the owner does.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, list := apiDo(t, "GET", two.api, "/v1/calls")
		if calls, _ := list["calls"].([]any); len(calls) == 1 && calls[0].(map[string]any)["id"] == id {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance two lists %v", list)
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, got := apiDo(t, "GET", two.api, "/v1/calls/"+id)
	_, own := apiDo(t, "GET", one.api, "/v1/calls/"+id)
	if code != 200 || got["state"] != "answered" || got["id"] != own["id"] || got["started"] != own["started"] {
		t.Fatalf("GET through instance two: %d %v; the owner says %v", code, got, own)
	}

	// Hung up through the other instance: the owner sends the BYE the
	// caller waits for, and counts it as the API's.
	if code, out := apiDo(t, "DELETE", two.api, "/v1/calls/"+id); code != http.StatusAccepted {
		t.Fatalf("DELETE through instance two: %d %v", code, out)
	}
	if err := s.wait(20 * time.Second); err != nil {
		t.Fatalf("the caller: %v", err)
	}
	one.waitLog(t, `"outcome":"api_hung_up"`, 1, 5*time.Second)
	if _, got := apiDo(t, "GET", two.api, "/v1/calls/"+id); got["outcome"] != "api_hung_up" {
		t.Errorf("after the hang-up, instance two says %v", got)
	}
}
