package server

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestMessagesErrors checks that every refusal on the Messages API paths,
// from authentication on, has Anthropic's error shape, the right type
// for its status and the request id in the body and in request-id.
func TestMessagesErrors(t *testing.T) {
	c := testServer(t)
	msg := func(model string) string {
		return `{"model":"` + model + `","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	}
	tests := []struct {
		name, method, path, key, version, body string
		status                                 int
		typ                                    string
	}{
		{"no key", "POST", "/v1/messages", "", "", msg("echo"), 401, "authentication_error"},
		{"bad key, count_tokens", "POST", "/v1/messages/count_tokens", "sk-nope", "", msg("echo"), 401, "authentication_error"},
		{"wrong method", "GET", "/v1/messages", "sk-full", "", "", 405, "invalid_request_error"},
		{"bad anthropic-version", "POST", "/v1/messages", "sk-full", "latest", msg("echo"), 400, "invalid_request_error"},
		{"no max_tokens", "POST", "/v1/messages", "sk-full", "2023-06-01", `{"model":"echo","messages":[{"role":"user","content":"hi"}]}`, 400, "invalid_request_error"},
		{"duplicate key", "POST", "/v1/messages", "sk-echo", "", `{"model":"echo","model":"gpt-4o","max_tokens":1,"messages":[]}`, 400, "invalid_request_error"},
		{"model not allowed", "POST", "/v1/messages", "sk-echo", "", msg("gpt-4o"), 403, "permission_error"},
		{"unknown model", "POST", "/v1/messages", "sk-full", "", msg("gpt-4o"), 404, "not_found_error"},
		{"instance not configured", "POST", "/v1/messages", "sk-full", "", msg("echo"), 503, "overloaded_error"},
		{"too large", "POST", "/v1/messages", "sk-full", "", msg(strings.Repeat("x", 2000)), 413, "request_too_large"},
		{"count_tokens where nobody counts", "POST", "/v1/messages/count_tokens", "sk-full", "", msg("echo"), 404, "not_found_error"},
		{"count_tokens without model", "POST", "/v1/messages/count_tokens", "sk-full", "", `{}`, 400, "invalid_request_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://llmproxy" + tt.path)
			req.Header.SetMethod(tt.method)
			if tt.key != "" {
				req.Header.Set("x-api-key", tt.key)
			}
			if tt.version != "" {
				req.Header.Set("anthropic-version", tt.version)
			}
			req.SetBodyString(tt.body)
			if err := c.Do(req, resp); err != nil {
				t.Fatal(err)
			}
			var body struct {
				Type  string `json:"type"`
				Error struct {
					Type    string `json:"type"`
					Message string `json:"message"`
				} `json:"error"`
				RequestID string `json:"request_id"`
			}
			if err := json.Unmarshal(resp.Body(), &body); err != nil {
				t.Fatalf("body %s: %v", resp.Body(), err)
			}
			id := string(resp.Header.Peek("request-id"))
			if resp.StatusCode() != tt.status || body.Type != "error" || body.Error.Type != tt.typ || body.Error.Message == "" ||
				id == "" || body.RequestID != id || string(resp.Header.Peek("X-Request-Id")) != id {
				t.Errorf("status %d request-id %q body %s, want %d %s", resp.StatusCode(), id, resp.Body(), tt.status, tt.typ)
			}
		})
	}
}
