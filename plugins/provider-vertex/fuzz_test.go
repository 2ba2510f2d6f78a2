package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// FuzzStream feeds arbitrary upstream bytes to the stream parser: it must
// never panic, must end with either a clean stream or an *openai.Error,
// and a clean stream must obey the chunk rules.
func FuzzStream(f *testing.F) {
	f.Add([]byte("data: " + ev1 + "\r\n\r\ndata: " + ev2 + "\r\n\r\n"))
	f.Add([]byte("data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"},\"usageMetadata\":{\"promptTokenCount\":3}}\n\n"))
	f.Add([]byte("data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{\"a\":1}},\"thoughtSignature\":\"c2ln\"}]},\"finishReason\":\"STOP\"}]}\n\n"))
	f.Add([]byte("data: {\"candidates\":[{\"index\":1,\"content\":{\"parts\":[{\"text\":\"x\"}]},\"finishReason\":\"MAX_TOKENS\"},{\"index\":0,\"finishReason\":\"STOP\"}]}\n\n"))
	f.Add([]byte("[{\"error\":{\"code\":429,\"status\":\"RESOURCE_EXHAUSTED\",\"message\":\"q\",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"3s\"}]}}]"))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := runStream(bytes.NewReader(body))
		if err != nil {
			var oe *openai.Error
			if !errors.As(err, &oe) {
				t.Fatalf("error is not an *openai.Error: %v", err)
			}
			if oe.Status < 400 || oe.Status > 599 {
				t.Fatalf("error status %d", oe.Status)
			}
			return
		}
		var acc openai.Accumulator
		for _, c := range got {
			if err := acc.Add(c); err != nil {
				t.Fatalf("clean stream breaks the chunk rules: %v", err)
			}
		}
		for _, ch := range acc.Completion().Choices {
			if ch.FinishReason == "" {
				t.Fatalf("clean stream left choice %d unfinished", ch.Index)
			}
			for _, tc := range ch.Message.ToolCalls {
				if !json.Valid([]byte(tc.Function.Arguments)) {
					t.Fatalf("tool arguments are not JSON: %q", tc.Function.Arguments)
				}
			}
		}
	})
}

// FuzzResponse feeds arbitrary bytes to the error and response parsers of
// non-streamed answers.
func FuzzResponse(f *testing.F) {
	f.Add([]byte(`{"candidates":[{"content":{"parts":[{"text":"hi"}]},"finishReason":"STOP"}]}`), 200)
	f.Add([]byte(`{"error":{"code":429,"message":"m","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1s"}]}}`), 429)
	f.Add([]byte(`[{"error":{"code":503,"status":"UNAVAILABLE"}}]`), 503)
	f.Add([]byte(`{"promptFeedback":{"blockReason":"OTHER"}}`), 200)
	f.Fuzz(func(t *testing.T, body []byte, status int) {
		if status < 400 || status > 599 {
			var gr generateResponse
			if json.Unmarshal(body, &gr) == nil {
				if cc, err := translateResponse(&gr, "m", 1, randomCallID); err == nil {
					if _, err := json.Marshal(cc); err != nil {
						t.Fatal(err)
					}
				}
			}
			return
		}
		e := statusError(status, nil, body)
		if e.Status < 400 || e.Status > 599 || e.RetryAfter < 0 {
			t.Fatalf("status %d → %+v", status, e)
		}
	})
}

// FuzzCleanSchema checks that schema cleaning never panics and always
// yields JSON.
func FuzzCleanSchema(f *testing.F) {
	f.Add([]byte(`{"type":"object","properties":{"a":{"$ref":"#/$defs/x"}},"$defs":{"x":{"type":["string","null"]}}}`))
	f.Add([]byte(`{"$ref":"#"}`))
	f.Add([]byte(`{"anyOf":[{"const":1},{"oneOf":[{"type":"string"}]}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := cleanSchema(in)
		if err == nil && !json.Valid(out) {
			t.Fatalf("invalid output %s", out)
		}
	})
}
