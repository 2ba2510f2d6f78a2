package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// FuzzStream feeds arbitrary upstream bytes to the GENERIC and COHERE
// stream translators. They must never panic or hang, and whenever they
// report success the chunks they wrote must obey the OpenAI stream rules.
// Seeds live in testdata/fuzz/FuzzStream.
func FuzzStream(f *testing.F) {
	f.Add([]byte("data: {\"index\":0,\"message\":{\"role\":\"ASSISTANT\",\"content\":[{\"type\":\"TEXT\",\"text\":\"Hi\"}]}}\n\ndata: {\"index\":0,\"finishReason\":\"stop\"}\n\ndata: {\"usage\":{\"promptTokens\":1,\"completionTokens\":2,\"totalTokens\":3}}\n\n"), false, true)
	f.Add([]byte("data: {\"apiFormat\":\"COHERE\",\"text\":\"Hel\"}\ndata: {\"apiFormat\":\"COHERE\",\"text\":\"Hello\",\"finishReason\":\"COMPLETE\",\"toolCalls\":[{\"name\":\"f\",\"parameters\":{}}]}\n"), true, false)
	f.Fuzz(func(t *testing.T, data []byte, cohere, usage bool) {
		format := formatGeneric
		if cohere {
			format = formatCohere
		}
		var got chunks
		st := &streamer{w: &got, format: format, meta: responseMeta{id: "r", model: "m", created: 1}, includeUsage: usage,
			choices: 1, usageWait: time.Millisecond}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := st.run(ctx, strings.NewReader(string(data)))
		if ctx.Err() != nil {
			t.Fatalf("stream translation hung")
		}
		if err != nil {
			return
		}
		var acc openai.Accumulator
		for _, c := range got {
			if err := acc.Add(c); err != nil {
				t.Fatalf("successful stream broke the chunk rules: %v\ninput: %q", err, data)
			}
		}
		cc := acc.Completion()
		if len(cc.Choices) != 1 || cc.Choices[0].FinishReason == "" {
			t.Fatalf("successful stream without a finished choice: %+v\ninput: %q", cc, data)
		}
		if usage != (acc.UsageChunks == 1) {
			t.Fatalf("usage chunks %d with include_usage %v", acc.UsageChunks, usage)
		}
	})
}

// FuzzResponse feeds arbitrary bytes to the non-streamed response and
// error-body translators: no panic, and a translated completion always
// has finished choices with named tool calls.
func FuzzResponse(f *testing.F) {
	f.Add([]byte(`{"apiFormat":"GENERIC","choices":[{"index":0,"message":{"role":"ASSISTANT","content":[{"type":"TEXT","text":"Hi"}],"toolCalls":[{"type":"FUNCTION","name":"f","arguments":"{}"}]},"finishReason":"stop"}],"usage":{"promptTokens":1}}`), false)
	f.Add([]byte(`{"apiFormat":"COHERE","text":"Hi","finishReason":"MAX_TOKENS","toolCalls":[{"name":"f","parameters":{"a":1}}]}`), true)
	f.Add([]byte(`{"code":"TooManyRequests","message":"slow"}`), false)
	f.Fuzz(func(t *testing.T, data []byte, cohere bool) {
		_ = statusError(429, http.Header{}, data)
		rm := responseMeta{id: "r", model: "m", created: 1}
		var cc *openai.ChatCompletion
		var err error
		if cohere {
			cc, err = translateCohereResponse(data, rm)
		} else {
			cc, err = translateGenericResponse(data, rm)
		}
		if err != nil {
			return
		}
		if len(cc.Choices) == 0 {
			t.Fatalf("completion without choices from %q", data)
		}
		for _, ch := range cc.Choices {
			if ch.FinishReason == "" {
				t.Fatalf("choice without finish_reason from %q", data)
			}
			for _, tc := range ch.Message.ToolCalls {
				if tc.ID == "" || tc.Function.Name == "" {
					t.Fatalf("tool call without id or name from %q", data)
				}
			}
		}
	})
}
