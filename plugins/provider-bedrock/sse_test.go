package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/llmproxy/llmproxy/plugins/provider-bedrock/bedrockfake"
)

// TestPassthroughInvokeStreamAsSSE checks that InvokeModelWithResponseStream
// asked for as text/event-stream reaches the client as the Anthropic
// events it carries, and that an exception frame ends it with an error
// event.
func TestPassthroughInvokeStreamAsSSE(t *testing.T) {
	const path = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke-with-response-stream"
	const body = `{"anthropic_version":"bedrock-2023-05-31","max_tokens":50,"messages":[{"role":"user","content":"Hi"}]}`
	reply := bedrockfake.Reply{Blocks: []bedrockfake.Block{{Text: "Hello there, friend."}}, StopReason: "end_turn",
		Usage: bedrockfake.Usage{Input: 5, Output: 4}, ChunkSize: 6, SplitFrames: true}
	tests := []struct {
		name      string
		exception string
		want      string
	}{
		{"events", "", "message_start content_block_start content_block_delta content_block_stop message_delta message_stop"},
		{"exception", "throttlingException", "message_start content_block_start content_block_delta error"},
	}
	f := startFake(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.Reset()
			r := reply
			r.Exception, r.ExceptionAfter = tt.exception, 3
			f.SetReply(r)
			b := configured(t, f, "", staticCreds(testSecret))
			b.now = nil
			req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "text/event-stream")
			rec := httptest.NewRecorder()
			b.Passthrough(rec, req)
			if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/event-stream" {
				t.Fatalf("status %d type %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
			}
			if got := f.LastRequest().Header.Get("Accept"); got != "application/vnd.amazon.eventstream" {
				t.Errorf("upstream Accept %q", got)
			}
			var names []string
			for _, ev := range strings.Split(strings.TrimSpace(rec.Body.String()), "\n\n") {
				lines := strings.Split(ev, "\n")
				if len(lines) != 2 || !strings.HasPrefix(lines[0], "event: ") || !strings.HasPrefix(lines[1], "data: {") {
					t.Fatalf("malformed event %q", ev)
				}
				name := strings.TrimPrefix(lines[0], "event: ")
				if !strings.Contains(lines[1], `"type":"`+name+`"`) && name != "error" {
					t.Errorf("event %s data %s", name, lines[1])
				}
				if len(names) == 0 || names[len(names)-1] != name {
					names = append(names, name)
				}
			}
			if got := strings.Join(names, " "); got != tt.want {
				t.Errorf("events %q, want %q", got, tt.want)
			}
			if tt.exception != "" && !strings.Contains(rec.Body.String(), `"type":"rate_limit_error"`) {
				t.Errorf("error event %s", rec.Body)
			}
		})
	}
}
