package anthropicfake

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func start(t *testing.T) *Server {
	t.Helper()
	f := New(Options{})
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

type result struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, f *Server, method, path string, h map[string]string, body string) result {
	t.Helper()
	req, err := http.NewRequest(method, f.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, string(b)}
}

func auth(f *Server) map[string]string {
	return map[string]string{"x-api-key": f.APIKey(), "anthropic-version": "2023-06-01", "content-type": "application/json"}
}

// errorOf decodes an Anthropic error body and checks its shape.
func errorOf(t *testing.T, body string) (typ, msg string) {
	t.Helper()
	var eb struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Type != "error" || eb.RequestID == "" {
		t.Fatalf("not an Anthropic error body: %s", body)
	}
	return eb.Error.Type, eb.Error.Message
}

func TestAuth(t *testing.T) {
	f := start(t)
	body := `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`
	tests := []struct {
		name       string
		header     map[string]string
		wantStatus int
		wantType   string
	}{
		{"no key", map[string]string{"anthropic-version": "2023-06-01"}, 401, "authentication_error"},
		{"wrong key", map[string]string{"x-api-key": "nope", "anthropic-version": "2023-06-01"}, 401, "authentication_error"},
		{"bearer instead of key", map[string]string{"authorization": "Bearer " + f.APIKey(), "anthropic-version": "2023-06-01"}, 401, "authentication_error"},
		{"no version", map[string]string{"x-api-key": f.APIKey()}, 400, "invalid_request_error"},
		{"ok", auth(f), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, f, http.MethodPost, "/v1/messages", tt.header, body)
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			if tt.wantType != "" {
				if typ, _ := errorOf(t, r.body); typ != tt.wantType {
					t.Errorf("type = %q, want %q", typ, tt.wantType)
				}
			}
		})
	}
}

func TestValidation(t *testing.T) {
	f := start(t)
	user := func(c string) string { return `{"role":"user","content":` + c + `}` }
	asst := func(c string) string { return `{"role":"assistant","content":` + c + `}` }
	req := func(msgs ...string) string {
		return `{"model":"m","max_tokens":10,"messages":[` + strings.Join(msgs, ",") + `]}`
	}
	toolUse := `[{"type":"tool_use","id":"toolu_1","name":"f","input":{}}]`
	tests := []struct {
		name, body, wantMsg string
	}{
		{"valid", req(user(`"hi"`)), ""},
		{"valid tool round trip", req(user(`"hi"`), asst(toolUse), user(`[{"type":"tool_result","tool_use_id":"toolu_1","content":"ok"}]`)), ""},
		{"missing max_tokens", `{"model":"m","messages":[` + user(`"hi"`) + `]}`, "max_tokens: Field required"},
		{"missing model", `{"max_tokens":1,"messages":[` + user(`"hi"`) + `]}`, "model: Field required"},
		{"no messages", `{"model":"m","max_tokens":1,"messages":[]}`, "at least one message"},
		{"extra field", `{"model":"m","max_tokens":1,"n":1,"messages":[` + user(`"hi"`) + `]}`, "n: Extra inputs are not permitted"},
		{"first is assistant", req(asst(`"hi"`), user(`"x"`)), `first message must use the "user" role`},
		{"roles repeat", req(user(`"a"`), user(`"b"`)), "roles must alternate"},
		{"system role", req(`{"role":"system","content":"x"}`), "Input should be 'user' or 'assistant'"},
		{"empty text", req(user(`[{"type":"text","text":""}]`)), "text content blocks must be non-empty"},
		{"orphan tool result", req(user(`"hi"`), asst(`"ok"`), user(`[{"type":"tool_result","tool_use_id":"toolu_9","content":"x"}]`)), "unexpected `tool_use_id`"},
		{"unanswered tool use", req(user(`"hi"`), asst(toolUse), user(`"no results"`)), "without `tool_result` blocks"},
		{"bad image type", req(user(`[{"type":"image","source":{"type":"base64","media_type":"image/bmp","data":"AAAA"}}]`)), "media_type"},
		{"bad base64", req(user(`[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"***"}}]`)), "invalid base64"},
		{"pdf as text source type", req(user(`[{"type":"document","source":{"type":"text","media_type":"application/pdf","data":"x"}}]`)), "text/plain"},
		{"tool schema not object", `{"model":"m","max_tokens":1,"tools":[{"name":"f","input_schema":{"type":"string"}}],"messages":[` + user(`"hi"`) + `]}`, "input_schema.type"},
		{"forced unknown tool", `{"model":"m","max_tokens":1,"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"g"},"messages":[` + user(`"hi"`) + `]}`, "not found in tools"},
		{"temperature above 1", `{"model":"m","max_tokens":1,"temperature":1.5,"messages":[` + user(`"hi"`) + `]}`, "temperature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, f, http.MethodPost, "/v1/messages", auth(f), tt.body)
			if tt.wantMsg == "" {
				if r.status != 200 {
					t.Fatalf("status %d: %s", r.status, r.body)
				}
				return
			}
			if r.status != 400 {
				t.Fatalf("status = %d, want 400: %s", r.status, r.body)
			}
			typ, msg := errorOf(t, r.body)
			if typ != "invalid_request_error" || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("error = %s %q, want invalid_request_error containing %q", typ, msg, tt.wantMsg)
			}
		})
	}
}

func TestStreamFraming(t *testing.T) {
	f := start(t)
	f.SetScenario(Scenario{Content: []Block{Text("Hi there"), ToolUse("toolu_1", "f", map[string]any{"a": "b c"})},
		Pings: true, SplitEvents: true, ChunkSize: 3, Usage: Usage{InputTokens: 5, OutputTokens: 7, CacheReadInputTokens: 2}})
	r := do(t, f, http.MethodPost, "/v1/messages", auth(f), `{"model":"m","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if r.status != 200 || r.header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Fatalf("status %d content-type %q", r.status, r.header.Get("Content-Type"))
	}
	if strings.Contains(r.body, "[DONE]") {
		t.Error("Anthropic streams have no [DONE]")
	}
	sc := bufio.NewScanner(strings.NewReader(r.body))
	var names []string
	var partial strings.Builder
	for sc.Scan() {
		line := sc.Text()
		name, ok := strings.CutPrefix(line, "event: ")
		if !ok {
			t.Fatalf("expected an event line, got %q", line)
		}
		sc.Scan()
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			t.Fatalf("expected a data line, got %q", sc.Text())
		}
		var ev struct {
			Type  string `json:"type"`
			Delta struct {
				PartialJSON string `json:"partial_json"`
			} `json:"delta"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil || ev.Type != name {
			t.Fatalf("data %q does not carry type %q", data, name)
		}
		partial.WriteString(ev.Delta.PartialJSON)
		names = append(names, name)
		sc.Scan()
		if sc.Text() != "" {
			t.Fatalf("expected a blank line after an event, got %q", sc.Text())
		}
	}
	if names[0] != "message_start" || names[1] != "ping" || names[len(names)-1] != "message_stop" || names[len(names)-2] != "message_delta" {
		t.Errorf("event order: %v", names)
	}
	if partial.String() != `{"a": "b c"}` {
		t.Errorf("tool input streamed as %q", partial.String())
	}
}

func TestStreamFailures(t *testing.T) {
	f := start(t)
	body := `{"model":"m","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}`

	f.SetScenario(Scenario{ErrorAfter: 2})
	r := do(t, f, http.MethodPost, "/v1/messages", auth(f), body)
	if !strings.HasSuffix(r.body, "event: error\ndata: {\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded_error\"},\"type\":\"error\"}\n\n") ||
		strings.Count(r.body, "event: ") != 3 {
		t.Errorf("error after 2 events:\n%s", r.body)
	}

	f.SetScenario(Scenario{CutAfter: 2})
	r = do(t, f, http.MethodPost, "/v1/messages", auth(f), body)
	if strings.Contains(r.body, "message_stop") || strings.HasSuffix(r.body, "\n\n") || strings.Count(r.body, "event: ") != 3 {
		t.Errorf("cut after 2 events:\n%s", r.body)
	}
}

func TestFailNextAndRecording(t *testing.T) {
	f := start(t)
	f.FailNext(2, Failure{Status: 529})
	f.FailNext(1, Failure{Status: 429, RetryAfter: "9"})
	body := `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	for i, want := range []int{529, 529, 429, 200} {
		r := do(t, f, http.MethodPost, "/v1/messages", auth(f), body)
		if r.status != want {
			t.Fatalf("request %d: status %d, want %d", i, r.status, want)
		}
		if want == 429 && r.header.Get("retry-after") != "9" {
			t.Errorf("retry-after = %q", r.header.Get("retry-after"))
		}
		if want == 529 {
			if typ, _ := errorOf(t, r.body); typ != "overloaded_error" {
				t.Errorf("529 type = %q", typ)
			}
		}
	}
	if f.Requests() != 4 {
		t.Errorf("requests = %d, want 4", f.Requests())
	}
	last := f.LastRequest()
	if last.Method != http.MethodPost || last.Path != "/v1/messages" || string(last.Body) != body || last.Header.Get("x-api-key") != f.APIKey() {
		t.Errorf("last request = %+v", last)
	}
}

func TestModels(t *testing.T) {
	f := start(t)
	var page struct {
		Data []struct {
			Type string `json:"type"`
			ID   string `json:"id"`
		} `json:"data"`
		HasMore bool   `json:"has_more"`
		LastID  string `json:"last_id"`
	}
	r := do(t, f, http.MethodGet, "/v1/models?limit=2", auth(f), "")
	if err := json.Unmarshal([]byte(r.body), &page); err != nil || len(page.Data) != 2 || !page.HasMore || page.Data[0].Type != "model" {
		t.Fatalf("first page: %s", r.body)
	}
	r = do(t, f, http.MethodGet, "/v1/models?limit=2&after_id="+page.LastID, auth(f), "")
	page.Data = nil
	if err := json.Unmarshal([]byte(r.body), &page); err != nil || len(page.Data) != 1 || page.HasMore {
		t.Fatalf("second page: %s", r.body)
	}
	if r := do(t, f, http.MethodGet, "/v1/nothing", auth(f), ""); r.status != 404 {
		t.Errorf("unknown path: %d", r.status)
	}
}
