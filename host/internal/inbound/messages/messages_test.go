package messages

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n got: %s\nwant: %s", name, got, want)
	}
}

// indent pretty-prints a JSON body for a readable golden file.
func indent(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return append(out.Bytes(), '\n')
}

const png = "iVBORw0KGgo="

func TestRequest(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		stream  bool
		ignored []string
	}{
		{name: "text", body: `{"model":"claude-sonnet-4-5","max_tokens":256,"messages":[{"role":"user","content":"Hello"}]}`},
		{name: "system_blocks_and_params", body: `{"model":"m","max_tokens":100,"system":[{"type":"text","text":"Be brief."},{"type":"text","text":"Answer in French.","cache_control":{"type":"ephemeral"}}],
			"messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]}],"temperature":0.5,"top_p":0.9,"top_k":40,
			"stop_sequences":["END"],"metadata":{"user_id":"u-1"},"stream":true}`, stream: true, ignored: []string{"top_k", "cache_control"}},
		{name: "images_and_documents", body: `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[
			{"type":"image","source":{"type":"base64","media_type":"image/png","data":"` + png + `"}},
			{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}},
			{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0xLjQK"},"title":"report.pdf"},
			{"type":"document","source":{"type":"text","media_type":"text/plain","data":"plain words"}},
			{"type":"document","source":{"type":"url","url":"https://example.com/x.pdf"}},
			{"type":"document","source":{"type":"content","content":[{"type":"text","text":"inline"}]}},
			{"type":"text","text":"Summarise these."}]}]}`},
		{name: "tool_round_trip", body: `{"model":"m","max_tokens":50,
			"tools":[{"name":"get_weather","description":"Weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}},
			         {"name":"get_time","input_schema":{"type":"object"}}],
			"tool_choice":{"type":"any","disable_parallel_tool_use":true},
			"messages":[{"role":"user","content":"Weather and time in Paris?"},
			 {"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"sig"},{"type":"text","text":"Checking."},
			   {"type":"tool_use","id":"toolu_llmp_call_1","name":"get_weather","input":{"city": "Paris"}},
			   {"type":"tool_use","id":"toolu_01abc","name":"get_time","input":{}}]},
			 {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_llmp_call_1","content":"sunny"},
			   {"type":"tool_result","tool_use_id":"toolu_01abc","is_error":true,"content":[{"type":"text","text":"clock down"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"` + png + `"}}]},
			   {"type":"text","text":"Thanks"}]}]}`, ignored: []string{"thinking blocks"}},
		{name: "tool_choice_named_and_thinking", body: `{"model":"m","max_tokens":20000,"thinking":{"type":"enabled","budget_tokens":8000},
			"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"f"},
			"messages":[{"role":"user","content":"go"}]}`},
		{name: "unmapped_fields", body: `{"model":"m","max_tokens":5,"service_tier":"auto","mcp_servers":[{"type":"url","url":"https://mcp.example","name":"x"}],"container":null,"top_k":3,"messages":[{"role":"user","content":"x"}]}`,
			ignored: []string{"service_tier", "mcp_servers", "top_k"}},
		{name: "tool_choice_none", body: `{"model":"m","max_tokens":5,"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"none"},"messages":[{"role":"user","content":"x"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chat, info, err := Request([]byte(tt.body))
			if err != nil {
				t.Fatalf("Request: %v", err)
			}
			if info.Stream != tt.stream || info.Model == "" {
				t.Errorf("info %+v, want stream %v", info, tt.stream)
			}
			if strings.Join(info.Ignored, ",") != strings.Join(tt.ignored, ",") {
				t.Errorf("ignored %q, want %q", info.Ignored, tt.ignored)
			}
			var cr openai.ChatRequest
			if err := json.Unmarshal(chat, &cr); err != nil {
				t.Fatalf("the chat body does not decode as a chat request: %v", err)
			}
			golden(t, "request_"+tt.name+".json", indent(t, chat))
		})
	}
}

func TestRequestErrors(t *testing.T) {
	tests := []struct {
		name, body, param string
	}{
		{"not json", `{`, ""},
		{"trailing value", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}]} {}`, ""},
		{"no model", `{"max_tokens":1,"messages":[{"role":"user","content":"x"}]}`, "model"},
		{"no max_tokens", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, "max_tokens"},
		{"zero max_tokens", `{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`, "max_tokens"},
		{"no messages", `{"model":"m","max_tokens":1,"messages":[]}`, "messages"},
		{"bad role", `{"model":"m","max_tokens":1,"messages":[{"role":"system","content":"x"}]}`, "messages.0.role"},
		{"null content", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":null}]}`, "messages.0.content"},
		{"unknown block", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"video"}]}]}`, "messages.0.content.0.type"},
		{"bad image type", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/bmp","data":"AA=="}}]}]}`, "messages.0.content.0.source.media_type"},
		{"bad base64", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"%%%"}}]}]}`, "messages.0.content.0.source.data"},
		{"tool_use in user", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_use","id":"a","name":"f","input":{}}]}]}`, "messages.0.content.0.type"},
		{"tool_use without id", `{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"tool_use","name":"f","input":{}}]}]}`, "messages.0.content.0"},
		{"tool input not object", `{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"a","name":"f","input":[1]}]}]}`, "messages.0.content.0.input"},
		{"tool_result without id", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","content":"x"}]}]}`, "messages.0.content.0.tool_use_id"},
		{"temperature", `{"model":"m","max_tokens":1,"temperature":1.5,"messages":[{"role":"user","content":"x"}]}`, "temperature"},
		{"server tool", `{"model":"m","max_tokens":1,"tools":[{"type":"web_search_20250305","name":"web_search"}],"messages":[{"role":"user","content":"x"}]}`, "tools.0.type"},
		{"tool without schema", `{"model":"m","max_tokens":1,"tools":[{"name":"f"}],"messages":[{"role":"user","content":"x"}]}`, "tools.0.input_schema"},
		{"tool choice unknown tool", `{"model":"m","max_tokens":1,"tools":[{"name":"f","input_schema":{}}],"tool_choice":{"type":"tool","name":"g"},"messages":[{"role":"user","content":"x"}]}`, "tool_choice.name"},
		{"tool choice type", `{"model":"m","max_tokens":1,"tool_choice":{"type":"some"},"messages":[{"role":"user","content":"x"}]}`, "tool_choice.type"},
		{"thinking budget", `{"model":"m","max_tokens":2000,"thinking":{"type":"enabled","budget_tokens":100},"messages":[{"role":"user","content":"x"}]}`, "thinking.budget_tokens"},
		{"thinking over max", `{"model":"m","max_tokens":2000,"thinking":{"type":"enabled","budget_tokens":4000},"messages":[{"role":"user","content":"x"}]}`, "thinking.budget_tokens"},
		{"system image", `{"model":"m","max_tokens":1,"system":[{"type":"image"}],"messages":[{"role":"user","content":"x"}]}`, "system.0.type"},
		{"empty stop sequence", `{"model":"m","max_tokens":1,"stop_sequences":[""],"messages":[{"role":"user","content":"x"}]}`, "stop_sequences.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Request([]byte(tt.body))
			var e *openai.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v, want an *openai.Error", err)
			}
			if e.Status != http.StatusBadRequest || e.Param != tt.param || e.Message == "" {
				t.Errorf("error %d param %q (%s), want 400 param %q", e.Status, e.Param, e.Message, tt.param)
			}
		})
	}
}

func TestResponse(t *testing.T) {
	tests := []struct{ name, body string }{
		{"text", `{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],
			"usage":{"prompt_tokens":30,"completion_tokens":5,"total_tokens":35,"prompt_tokens_details":{"cached_tokens":10,"cache_write_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}`},
		{"tool_calls", `{"id":"chatcmpl-2","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Let me check.","tool_calls":[
			{"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}},
			{"id":"tooluse:b/1","type":"function","function":{"name":"get_time","arguments":"not json"}}]},"finish_reason":"tool_calls"}],
			"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}`},
		{"length", `{"id":"msg_01x","model":"claude","choices":[{"index":0,"message":{"role":"assistant","content":"cut"},"finish_reason":"length"}]}`},
		{"refusal", `{"id":"c","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I cannot help with that."},"finish_reason":"stop"}]}`},
		{"content_filter_with_reasoning", `{"id":"c","model":"m","choices":[{"index":0,"message":{"role":"assistant","reasoning_content":"thinking...","content":""},"finish_reason":"content_filter"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Response([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "response_"+tt.name+".json", indent(t, out))
		})
	}
	for _, bad := range []string{`{`, `{"choices":[]}`, `[]`} {
		if _, err := Response([]byte(bad)); err == nil {
			t.Errorf("Response(%s) accepted", bad)
		}
	}
}

func TestStream(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
	}{
		{"text", []string{
			`{"id":"chatcmpl-9","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`,
			`{"id":"chatcmpl-9","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hel"}}]}`,
			`{"id":"chatcmpl-9","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"lo \"you\""}}]}`,
			`{"id":"chatcmpl-9","model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
			`{"id":"chatcmpl-9","model":"gpt-4o","choices":[],"usage":{"prompt_tokens":20,"completion_tokens":3,"total_tokens":23,"prompt_tokens_details":{"cached_tokens":8}}}`,
		}},
		{"parallel_tools", []string{
			`{"id":"c","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Checking."}}]}`,
			`{"id":"c","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}`,
			`{"id":"c","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}`,
			`{"id":"c","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}}]}`,
			`{"id":"c","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"get_time","arguments":"{}"}}]}}]}`,
			`{"id":"c","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":5,"completion_tokens":9,"total_tokens":14}}`,
		}},
		{"reasoning_then_text_length", []string{
			`{"id":"c","model":"m","choices":[{"index":0,"delta":{"reasoning_content":"Let me think"}}]}`,
			`{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"Answer"}}]}`,
			`{"id":"c","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}`,
		}},
		{"empty", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStream()
			var out []byte
			for _, c := range tt.chunks {
				var err error
				if out, err = s.Events(out, []byte(c)); err != nil {
					t.Fatal(err)
				}
			}
			out = s.End(out)
			checkEvents(t, out)
			golden(t, "stream_"+tt.name+".sse", out)
		})
	}
}

// checkEvents checks that every event is framed, names its type in its
// data, and that the sequence is one Anthropic clients accept.
func checkEvents(t *testing.T, out []byte) {
	t.Helper()
	var names []string
	open := -1
	for _, ev := range strings.Split(strings.TrimSuffix(string(out), "\n\n"), "\n\n") {
		lines := strings.Split(ev, "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "event: ") || !strings.HasPrefix(lines[1], "data: ") {
			t.Fatalf("malformed event %q", ev)
		}
		name := strings.TrimPrefix(lines[0], "event: ")
		var data struct {
			Type  string `json:"type"`
			Index *int   `json:"index"`
		}
		if err := json.Unmarshal([]byte(strings.TrimPrefix(lines[1], "data: ")), &data); err != nil || data.Type != name {
			t.Fatalf("event %s has data type %q (%v)", name, data.Type, err)
		}
		switch name {
		case "content_block_start":
			if open >= 0 {
				t.Fatalf("block %d opened while %d is open", *data.Index, open)
			}
			open = *data.Index
		case "content_block_delta":
			if *data.Index != open {
				t.Fatalf("delta for block %d while %d is open", *data.Index, open)
			}
		case "content_block_stop":
			if *data.Index != open {
				t.Fatalf("stop for block %d while %d is open", *data.Index, open)
			}
			open = -1
		}
		names = append(names, name)
	}
	if len(names) < 4 || names[0] != "message_start" || names[len(names)-2] != "message_delta" || names[len(names)-1] != "message_stop" || open >= 0 {
		t.Fatalf("event sequence %v", names)
	}
}

func TestStreamInterleavedTools(t *testing.T) {
	s := NewStream()
	var err error
	for _, c := range []string{
		`{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":""}}]}}]}`,
		`{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"g","arguments":""}}]}}]}`,
		`{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}`,
	} {
		if _, err = s.Events(nil, []byte(c)); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatal("interleaved tool arguments were accepted")
	}
}

func TestToolIDs(t *testing.T) {
	for _, id := range []string{"call_abc", "toolu_01XYZ", "tooluse:a/b+c=", "toolu_llmp_x", "", "call-1"} {
		got := ToolID(id)
		if !strings.HasPrefix(got, "toolu_") || !idSafe(got) {
			t.Errorf("ToolID(%q) = %q, not an Anthropic-shaped id", id, got)
		}
		if back := ChatToolID(got); back != id {
			t.Errorf("ChatToolID(ToolID(%q)) = %q", id, back)
		}
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		status int
		want   string
	}{
		{400, "invalid_request_error"}, {401, "authentication_error"}, {403, "permission_error"}, {404, "not_found_error"},
		{413, "request_too_large"}, {429, "rate_limit_error"}, {500, "api_error"}, {502, "api_error"}, {503, "overloaded_error"},
		{529, "overloaded_error"}, {504, "api_error"}, {422, "invalid_request_error"},
	}
	for _, tt := range tests {
		e := openai.NewError(tt.status, "x", "some_code", "went wrong")
		var body struct {
			Type  string `json:"type"`
			Error struct {
				Type, Message string
			} `json:"error"`
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal(Error(e, "req_1"), &body); err != nil {
			t.Fatal(err)
		}
		if body.Type != "error" || body.Error.Type != tt.want || body.Error.Message != "[some_code] went wrong" || body.RequestID != "req_1" {
			t.Errorf("status %d: %+v, want type %s", tt.status, body, tt.want)
		}
	}
	got := string(StreamError(nil, openai.NewError(529, "x", "", "Overloaded")))
	if got != "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n" {
		t.Errorf("stream error %q", got)
	}
}

func TestNativeBodies(t *testing.T) {
	in := []byte(`{"model":"claude","max_tokens":5,"stream":true,"thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"s"}]}]}`)
	b, err := NativeBody(in, "claude-sonnet-4-5-20250929")
	if err != nil || !strings.Contains(string(b), `"model":"claude-sonnet-4-5-20250929"`) || !strings.Contains(string(b), `"signature":"s"`) || !strings.Contains(string(b), `"stream":true`) {
		t.Errorf("NativeBody %s, %v", b, err)
	}
	b, err = BedrockBody(in, " beta-a, beta-b ,")
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	if top["model"] != nil || top["stream"] != nil || string(top["anthropic_version"]) != `"bedrock-2023-05-31"` || string(top["anthropic_beta"]) != `["beta-a","beta-b"]` {
		t.Errorf("BedrockBody %s", b)
	}
	if _, err := NativeBody([]byte(`[]`), "m"); err == nil {
		t.Error("NativeBody accepted an array")
	}
}

func TestMeter(t *testing.T) {
	var m Meter
	m.Body([]byte(`{"id":"msg_1","model":"claude","usage":{"input_tokens":3,"cache_read_input_tokens":4,"cache_creation_input_tokens":5,"output_tokens":6}}`))
	if n, ok := m.Total(); !ok || n != 18 {
		t.Errorf("Body: total %d %v", n, ok)
	}
	stream := "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":10,\"output_tokens\":1}}}\r\n\r\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"message_delta\"}}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":52}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	// Any cut of the stream into writes reads the same.
	for _, size := range []int{1, 7, 64, len(stream)} {
		var s Meter
		for i := 0; i < len(stream); i += size {
			s.Write([]byte(stream[min(i, len(stream)):min(i+size, len(stream))]))
		}
		if n, ok := s.Total(); !ok || n != 87 {
			t.Errorf("writes of %d: total %d %v", size, n, ok)
		}
		want := `{"id":"msg_2","model":"claude-x","object":"chat.completion","usage":{"completion_tokens":52,"prompt_tokens":35,"prompt_tokens_details":{"cached_tokens":10,"cache_write_tokens":0},"total_tokens":87}}`
		if got := string(s.Chat()); got != want {
			t.Errorf("Chat %s\nwant %s", got, want)
		}
	}
	var none Meter
	none.Write([]byte("event: ping\ndata: {\"type\":\"ping\"}\n\n"))
	if _, ok := none.Total(); ok || none.Ended() || none.Pending() {
		t.Error("usage known, or ended, without a usage event")
	}
	none.Write([]byte("event: content_block_delta\ndata: {\"type\":\"cont"))
	if !none.Pending() || none.Ended() {
		t.Error("a cut line is not pending")
	}
	var ended Meter
	ended.Write([]byte("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"))
	var failed Meter
	failed.Write([]byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"x\"}}\n\n"))
	if !ended.Ended() || !failed.Ended() {
		t.Error("message_stop or error did not end the stream")
	}
}

func TestUpstreamMessage(t *testing.T) {
	for body, want := range map[string]string{
		`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`: "Overloaded",
		`{"message":"Too many requests"}`:                                             "Too many requests",
		`{"Message":"AWS spelling"}`:                                                  "AWS spelling",
		`<html>`:                                                                      "",
	} {
		if got := UpstreamMessage([]byte(body)); got != want {
			t.Errorf("UpstreamMessage(%s) = %q, want %q", body, got, want)
		}
	}
}
