package server

import (
	"time"

	"github.com/valyala/fastjson"

	"github.com/llmproxy/llmproxy/host/internal/store"
)

// recordUsage queues the usage record of an AI request that was routed:
// status is what the client got, body the JSON answer or the stream's
// usage chunk (nil without one). It does nothing without a recorder.
func (r *call) recordUsage(status int, instance string, body []byte) {
	rec := r.s.opts.Usage
	if rec == nil || r.key == nil {
		return
	}
	u := store.UsageRecord{RequestID: r.id, Key: r.key.Name, Group: r.key.Group, Model: r.requested,
		Instance: instance, Status: status, Latency: time.Since(r.start), Time: r.start.UTC()}
	if len(body) > 0 {
		p := r.s.parsers.Get()
		usageTokens(p, body, &u)
		r.s.parsers.Put(p)
	}
	rec.Record(u)
}

// usageTokens reads the token counts of the OpenAI usage object of body
// into u: prompt and completion tokens, cache reads
// (prompt_tokens_details.cached_tokens), cache writes
// (prompt_tokens_details.cache_write_tokens) and reasoning tokens
// (completion_tokens_details.reasoning_tokens).
func usageTokens(p *fastjson.Parser, body []byte, u *store.UsageRecord) {
	v, err := p.ParseBytes(body)
	if err != nil {
		return
	}
	usage := v.Get("usage")
	if usage == nil || usage.Type() != fastjson.TypeObject {
		return
	}
	num := func(path ...string) int64 {
		x := usage.Get(path...)
		if x == nil || x.Type() != fastjson.TypeNumber {
			return 0
		}
		n, err := x.Int64()
		if err != nil || n < 0 {
			return 0
		}
		return n
	}
	u.PromptTokens = num("prompt_tokens")
	u.CompletionTokens = num("completion_tokens")
	u.CachedTokens = num("prompt_tokens_details", "cached_tokens")
	u.CacheWriteTokens = num("prompt_tokens_details", "cache_write_tokens")
	u.ReasoningTokens = num("completion_tokens_details", "reasoning_tokens")
}
