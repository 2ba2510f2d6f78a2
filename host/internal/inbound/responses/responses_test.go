package responses

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/sdktest/golden"
)

// created is the creation time of every response in the golden files.
var created = time.Unix(1767225600, 0)

// converter returns a Converter for body whose item ids count up.
func converter(t *testing.T, body string) *Converter {
	t.Helper()
	req, err := Parse([]byte(body))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	c := NewConverter(req, "resp_test", created, true)
	n := 0
	c.newID = func(prefix string) string { n++; return fmt.Sprintf("%s_%d", prefix, n) }
	return c
}

func TestGoldenRequest(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		prior []string
	}{
		{name: "text", body: `{"model":"claude-x","input":"Hello"}`},
		{name: "items", body: `{"model":"claude-x","instructions":"Answer briefly.","input":[
			{"role":"developer","content":"Use metric units."},
			{"type":"message","role":"user","content":[{"type":"input_text","text":"What is in these?"},
				{"type":"input_image","image_url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"},
				{"type":"input_file","filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0="},
				{"type":"input_file","file_url":"https://example.com/b.pdf"}]},
			{"type":"reasoning","id":"rs_1","summary":[]},
			{"type":"message","role":"assistant","content":[{"type":"output_text","text":"A cat.","annotations":[]}]},
			{"role":"user","content":"Thanks"}]}`},
		{name: "function_round_trip", body: `{"model":"claude-x","parallel_tool_calls":false,
			"tools":[{"type":"function","name":"get_weather","description":"Weather in a city.","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"strict":true}],
			"tool_choice":{"type":"function","name":"get_weather"},
			"input":[{"role":"user","content":"Weather in Paris and Rome?"},
				{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Checking."}]},
				{"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
				{"type":"function_call","call_id":"call_2","name":"get_weather","arguments":"{\"city\":\"Rome\"}"},
				{"type":"function_call_output","call_id":"call_1","output":"18C"},
				{"type":"function_call_output","call_id":"call_2","output":[{"type":"input_text","text":"21C"}]}]}`},
		{name: "parameters", body: `{"model":"claude-x","input":"Name a city","stream":true,"max_output_tokens":64,"temperature":0.2,"top_p":0.9,
			"user":"u-1","metadata":{"team":"a"},"store":false,"reasoning":{"effort":"low","summary":"auto"},"include":["reasoning.encrypted_content"],"truncation":"disabled",
			"text":{"format":{"type":"json_schema","name":"city","description":"A city.","schema":{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]},"strict":true}}}`},
		{name: "json_object", body: `{"model":"claude-x","input":"JSON please","text":{"format":{"type":"json_object"}},"tool_choice":"required","tools":[{"type":"function","name":"f"}]}`},
		{name: "previous", body: `{"model":"claude-x","previous_response_id":"resp_1","instructions":"Be brief.","input":[{"type":"function_call_output","call_id":"call_1","output":"18C"}]}`,
			prior: []string{`{"type":"message","role":"user","content":"Weather in Paris?"}`,
				`{"id":"fc_1","type":"function_call","status":"completed","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := Parse([]byte(tt.body))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var prior []json.RawMessage
			for _, p := range tt.prior {
				prior = append(prior, json.RawMessage(p))
			}
			got, err := req.Chat(prior)
			if err != nil {
				t.Fatalf("Chat: %v", err)
			}
			var chat openai.ChatRequest
			if err := json.Unmarshal(got, &chat); err != nil {
				t.Fatalf("the chat body does not decode as a chat request: %v", err)
			}
			if err := chat.Validate(); err != nil {
				t.Errorf("the chat body is not a valid chat request: %v", err)
			}
			golden.Compare(t, filepath.Join("testdata", "request"), tt.name+".json", golden.JSON(t, got))
		})
	}
}

func TestRequestErrors(t *testing.T) {
	tests := []struct {
		name, body, param string
	}{
		{"not json", `{"model":`, ""},
		{"no model", `{"input":"x"}`, "model"},
		{"model not a string", `{"model":1,"input":"x"}`, "model"},
		{"no input", `{"model":"m"}`, "input"},
		{"empty input", `{"model":"m","input":[]}`, "input"},
		{"input a number", `{"model":"m","input":3}`, "input"},
		{"unknown parameter", `{"model":"m","input":"x","frobnicate":true}`, "frobnicate"},
		{"web_search tool", `{"model":"m","input":"x","tools":[{"type":"web_search"}]}`, "tools[0].type"},
		{"file_search tool", `{"model":"m","input":"x","tools":[{"type":"function","name":"f"},{"type":"file_search","vector_store_ids":["vs"]}]}`, "tools[1].type"},
		{"nameless function", `{"model":"m","input":"x","tools":[{"type":"function"}]}`, "tools[0].name"},
		{"hosted tool_choice", `{"model":"m","input":"x","tool_choice":{"type":"web_search_preview"}}`, "tool_choice.type"},
		{"bad tool_choice", `{"model":"m","input":"x","tool_choice":"sometimes"}`, "tool_choice"},
		{"json_schema without name", `{"model":"m","input":"x","text":{"format":{"type":"json_schema","schema":{}}}}`, "text.format.name"},
		{"json_schema without schema", `{"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"n"}}}`, "text.format.schema"},
		{"unknown format", `{"model":"m","input":"x","text":{"format":{"type":"yaml"}}}`, "text.format.type"},
		{"bad role", `{"model":"m","input":[{"role":"tool","content":"x"}]}`, "input[0].role"},
		{"item_reference", `{"model":"m","input":[{"type":"item_reference","id":"msg_1"}]}`, "input[0]"},
		{"computer call", `{"model":"m","input":[{"type":"computer_call_output","call_id":"c"}]}`, "input[0].type"},
		{"typeless item", `{"model":"m","input":[{"content":"x"}]}`, "input[0]"},
		{"image by file id", `{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"file_1"}]}]}`, "input[0].content[0].image_url"},
		{"file by file id", `{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"file_1"}]}]}`, "input[0].content[0]"},
		{"audio part", `{"model":"m","input":[{"role":"user","content":[{"type":"input_audio"}]}]}`, "input[0].content[0].type"},
		{"call without id", `{"model":"m","input":[{"type":"function_call","name":"f","arguments":"{}"}]}`, "input[0]"},
		{"output without id", `{"model":"m","input":[{"type":"function_call_output","output":"x"}]}`, "input[0]"},
		{"background", `{"model":"m","input":"x","background":true}`, "background"},
		{"conversation", `{"model":"m","input":"x","conversation":"conv_1"}`, "conversation"},
		{"zero max_output_tokens", `{"model":"m","input":"x","max_output_tokens":0}`, "max_output_tokens"},
		{"two objects", `{"model":"m","input":"x"} {}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.body))
			if err == nil {
				t.Fatal("Parse accepted the request")
			}
			e, ok := err.(*openai.Error)
			if !ok || e.Status != http.StatusBadRequest || e.Type != openai.TypeInvalidRequest {
				t.Fatalf("error %v, want a 400 invalid_request_error", err)
			}
			if e.Param != tt.param {
				t.Errorf("param %q, want %q (%s)", e.Param, tt.param, e.Message)
			}
		})
	}
}

// TestUnsupportedToolNamed checks that a refused tool is named in the
// message the client reads.
func TestUnsupportedToolNamed(t *testing.T) {
	for _, tool := range []string{"web_search", "file_search", "computer_use_preview", "code_interpreter", "mcp"} {
		_, err := Parse([]byte(`{"model":"m","input":"x","tools":[{"type":"` + tool + `"}]}`))
		e, _ := err.(*openai.Error)
		if e == nil || !strings.Contains(e.Message, `"`+tool+`"`) || e.Code != "unsupported_tool" {
			t.Errorf("%s: %v", tool, err)
		}
	}
}

// chat answers of the response and stream scenarios.
const (
	textCompletion = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"claude-x-2026","choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}],
		"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":8,"cache_write_tokens":2},"completion_tokens_details":{"reasoning_tokens":1}}}`
	toolCompletion = `{"id":"chatcmpl-2","object":"chat.completion","created":1,"model":"claude-x","choices":[{"index":0,"message":{"role":"assistant","content":"Checking.","tool_calls":[
		{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
		{"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":30,"completion_tokens":20,"total_tokens":50}}`
	lengthCompletion  = `{"model":"claude-x","choices":[{"index":0,"message":{"role":"assistant","content":"Once upon"},"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":2}}`
	filterCompletion  = `{"model":"claude-x","choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"content_filter"}]}`
	refusalCompletion = `{"model":"claude-x","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}`
)

func TestGoldenResponse(t *testing.T) {
	tests := []struct{ name, request, completion string }{
		{"text", `{"model":"claude-x","input":"Capital of France?","instructions":"Be brief.","metadata":{"team":"a"}}`, textCompletion},
		{"tool_calls", `{"model":"claude-x","input":"Weather?","tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"}}]}`, toolCompletion},
		{"length", `{"model":"claude-x","input":"Tell a story","max_output_tokens":2}`, lengthCompletion},
		{"content_filter", `{"model":"claude-x","input":"x"}`, filterCompletion},
		{"refusal", `{"model":"claude-x","input":"x"}`, refusalCompletion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := converter(t, tt.request)
			got, err := c.Response([]byte(tt.completion))
			if err != nil {
				t.Fatal(err)
			}
			if c.Final() == nil {
				t.Error("Final is nil after Response")
			}
			golden.Compare(t, filepath.Join("testdata", "response"), tt.name+".json", golden.JSON(t, got))
		})
	}
}

func TestResponseUnreadable(t *testing.T) {
	c := converter(t, `{"model":"m","input":"x"}`)
	_, err := c.Response([]byte(`not json`))
	if e, ok := err.(*openai.Error); !ok || e.Status != http.StatusBadGateway {
		t.Fatalf("error %v, want a 502", err)
	}
}

// chunk builds a chat.completion.chunk with one choice delta.
func chunk(delta string, finish string) string {
	f := "null"
	if finish != "" {
		f = `"` + finish + `"`
	}
	return `{"id":"c","object":"chat.completion.chunk","created":1,"model":"claude-x-2026","choices":[{"index":0,"delta":` + delta + `,"finish_reason":` + f + `}]}`
}

const usageChunk = `{"id":"c","object":"chat.completion.chunk","created":1,"model":"claude-x-2026","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}`

func TestGoldenStream(t *testing.T) {
	tests := []struct {
		name    string
		request string
		chunks  []string
		fail    *openai.Error
		// want is the response's final status.
		want string
	}{
		{name: "text", request: `{"model":"claude-x","input":"Capital?","stream":true}`, chunks: []string{
			chunk(`{"role":"assistant","content":""}`, ""), chunk(`{"content":"Par"}`, ""), chunk(`{"content":"is."}`, ""),
			chunk(`{}`, "stop"), usageChunk}, want: StatusCompleted},
		{name: "parallel_tool_calls", request: `{"model":"claude-x","input":"Weather?","stream":true,"tools":[{"type":"function","name":"get_weather"}]}`, chunks: []string{
			chunk(`{"role":"assistant","content":"Checking."}`, ""),
			chunk(`{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}`, ""),
			chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}`, ""),
			chunk(`{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]}`, ""),
			chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}`, ""),
			chunk(`{}`, "tool_calls"), usageChunk}, want: StatusCompleted},
		{name: "length", request: `{"model":"claude-x","input":"Story","stream":true,"max_output_tokens":2}`, chunks: []string{
			chunk(`{"content":"Once upon"}`, "length"), usageChunk}, want: StatusIncomplete},
		{name: "refusal", request: `{"model":"claude-x","input":"x","stream":true}`, chunks: []string{
			chunk(`{"refusal":"I can't"}`, ""), chunk(`{"refusal":" help."}`, "stop")}, want: StatusCompleted},
		{name: "error_mid_stream", request: `{"model":"claude-x","input":"x","stream":true}`, chunks: []string{
			chunk(`{"content":"Hal"}`, "")}, fail: openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_error", "the provider ended the stream: overloaded"),
			want: StatusFailed},
		{name: "empty", request: `{"model":"claude-x","input":"x","stream":true}`, want: StatusCompleted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := converter(t, tt.request)
			var out []byte
			for _, ch := range tt.chunks {
				var err error
				if out, err = c.Events(out, []byte(ch)); err != nil {
					t.Fatalf("Events: %v", err)
				}
			}
			if tt.fail != nil {
				out = c.StreamError(out, tt.fail)
			} else {
				out = c.End(out)
			}
			// Nothing follows the end.
			if more := c.End(nil); len(more) != 0 {
				t.Errorf("End after the end wrote %s", more)
			}
			final := c.Final()
			if final == nil || final.Status != tt.want {
				t.Fatalf("final response %+v, want status %s", final, tt.want)
			}
			checkStream(t, out, final)
			golden.Compare(t, filepath.Join("testdata", "stream"), tt.name+".txt", out)
		})
	}
}

// sseEvent is one event of a stream.
type sseEvent struct {
	name string
	data map[string]any
	raw  string
}

func parseSSE(t *testing.T, b []byte) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.name != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.raw = strings.TrimPrefix(line, "data: ")
			if err := json.Unmarshal([]byte(cur.raw), &cur.data); err != nil {
				t.Fatalf("event data is not JSON: %v: %s", err, cur.raw)
			}
		default:
			t.Fatalf("unexpected SSE line %q", line)
		}
	}
	return out
}

// checkStream checks the invariants of every stream: each event's type
// is its SSE name, sequence numbers count from 0, the lifecycle events
// frame the stream, every item is added before its deltas and done
// after them, and the deltas folded give the final response's output.
func checkStream(t *testing.T, b []byte, final *Response) {
	t.Helper()
	events := parseSSE(t, b)
	if len(events) < 3 {
		t.Fatalf("only %d events", len(events))
	}
	if events[0].name != "response.created" || events[1].name != "response.in_progress" {
		t.Errorf("stream starts with %s, %s", events[0].name, events[1].name)
	}
	text := map[string]string{}
	args := map[string]string{}
	open := map[float64]bool{}
	for i, ev := range events {
		if ev.data["type"] != ev.name {
			t.Errorf("event %d: type %v under event: %s", i, ev.data["type"], ev.name)
		}
		if seq, _ := ev.data["sequence_number"].(float64); int(seq) != i {
			t.Errorf("event %d (%s): sequence_number %v", i, ev.name, ev.data["sequence_number"])
		}
		idx, _ := ev.data["output_index"].(float64)
		switch ev.name {
		case "response.output_item.added":
			open[idx] = true
		case "response.output_item.done":
			if !open[idx] {
				t.Errorf("event %d: item %v done before it was added", i, idx)
			}
			delete(open, idx)
		case "response.output_text.delta", "response.refusal.delta", "response.function_call_arguments.delta",
			"response.content_part.added", "response.content_part.done":
			if !open[idx] {
				t.Errorf("event %d: %s for item %v that is not open", i, ev.name, idx)
			}
		}
		id, _ := ev.data["item_id"].(string)
		switch ev.name {
		case "response.output_text.delta", "response.refusal.delta":
			text[id] += ev.data["delta"].(string)
		case "response.function_call_arguments.delta":
			args[id] += ev.data["delta"].(string)
		}
	}
	if len(open) > 0 && final.Status != StatusFailed {
		t.Errorf("items left open: %v", open)
	}
	last := events[len(events)-1]
	switch final.Status {
	case StatusCompleted:
		if last.name != "response.completed" {
			t.Errorf("last event %s", last.name)
		}
	case StatusIncomplete:
		if last.name != "response.incomplete" {
			t.Errorf("last event %s", last.name)
		}
	case StatusFailed:
		if last.name != "response.failed" || events[len(events)-2].name != "error" {
			t.Errorf("stream ends with %s, %s", events[len(events)-2].name, last.name)
		}
		return
	}
	for _, it := range final.Output {
		switch it.Type {
		case "message":
			var s string
			for _, p := range it.Content {
				s += p.Text + p.Refusal
			}
			if text[it.ID] != s {
				t.Errorf("message %s: deltas %q, final %q", it.ID, text[it.ID], s)
			}
		case "function_call":
			if args[it.ID] != it.Arguments {
				t.Errorf("call %s: deltas %q, final %q", it.ID, args[it.ID], it.Arguments)
			}
			if !json.Valid([]byte(it.Arguments)) {
				t.Errorf("call %s: arguments %q are not JSON", it.ID, it.Arguments)
			}
		}
	}
}

func TestStreamUnreadableChunk(t *testing.T) {
	c := converter(t, `{"model":"m","input":"x","stream":true}`)
	if _, err := c.Events(nil, []byte(`{"choices":`)); err == nil {
		t.Fatal("Events accepted a broken chunk")
	}
}

func TestStoredItems(t *testing.T) {
	c := converter(t, `{"model":"claude-x","input":"Weather?","tools":[{"type":"function","name":"get_weather"}]}`)
	if _, err := c.Response([]byte(toolCompletion)); err != nil {
		t.Fatal(err)
	}
	rec := Stored{Response: c.Final(), Input: c.req.Items()}
	back, err := DecodeStored(rec.Encode())
	if err != nil {
		t.Fatal(err)
	}
	items := back.Items()
	if len(items) != 4 {
		t.Fatalf("%d items, want the input and three output items", len(items))
	}
	// The replayed items are valid input: the next request translates.
	next, err := Parse([]byte(`{"model":"claude-x","input":[{"type":"function_call_output","call_id":"call_1","output":"18C"},{"type":"function_call_output","call_id":"call_2","output":"21C"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, err := next.Chat(items)
	if err != nil {
		t.Fatal(err)
	}
	var chat openai.ChatRequest
	if err := json.Unmarshal(body, &chat); err != nil {
		t.Fatal(err)
	}
	roles := []string{}
	for _, m := range chat.Messages {
		roles = append(roles, m.Role)
	}
	if got := strings.Join(roles, ","); got != "user,assistant,tool,tool" {
		t.Errorf("roles %s", got)
	}
	if a := chat.Messages[1]; a.Content.String() != "Checking." || len(a.ToolCalls) != 2 || a.ToolCalls[1].ID != "call_2" {
		t.Errorf("assistant turn %+v", a)
	}
	if _, err := DecodeStored([]byte(`{"input":[]}`)); err == nil {
		t.Error("DecodeStored accepted a record without response")
	}
}

func TestMemory(t *testing.T) {
	ctx := t.Context()
	m := NewMemory(2, 0)
	now := created
	m.now = func() time.Time { return now }
	hour := now.Add(time.Hour)
	if err := m.PutResponse(ctx, "resp_a", "alice", []byte("a"), hour); err != nil {
		t.Fatal(err)
	}
	if b, err := m.GetResponse(ctx, "resp_a", "alice"); err != nil || string(b) != "a" {
		t.Fatalf("get: %q %v", b, err)
	}
	if _, err := m.GetResponse(ctx, "resp_a", "bob"); !m.IsNotFound(err) {
		t.Errorf("another owner's response: %v", err)
	}
	if _, err := m.GetResponse(ctx, "resp_x", "alice"); !m.IsNotFound(err) {
		t.Errorf("absent response: %v", err)
	}
	if err := m.PutResponse(ctx, "", "alice", nil, hour); err == nil {
		t.Error("an empty id was stored")
	}
	// Full: the entry that expires soonest goes.
	m.PutResponse(ctx, "resp_b", "alice", []byte("b"), now.Add(time.Minute))
	m.PutResponse(ctx, "resp_c", "alice", []byte("c"), hour)
	if _, err := m.GetResponse(ctx, "resp_b", "alice"); !m.IsNotFound(err) {
		t.Errorf("the soonest-expiring entry stayed: %v", err)
	}
	if m.Len() != 2 {
		t.Errorf("%d entries, want 2", m.Len())
	}
	// Expired entries are not found and are dropped.
	now = hour
	if _, err := m.GetResponse(ctx, "resp_a", "alice"); !m.IsNotFound(err) {
		t.Errorf("an expired response was found: %v", err)
	}
	if m.Len() != 1 {
		t.Errorf("%d entries after expiry, want 1", m.Len())
	}
	if err := m.DeleteResponse(ctx, "resp_c", "bob"); !m.IsNotFound(err) {
		t.Errorf("another owner deleted: %v", err)
	}
	now = created
	if err := m.DeleteResponse(ctx, "resp_c", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.GetResponse(ctx, "resp_c", "alice"); !m.IsNotFound(err) {
		t.Errorf("a deleted response was found: %v", err)
	}
}

func TestMemoryBytes(t *testing.T) {
	ctx := t.Context()
	m := NewMemory(100, 10)
	hour := time.Now().Add(time.Hour)
	if err := m.PutResponse(ctx, "big", "alice", make([]byte, 11), hour); err == nil {
		t.Error("a record larger than the store was kept")
	}
	m.PutResponse(ctx, "a", "alice", make([]byte, 6), hour.Add(time.Minute))
	m.PutResponse(ctx, "b", "alice", make([]byte, 3), hour)
	// 6+3+4 > 10: b, which expires first, goes.
	m.PutResponse(ctx, "c", "alice", make([]byte, 4), hour.Add(2*time.Minute))
	if _, err := m.GetResponse(ctx, "b", "alice"); !m.IsNotFound(err) {
		t.Errorf("b stayed: %v", err)
	}
	if _, err := m.GetResponse(ctx, "a", "alice"); err != nil {
		t.Errorf("a went: %v", err)
	}
	// Replacing an entry frees its bytes first.
	if err := m.PutResponse(ctx, "c", "alice", make([]byte, 4), hour); err != nil || m.Len() != 2 {
		t.Errorf("replace: %v, %d entries", err, m.Len())
	}
	if m.size != 10 {
		t.Errorf("size %d, want 10", m.size)
	}
}
