package bridge

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voicebot/voicebot/secret"
	"github.com/voicebot/voicebot/vars"
)

// functionCall makes the model call a tool in response resp.
func (h *harness) functionCall(resp, callID, name, args string) {
	h.t.Helper()
	a, _ := json.Marshal(args)
	n, _ := json.Marshal(name)
	h.event(`{"type":"response.output_item.done","response_id":"` + resp + `","output_index":1,"item":{"id":"item_` + callID +
		`","object":"realtime.item","type":"function_call","status":"completed","call_id":"` + callID + `","name":` + string(n) + `,"arguments":` + string(a) + `}}`)
}

// outputs returns the function_call_output items sent, by call_id.
func (h *harness) outputs() map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, m := range h.model.ofType("conversation.item.create") {
		item := m["item"].(map[string]any)
		if item["type"] != "function_call_output" {
			continue
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(item["output"].(string)), &v); err != nil {
			h.t.Fatalf("tool output is not JSON: %v", item["output"])
		}
		out[item["call_id"].(string)] = v
	}
	return out
}

func withTools(tools ...string) func(*Profile) {
	return func(p *Profile) {
		p.Tools = tools
		p.TransferTargets = map[string]TransferTarget{"sales": {URI: "sip:sales@pbx.example"}, "operator": {URI: "sip:0@pbx.example"}}
	}
}

// end_call hangs up once the goodbye the model said alongside it has been
// played out, not before and not later than a frame or so after.
func TestEndCallWaitsForTheGoodbyeToPlay(t *testing.T) {
	h := newProfileHarness(t, nil, withTools(ToolEndCall))
	decls := h.c.session.Tools
	if len(decls) != 1 || decls[0].Name != ToolEndCall {
		t.Fatalf("declared tools %+v", decls)
	}
	h.respond("resp_1", "item_1", 1200) // "Goodbye!" streams in faster than real time
	h.functionCall("resp_1", "call_1", ToolEndCall, `{"reason":"done"}`)
	h.done("resp_1", "completed")
	start := h.clk.Now()
	h.play(3 * time.Second)
	if h.ended != endBotHungUp {
		t.Fatalf("ended %q, want %q", h.ended, endBotHungUp)
	}
	sent, last := h.audioMS()
	if sent != 1200 {
		t.Errorf("the caller heard %d ms of the 1200 ms goodbye", sent)
	}
	if wait := h.endedAt.Sub(last); wait < 0 || wait > 100*time.Millisecond {
		t.Errorf("hung up %v after the last goodbye packet (started %v)", wait, h.endedAt.Sub(start))
	}
	if out := h.outputs()["call_1"]; out == nil || out["status"] == nil {
		t.Errorf("no function_call_output for end_call: %v", h.outputs())
	}
	if n := len(h.model.ofType("response.create")); n != 0 {
		t.Errorf("asked for %d responses after end_call", n)
	}
}

// A caller who talks over the goodbye stops it, and the call ends then.
func TestEndCallAfterBargeIn(t *testing.T) {
	h := newProfileHarness(t, nil, withTools(ToolEndCall))
	h.respond("resp_1", "item_1", 3000)
	h.functionCall("resp_1", "call_1", ToolEndCall, `{}`)
	h.play(500 * time.Millisecond)
	h.speechStarted(1000)
	h.done("resp_1", "cancelled")
	h.play(500 * time.Millisecond)
	if h.ended != endBotHungUp {
		t.Fatalf("ended %q", h.ended)
	}
}

// A tool the caller interrupted before it took effect is not run.
func TestToolOfAnInterruptedResponseIsNotRun(t *testing.T) {
	h := newProfileHarness(t, nil, withTools(ToolEndCall))
	h.respond("resp_1", "item_1", 3000)
	h.play(500 * time.Millisecond)
	h.speechStarted(1000)
	h.functionCall("resp_1", "call_1", ToolEndCall, `{}`)
	h.done("resp_1", "cancelled")
	h.play(time.Second)
	if h.ended != "" {
		t.Fatalf("the call ended (%s) on a tool call the caller had interrupted", h.ended)
	}
	if out := h.outputs()["call_1"]; out == nil || out["error"] == nil {
		t.Errorf("the model was not told the tool did not run: %v", h.outputs())
	}
}

// transfer_call: the goodbye plays, then the REFER goes to the target's URI;
// success ends the call and tells the model.
func TestTransferToATargetOfTheProfile(t *testing.T) {
	h := newProfileHarness(t, nil, withTools(ToolTransfer))
	var params struct {
		Properties struct {
			Target struct{ Enum []string } `json:"target"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(h.c.session.Tools[0].Parameters, &params); err != nil || strings.Join(params.Properties.Target.Enum, ",") != "operator,sales" {
		t.Fatalf("transfer_call parameters %s", h.c.session.Tools[0].Parameters)
	}
	h.respond("resp_1", "item_1", 600)
	h.functionCall("resp_1", "call_1", ToolTransfer, `{"target":"sales"}`)
	h.done("resp_1", "completed")
	h.play(300 * time.Millisecond)
	if len(h.call.transfers) != 0 {
		t.Fatal("transferred before the bot finished speaking")
	}
	h.play(500 * time.Millisecond)
	h.toolResult()
	if len(h.call.transfers) != 1 || h.call.transfers[0] != "sip:sales@pbx.example" {
		t.Fatalf("transfers %v", h.call.transfers)
	}
	if h.ended != endTransferred {
		t.Errorf("ended %q, want %q", h.ended, endTransferred)
	}
	if h.outputs()["call_1"]["status"] != "transferred" {
		t.Errorf("outputs %v", h.outputs())
	}
}

// A refused transfer is reported to the model, which is asked to apologise;
// the call ends once that apology has played.
func TestRefusedTransferApologisesAndHangsUp(t *testing.T) {
	h := newProfileHarness(t, nil, func(p *Profile) { withTools(ToolTransfer)(p); p.HangupOnTransferFailure = true })
	h.call.transferErr = errors.New("transfer refused: 603 Decline")
	h.created("resp_1")
	h.functionCall("resp_1", "call_1", ToolTransfer, `{"target":"operator"}`)
	h.done("resp_1", "completed")
	h.play(100 * time.Millisecond)
	h.toolResult()
	out := h.outputs()["call_1"]
	if out["status"] != "failed" || !strings.Contains(out["reason"].(string), "603") {
		t.Fatalf("output %v", out)
	}
	creates := h.model.ofType("response.create")
	if len(creates) != 1 || !strings.Contains(creates[0]["response"].(map[string]any)["instructions"].(string), "Apologise") {
		t.Fatalf("response.create %v", creates)
	}
	h.play(time.Second)
	if h.ended != "" {
		t.Fatal("hung up before the apology")
	}
	h.respond("resp_2", "item_2", 800)
	h.done("resp_2", "completed")
	h.play(1500 * time.Millisecond)
	if h.ended != endBotHungUp {
		t.Fatalf("ended %q after the apology", h.ended)
	}
	if sent, _ := h.audioMS(); sent != 800 {
		t.Errorf("the caller heard %d ms of the 800 ms apology", sent)
	}
}

// A target the profile does not name is refused without any REFER; the
// model learns the valid targets and answers; the call goes on.
func TestTransferToAnUnknownTargetIsRefused(t *testing.T) {
	h := newProfileHarness(t, nil, withTools(ToolTransfer))
	h.respond("resp_1", "item_1", 200)
	h.functionCall("resp_1", "call_1", ToolTransfer, `{"target":"sip:premium-rate@evil.example"}`)
	if n := len(h.model.ofType("response.create")); n != 0 {
		t.Fatal("asked for a response while the one that made the call was active")
	}
	h.done("resp_1", "completed")
	h.play(time.Second)
	if len(h.call.transfers) != 0 || h.ended != "" {
		t.Fatalf("transfers %v, ended %q", h.call.transfers, h.ended)
	}
	out := h.outputs()["call_1"]
	if msg, _ := out["error"].(string); !strings.Contains(msg, "operator") || !strings.Contains(msg, "sales") {
		t.Errorf("the error does not list the targets: %v", out)
	}
	if n := len(h.model.ofType("response.create")); n != 1 {
		t.Errorf("%d response.create after the error output, want 1", n)
	}
}

func (h *harness) created(resp string) {
	h.event(`{"type":"response.created","response":{"id":"` + resp + `","status":"in_progress","output":[]}}`)
}

func TestSendDTMFTool(t *testing.T) {
	h := newProfileHarness(t, nil, withTools(ToolSendDTMF))
	h.created("resp_1")
	h.functionCall("resp_1", "call_1", ToolSendDTMF, `{"digits":"12#"}`)
	h.functionCall("resp_1", "call_2", ToolSendDTMF, `{"digits":"1x"}`)
	h.done("resp_1", "completed")
	h.play(time.Second)
	events := 0
	for _, p := range h.out {
		if p.pkt.PayloadType == 101 {
			events++
		}
	}
	if events != 3*8 {
		t.Errorf("%d telephone-event packets for 3 keys, want 24", events)
	}
	outs := h.outputs()
	if outs["call_1"]["status"] != "sent" || outs["call_2"]["error"] == nil {
		t.Errorf("outputs %v", outs)
	}
	if n := len(h.model.ofType("response.create")); n != 1 {
		t.Errorf("%d response.create for two outputs of one response, want 1", n)
	}
}

func TestUnknownToolAndBadArguments(t *testing.T) {
	h := newProfileHarness(t, nil, withTools(ToolEndCall))
	h.created("resp_1")
	h.functionCall("resp_1", "call_1", "launch_missiles", `{}`)
	h.functionCall("resp_1", "call_2", ToolEndCall, `not json`)
	h.functionCall("resp_1", "call_2", ToolEndCall, `{}`) // the same call_id again: run once
	h.done("resp_1", "completed")
	h.play(200 * time.Millisecond)
	outs := h.outputs()
	if outs["call_1"]["error"] == nil || outs["call_2"]["error"] == nil || h.ended != "" {
		t.Errorf("outputs %v, ended %q", outs, h.ended)
	}
}

// Webhook tools: the arguments are POSTed with the call's identity and the
// configured headers; the JSON answer goes to the model. A slow, failing or
// garbage-answering webhook gives the model an error result, and the call
// goes on.
func TestWebhookTools(t *testing.T) {
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/ok":
			got.Store(r.Header.Get("Authorization") + "|" + r.Header.Get("X-Voicebot-Call-Id") + "|" + string(body))
			w.Write([]byte(`{"status":"shipped","eta":"Tuesday"}`))
		case "/slow":
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		case "/garbage":
			w.Write([]byte(`<html>oops</html>`))
		case "/fail":
			http.Error(w, "down", http.StatusInternalServerError)
		case "/huge":
			w.Write([]byte(`"` + strings.Repeat("x", maxToolOutput+10) + `"`))
		}
	}))
	defer srv.Close()
	hook := func(name, path string) Webhook {
		u, _ := url.Parse(srv.URL + path)
		return Webhook{Name: name, Description: name, URL: u, Timeout: 300 * time.Millisecond,
			Headers: map[string]secret.Value{"Authorization": "Bearer hook-secret"}}
	}
	h := newProfileHarness(t, nil, func(p *Profile) {
		p.Tools = []string{"ok", "slow", "garbage", "fail", "huge"}
		p.Webhooks = map[string]Webhook{"ok": hook("ok", "/ok"), "slow": hook("slow", "/slow"),
			"garbage": hook("garbage", "/garbage"), "fail": hook("fail", "/fail"), "huge": hook("huge", "/huge")}
	})
	if len(h.c.session.Tools) != 5 {
		t.Fatalf("declared %d webhook tools", len(h.c.session.Tools))
	}
	h.created("resp_1")
	for i, name := range []string{"ok", "slow", "garbage", "fail"} {
		h.functionCall("resp_1", "call_"+name, name, `{"order_number":"A`+string(rune('1'+i))+`"}`)
	}
	h.functionCall("resp_1", "call_huge", "huge", `{}`) // over the in-flight bound: refused at once
	h.done("resp_1", "completed")
	h.toolResult()
	outs := h.outputs()
	if outs["call_ok"]["status"] != "shipped" {
		t.Errorf("ok: %v", outs["call_ok"])
	}
	if g, _ := got.Load().(string); g != `Bearer hook-secret|call-1|{"order_number":"A1"}` {
		t.Errorf("the webhook got %q", g)
	}
	for name, want := range map[string]string{"slow": "no answer within", "garbage": "not JSON", "fail": "HTTP 500", "huge": "too many"} {
		if msg, _ := outs["call_"+name]["error"].(string); !strings.Contains(msg, want) {
			t.Errorf("%s: output %v, want an error saying %q", name, outs["call_"+name], want)
		}
	}
	if n := len(h.model.ofType("response.create")); n != 1 {
		t.Errorf("%d response.create for one response's tool calls, want 1 once all are back", n)
	}
	if h.ended != "" {
		t.Errorf("the call ended: %s", h.ended)
	}
	for _, m := range h.model.sent {
		if b, _ := json.Marshal(m); strings.Contains(string(b), "hook-secret") {
			t.Fatal("a webhook header reached the model")
		}
	}
}

func TestWebhookAnswerTooLarge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`"` + strings.Repeat("x", maxToolOutput+10) + `"`))
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	_, err := callWebhook(t.Context(), srv.Client(), Webhook{Name: "big", URL: u}, `{}`, nil)
	if err == nil || !strings.Contains(err.Error(), "KiB") {
		t.Errorf("got %v", err)
	}
}

// Keys mapped to actions: 0 transfers to the operator, # hangs up, 5 is
// ignored; other keys still reach the model.
func TestKeyActions(t *testing.T) {
	h := newProfileHarness(t, nil, func(p *Profile) {
		withTools()(p)
		p.DTMF = map[rune]string{'0': KeyTransfer + "operator", '#': KeyHangup, '5': KeyIgnore}
	})
	h.c.onKey('5', "rfc4733")
	h.c.onKey('7', "rfc4733")
	if got := texts(h); len(got) != 1 || got[0] != "The caller pressed 7." {
		t.Errorf("text items %v", got)
	}
	h.c.onKey('0', "rfc4733")
	h.toolResult()
	if len(h.call.transfers) != 1 || h.call.transfers[0] != "sip:0@pbx.example" || h.ended != endTransferred {
		t.Errorf("transfers %v, ended %q", h.call.transfers, h.ended)
	}
	h2 := newProfileHarness(t, nil, func(p *Profile) { p.DTMF = map[rune]string{'#': KeyHangup} })
	h2.c.onKey('#', "sip-info")
	h2.play(20 * time.Millisecond)
	if h2.ended == "" {
		t.Error("# did not hang up")
	}
}

// Hold from the far end pauses playout (nothing lost) and the caller path;
// resume plays on from where it stopped. Early media never unholds.
func TestHoldAndResume(t *testing.T) {
	h := newHarness(t, nil)
	m := CallMedia{Remote: peer, Codec: h.c.media.CurrentPeer().Codec, DTMFPayloadType: 101}
	h.c.MediaChanged(m, true)
	if h.c.media.Held() {
		t.Fatal("early media held an inbound call")
	}
	h.c.connected()
	h.respond("resp_1", "item_1", 1000)
	h.play(300 * time.Millisecond)
	held := m
	held.OnHold = true
	h.c.MediaChanged(held, false)
	before := len(h.out)
	sentBefore, _ := h.audioMS()
	h.play(time.Second)
	if len(h.out) != before || !h.c.media.Held() {
		t.Fatalf("%d packets sent on hold", len(h.out)-before)
	}
	h.c.MediaChanged(m, false)
	h.play(time.Second)
	if sent, _ := h.audioMS(); sent != 1000 || sentBefore >= 1000 {
		t.Errorf("after resume the caller had heard %d ms of 1000 (%d before the hold)", sent, sentBefore)
	}
	// A new address from a re-INVITE moves the stream.
	moved := m
	moved.Remote = netip.MustParseAddrPort("127.0.0.1:40100")
	h.c.MediaChanged(moved, false)
	if h.c.media.CurrentPeer().Remote != moved.Remote {
		t.Error("the new media address was not taken")
	}
}

// FuzzToolArguments gives every built-in tool arbitrary arguments, as a
// model may: each answers with a JSON output or acts, never panics.
func FuzzToolArguments(f *testing.F) {
	f.Add(ToolTransfer, `{"target":"sales"}`)
	f.Add(ToolSendDTMF, `{"digits":"12#"}`)
	f.Add(ToolEndCall, `{"reason":7}`)
	f.Add(ToolSendDTMF, `{"digits":["1"]}`)
	f.Add(ToolTransfer, `[1,2]`)
	f.Fuzz(func(t *testing.T, name, args string) {
		h := newProfileHarness(t, nil, withTools(ToolEndCall, ToolTransfer, ToolSendDTMF))
		h.created("resp_1")
		h.functionCall("resp_1", "call_1", name, args)
		for _, m := range h.model.ofType("conversation.item.create") {
			item := m["item"].(map[string]any)
			if item["type"] == "function_call_output" && !json.Valid([]byte(item["output"].(string))) {
				t.Fatalf("output is not JSON: %v", item["output"])
			}
		}
	})
}

// A webhook's payload fields come from the call's context and win over the
// model's arguments of the same name: the model cannot make a customer up.
func TestWebhookPayloadFromTheCallsContext(t *testing.T) {
	w := Webhook{Name: "order_status", Payload: map[string]string{"customer": `{{header "X-Customer-Id"}}`, "caller": "{{caller}}"}}
	v := vars.Vars{Caller: "+15550100", Headers: map[string]string{"X-Customer-Id": "C-42"}}
	var got map[string]any
	if err := json.Unmarshal([]byte(w.withPayload(`{"order":"4711","customer":"made-up"}`, v)), &got); err != nil {
		t.Fatal(err)
	}
	if got["order"] != "4711" || got["customer"] != "C-42" || got["caller"] != "+15550100" {
		t.Errorf("payload %v", got)
	}
	if out := w.withPayload("", v); !strings.Contains(out, `"customer":"C-42"`) {
		t.Errorf("empty arguments: %s", out)
	}
	if out := w.withPayload(`[1,2]`, v); out != `[1,2]` {
		t.Errorf("arguments that are not an object were changed: %s", out)
	}
	if out := (Webhook{}).withPayload(`{"a":1}`, v); out != `{"a":1}` {
		t.Errorf("no payload changed the arguments: %s", out)
	}
}

// A transfer takes the model's summary and the target's headers (the
// call's context) to the next party, in the Refer-To URI.
func TestReferToCarriesContext(t *testing.T) {
	target := TransferTarget{URI: "sip:desk@pbx.example.com", Headers: map[string]string{
		"X-Customer-Id": `{{header "X-Customer-Id"}}`, "X-Empty": `{{var "nothing"}}`}}
	v := vars.Vars{Headers: map[string]string{"X-Customer-Id": "C 42&x"}}
	got := target.referTo("Wants a refund for order 4711; angry.", v)
	want := "sip:desk@pbx.example.com?X-Customer-Id=C%2042%26x&X-Summary=Wants%20a%20refund%20for%20order%204711%3B%20angry."
	if got != want {
		t.Errorf("refer to\n %s\nwant\n %s", got, want)
	}
	if got := (TransferTarget{URI: "sip:op@pbx"}).referTo("", vars.Vars{}); got != "sip:op@pbx" {
		t.Errorf("no context: %s", got)
	}
	long := strings.Repeat("é", 600)
	if got := (TransferTarget{URI: "sip:op@pbx"}).referTo(long, vars.Vars{}); strings.Count(got, "%C3%A9") != maxSummary {
		t.Errorf("the summary is not cut to %d characters", maxSummary)
	}
}
