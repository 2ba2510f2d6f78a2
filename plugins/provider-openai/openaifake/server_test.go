package openaifake

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func do(t *testing.T, s *Server, method, path, auth, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

func TestHTTP(t *testing.T) {
	const key = "Bearer " + DefaultKey
	tests := []struct {
		name       string
		method     string
		path       string
		auth       string
		body       string
		wantStatus int
		wantIn     []string
	}{
		{"no key", "POST", "/v1/chat/completions", "", `{}`, 401, []string{`"code":null`, "didn't provide an API key"}},
		{"wrong key", "POST", "/v1/chat/completions", "Bearer sk-wrong-key-123", `{}`, 401, []string{`"code":"invalid_api_key"`, `"param":null`}},
		{"chat", "POST", "/v1/chat/completions", key, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, 200,
			[]string{`"object":"chat.completion"`, `"content":"You said: hi"`, `"finish_reason":"stop"`}},
		{"bad JSON", "POST", "/v1/chat/completions", key, `{"model":`, 400, []string{"could not parse the JSON body"}},
		{"no messages", "POST", "/v1/chat/completions", key, `{"model":"gpt-4o","messages":[]}`, 400, []string{`"param":"messages"`}},
		{"unknown part", "POST", "/v1/chat/completions", key, `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"document","document":{"id":"d"}}]}]}`, 400,
			[]string{`"param":"messages[0].content[0].type"`, `"code":"invalid_value"`}},
		{"bad file data", "POST", "/v1/chat/completions", key, `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"file","file":{"filename":"a.pdf","file_data":"JVBER"}}]}]}`, 400,
			[]string{`"param":"messages[0].content[0].file.file_data"`}},
		{"tool without id", "POST", "/v1/chat/completions", key, `{"model":"gpt-4o","messages":[{"role":"tool","content":"x"}]}`, 400, []string{"tool_call_id"}},
		{"unknown model", "POST", "/v1/chat/completions", key, `{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`, 404, []string{"model_not_found"}},
		{"wrong method", "GET", "/v1/chat/completions", key, ``, 405, []string{"Invalid method"}},
		{"embeddings", "POST", "/v1/embeddings", key, `{"model":"text-embedding-3-small","input":["a","b"],"dimensions":4}`, 200,
			[]string{`"object":"list"`, `"index":1`, `"total_tokens":2`}},
		{"embeddings empty", "POST", "/v1/embeddings", key, `{"model":"text-embedding-3-small","input":[]}`, 400, []string{`"param":"input"`}},
		{"models", "GET", "/v1/models", key, ``, 200, []string{`"id":"gpt-4o"`, `"object":"model"`}},
		{"model", "GET", "/v1/models/gpt-4o", key, ``, 200, []string{`"id":"gpt-4o"`}},
		{"no such model", "GET", "/v1/models/gpt-9", key, ``, 404, []string{"model_not_found"}},
		{"unknown path", "GET", "/v1/nothing", key, ``, 404, []string{"Invalid URL"}},
	}
	s := New(Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(t, s, tt.method, tt.path, tt.auth, tt.body)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			for _, w := range tt.wantIn {
				if !strings.Contains(rec.Body.String(), w) {
					t.Errorf("body lacks %s: %s", w, rec.Body)
				}
			}
			if strings.Contains(rec.Body.String(), "sk-wrong-key-123") {
				t.Errorf("error echoes the key")
			}
		})
	}
	if s.Requests() != int64(len(tests)) {
		t.Errorf("Requests = %d, want %d", s.Requests(), len(tests))
	}
}

func TestStreamFraming(t *testing.T) {
	s := New(Options{})
	s.SetScenario(Scenario{ToolCalls: []ToolCall{{ID: "call_a", Name: "f", Arguments: `{"x":1}`}, {ID: "call_b", Name: "g", Arguments: `{}`}}})
	rec := do(t, s, "POST", "/v1/chat/completions", "Bearer "+DefaultKey,
		`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`)
	if ct := rec.Header().Get("Content-Type"); ct != "text/event-stream; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	events := strings.Split(rec.Body.String(), "\n\n")
	if events[len(events)-1] != "" || events[len(events)-2] != "data: [DONE]" {
		t.Fatalf("stream does not end with data: [DONE]\\n\\n: %q", rec.Body.String())
	}
	var last struct {
		Choices []any           `json:"choices"`
		Usage   json.RawMessage `json:"usage"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(events[len(events)-3], "data: ")), &last); err != nil {
		t.Fatal(err)
	}
	if len(last.Choices) != 0 || len(last.Usage) < 10 {
		t.Errorf("last chunk before [DONE] is not the usage chunk: %s", events[len(events)-3])
	}
	for _, e := range events[:len(events)-3] {
		if !strings.HasPrefix(e, "data: {") || !strings.Contains(e, `"usage":null`) {
			t.Errorf("event %q lacks data framing or usage:null", e)
		}
	}
	if !strings.Contains(rec.Body.String(), `"index":1,"id":"call_b"`) {
		t.Errorf("second tool call does not start with index 1 and its id: %s", rec.Body)
	}
}

func TestFailNext(t *testing.T) {
	s := New(Options{})
	s.FailNext(1, Failure{Status: http.StatusTooManyRequests, RetryAfter: "2", RetryAfterMs: "2000"})
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`
	rec := do(t, s, "POST", "/v1/chat/completions", "Bearer "+DefaultKey, body)
	if rec.Code != 429 || rec.Header().Get("Retry-After") != "2" || rec.Header().Get("retry-after-ms") != "2000" {
		t.Errorf("forced failure: %d %v", rec.Code, rec.Header())
	}
	if rec := do(t, s, "POST", "/v1/chat/completions", "Bearer "+DefaultKey, body); rec.Code != 200 {
		t.Errorf("second request: %d, want 200", rec.Code)
	}
	last := s.LastRequest()
	if last.Path != "/v1/chat/completions" || string(last.Body) != body {
		t.Errorf("LastRequest = %+v", last)
	}
}

func TestEmbeddingsBase64(t *testing.T) {
	s := New(Options{})
	rec := do(t, s, "POST", "/v1/embeddings", "Bearer "+DefaultKey, `{"model":"text-embedding-3-small","input":"a","encoding_format":"base64"}`)
	var resp struct {
		Data []struct {
			Embedding string `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || len(resp.Data) != 1 {
		t.Fatalf("response: %v %s", err, rec.Body)
	}
	raw, err := base64.StdEncoding.DecodeString(resp.Data[0].Embedding)
	if err != nil || len(raw) != 4*DefaultDimensions {
		t.Errorf("base64 embedding: %v, %d bytes", err, len(raw))
	}
}

func TestFast(t *testing.T) {
	s := New(Options{Fast: true})
	s.Start()
	defer s.Close()
	for _, stream := range []bool{false, true} {
		body := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`
		if stream {
			body = `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`
		}
		req, _ := http.NewRequest("POST", s.URL()+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+DefaultKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if stream != strings.HasSuffix(string(b), "data: [DONE]\n\n") {
			t.Errorf("stream=%v: %s", stream, b)
		}
	}
}
