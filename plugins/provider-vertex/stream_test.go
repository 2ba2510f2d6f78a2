package main

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// runStream parses body as an upstream stream and returns the chunks and
// the error.
func runStream(body io.Reader) (chunks, error) {
	var got chunks
	n := 0
	st := &streamer{w: &got, includeUsage: true, created: 1, model: "m", newID: func() string { n++; return "call_" + string(rune('a'+n%26)) }}
	err := st.run(newSSEReader(body))
	return got, err
}

const (
	ev1 = `{"candidates":[{"content":{"role":"model","parts":[{"text":"Hello"}]}}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":1,"totalTokenCount":6},"modelVersion":"gemini-2.5-flash","responseId":"r1"}`
	ev2 = `{"candidates":[{"content":{"role":"model","parts":[{"text":" world"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":2,"totalTokenCount":7},"modelVersion":"gemini-2.5-flash","responseId":"r1"}`
)

func TestStreamFraming(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		text    string
		errCode string
	}{
		{"crlf", "data: " + ev1 + "\r\n\r\ndata: " + ev2 + "\r\n\r\n", "Hello world", ""},
		{"lf", "data: " + ev1 + "\n\ndata: " + ev2 + "\n\n", "Hello world", ""},
		{"no final blank line", "data: " + ev1 + "\n\ndata: " + ev2, "Hello world", ""},
		{"comments and ids", ": keep-alive\nid: 1\nevent: message\ndata: " + ev1 + "\n\nretry: 10\ndata: " + ev2 + "\n\n", "Hello world", ""},
		{"no finish", "data: " + ev1 + "\r\n\r\n", "", "stream_cut_off"},
		{"empty body", "", "", "stream_cut_off"},
		{"cut inside an event", "data: " + ev1 + "\r\n\r\ndata: " + ev2[:40], "", "stream_cut_off"},
		{"error event", "data: " + ev1 + "\r\n\r\ndata: {\"error\":{\"code\":503,\"message\":\"overloaded\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n", "", "unavailable"},
		{"bare error object", "data: " + ev1 + "\r\n\r\n{\n  \"error\": {\n    \"code\": 429,\n    \"message\": \"quota\",\n    \"status\": \"RESOURCE_EXHAUSTED\"\n  }\n}\n", "", "resource_exhausted"},
		{"bare error array", "[{\n \"error\": {\"code\": 500, \"message\": \"boom\", \"status\": \"INTERNAL\"}\n}]\n", "", "internal"},
		{"garbage tail", "data: " + ev1 + "\r\n\r\ndata: " + ev2 + "\r\n\r\nnot json\n", "", "invalid_upstream_stream"},
		{"event not JSON", "data: {oops}\n\n", "", "invalid_upstream_stream"},
		{"content after finish", "data: " + ev2 + "\n\ndata: " + ev1 + "\n\n", "", "invalid_upstream_stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One byte per read: framing must not depend on read sizes.
			got, err := runStream(iotest.OneByteReader(strings.NewReader(tt.body)))
			if tt.errCode != "" {
				var oe *openai.Error
				if !errors.As(err, &oe) || oe.Code != tt.errCode {
					t.Fatalf("err = %v, want code %s", err, tt.errCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var acc openai.Accumulator
			for _, c := range got {
				if err := acc.Add(c); err != nil {
					t.Fatal(err)
				}
			}
			cc := acc.Completion()
			if cc.Choices[0].Message.Content == nil || *cc.Choices[0].Message.Content != tt.text || cc.Choices[0].FinishReason != "stop" {
				t.Errorf("folded %+v", cc.Choices[0])
			}
			if cc.Usage == nil || cc.Usage.TotalTokens != 7 || acc.UsageChunks != 1 {
				t.Errorf("usage %+v (%d chunks), want the last cumulative value once", cc.Usage, acc.UsageChunks)
			}
		})
	}
}

func TestFinishReasons(t *testing.T) {
	tests := []struct {
		in    string
		calls bool
		want  string
	}{
		{"STOP", false, "stop"}, {"STOP", true, "tool_calls"}, {"", true, "tool_calls"}, {"MAX_TOKENS", true, "length"},
		{"SAFETY", false, "content_filter"}, {"RECITATION", false, "content_filter"}, {"BLOCKLIST", false, "content_filter"},
		{"PROHIBITED_CONTENT", false, "content_filter"}, {"SPII", false, "content_filter"}, {"IMAGE_SAFETY", false, "content_filter"},
		{"MALFORMED_FUNCTION_CALL", false, "stop"}, {"OTHER", false, "stop"},
	}
	for _, tt := range tests {
		if got := finishReason(tt.in, tt.calls); got != tt.want {
			t.Errorf("finishReason(%q, %v) = %q, want %q", tt.in, tt.calls, got, tt.want)
		}
	}
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		http   int
		status string
		want   int
		typ    string
	}{
		{400, "INVALID_ARGUMENT", 400, openai.TypeInvalidRequest},
		{400, "FAILED_PRECONDITION", 400, openai.TypeInvalidRequest},
		{401, "UNAUTHENTICATED", 401, openai.TypeAuthentication},
		{403, "PERMISSION_DENIED", 403, openai.TypePermission},
		{404, "NOT_FOUND", 404, openai.TypeNotFound},
		{429, "RESOURCE_EXHAUSTED", 429, openai.TypeRateLimit},
		{500, "INTERNAL", 500, openai.TypeServer},
		{503, "UNAVAILABLE", 503, openai.TypeUnavailable},
		{504, "DEADLINE_EXCEEDED", 504, openai.TypeTimeout},
		{502, "", 502, openai.TypeUpstream},
	}
	for _, tt := range tests {
		body, _ := json.Marshal(map[string]any{"error": map[string]any{"code": tt.http, "message": "m", "status": tt.status,
			"details": []any{map[string]any{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"}}}})
		e := statusError(tt.http, nil, body)
		if e.Status != tt.want || e.Type != tt.typ || e.RetryAfter.Milliseconds() != 2500 {
			t.Errorf("%d %s → %d %s retry %v, want %d %s 2.5s", tt.http, tt.status, e.Status, e.Type, e.RetryAfter, tt.want, tt.typ)
		}
	}
	if e := statusError(502, nil, []byte("<html>Bad Gateway</html>")); e.Status != 502 || !strings.Contains(e.Message, "Bad Gateway") {
		t.Errorf("non-JSON error body → %+v", e)
	}
}
