package server

import (
	"testing"

	"github.com/valyala/fastjson"

	"github.com/llmproxy/llmproxy/host/internal/store"
)

func TestUsageTokens(t *testing.T) {
	tests := []struct {
		name, body string
		want       store.UsageRecord
	}{
		{"every field", `{"usage":{"prompt_tokens":100,"completion_tokens":40,"total_tokens":140,
			"prompt_tokens_details":{"cached_tokens":60,"cache_write_tokens":30},
			"completion_tokens_details":{"reasoning_tokens":12}}}`,
			store.UsageRecord{PromptTokens: 100, CompletionTokens: 40, CachedTokens: 60, CacheWriteTokens: 30, ReasoningTokens: 12}},
		{"stream usage chunk", `{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7}}`,
			store.UsageRecord{PromptTokens: 5, CompletionTokens: 7}},
		{"embeddings", `{"object":"list","data":[],"usage":{"prompt_tokens":9,"total_tokens":9}}`, store.UsageRecord{PromptTokens: 9}},
		{"no usage", `{"choices":[]}`, store.UsageRecord{}},
		{"usage null", `{"usage":null}`, store.UsageRecord{}},
		{"wrong types and negatives", `{"usage":{"prompt_tokens":"5","completion_tokens":-3,"prompt_tokens_details":[1]}}`, store.UsageRecord{}},
		{"not json", `data: x`, store.UsageRecord{}},
	}
	var p fastjson.Parser
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got store.UsageRecord
			usageTokens(&p, []byte(tt.body), &got)
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
