package openai

import (
	"encoding/json"
	"testing"
)

func TestTokensUsage(t *testing.T) {
	tests := []struct {
		name string
		in   Tokens
		want string
	}{
		{"anthropic: cache apart from input", Tokens{Input: 10, Output: 5, CacheRead: 100, CacheWrite: 20, InputExcludesCache: true},
			`{"prompt_tokens":130,"completion_tokens":5,"total_tokens":135,"prompt_tokens_details":{"cached_tokens":100,"cache_write_tokens":20},"completion_tokens_details":{"reasoning_tokens":0}}`},
		{"gemini: thoughts apart from candidates", Tokens{Input: 40, Output: 7, CacheRead: 32, Reasoning: 50, Total: 97, OutputExcludesReasoning: true},
			`{"prompt_tokens":40,"completion_tokens":57,"total_tokens":97,"prompt_tokens_details":{"cached_tokens":32,"cache_write_tokens":0},"completion_tokens_details":{"reasoning_tokens":50}}`},
		{"openai terms", Tokens{Input: 12, Output: 9, Reasoning: 4},
			`{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"completion_tokens_details":{"reasoning_tokens":4}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.in.Usage())
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Fatalf("got  %s\nwant %s", b, tc.want)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	u := Usage{PromptTokens: 3, CompletionTokens: 4}
	u.Normalize()
	b, _ := json.Marshal(u)
	want := `{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	var none *Usage
	none.Normalize()
}
