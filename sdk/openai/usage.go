package openai

// CacheWriteTokensField is the name, under usage.prompt_tokens_details,
// of the count of prompt tokens written to a provider's prompt cache: an
// llmproxy extension of OpenAI's usage.
const CacheWriteTokensField = "cache_write_tokens"

// Tokens is a provider's token accounting in its own terms, before it is
// put in OpenAI's by Usage.
type Tokens struct {
	// Input counts prompt tokens; with InputExcludesCache it leaves out
	// the cache reads and writes (Anthropic, Bedrock), otherwise it
	// counts them (OpenAI, Gemini, OCI).
	Input int
	// Output counts completion tokens; with OutputExcludesReasoning it
	// leaves out the reasoning tokens (Gemini's candidatesTokenCount),
	// otherwise it counts them.
	Output int
	// CacheRead and CacheWrite count prompt tokens read from and written
	// to the provider's prompt cache; Reasoning counts thinking tokens.
	CacheRead, CacheWrite, Reasoning int
	// Total is the provider's own total, 0 when it reports none.
	Total int

	InputExcludesCache      bool
	OutputExcludesReasoning bool
}

// Usage returns t in OpenAI's terms. This is the one rule of usage
// normalisation every provider plugin follows:
//
//   - prompt_tokens counts every input token, the cache reads
//     (prompt_tokens_details.cached_tokens) and the cache writes
//     (prompt_tokens_details.cache_write_tokens) included, as OpenAI's
//     prompt_tokens counts its cached tokens;
//   - completion_tokens counts every output token, the reasoning tokens
//     (completion_tokens_details.reasoning_tokens) included;
//   - total_tokens is the provider's total when it reports one, else
//     prompt plus completion tokens;
//   - both details objects are always present, with zeros for what the
//     provider does not report, in JSON answers and in the final usage
//     chunk of streams alike.
func (t Tokens) Usage() Usage {
	prompt := t.Input
	if t.InputExcludesCache {
		prompt += t.CacheRead + t.CacheWrite
	}
	completion := t.Output
	if t.OutputExcludesReasoning {
		completion += t.Reasoning
	}
	total := t.Total
	if total == 0 {
		total = prompt + completion
	}
	return Usage{
		PromptTokens:            prompt,
		CompletionTokens:        completion,
		TotalTokens:             total,
		PromptTokensDetails:     &PromptTokensDetails{CachedTokens: t.CacheRead, CacheWriteTokens: t.CacheWrite},
		CompletionTokensDetails: &CompletionTokensDetails{ReasoningTokens: t.Reasoning},
	}
}

// Normalize fills in what an OpenAI-shaped usage leaves out: both details
// objects, and total_tokens when it is 0. Plugins that receive OpenAI's
// usage (openai, azure, watsonx) pass it through this.
func (u *Usage) Normalize() {
	if u == nil {
		return
	}
	if u.PromptTokensDetails == nil {
		u.PromptTokensDetails = &PromptTokensDetails{}
	}
	if u.CompletionTokensDetails == nil {
		u.CompletionTokensDetails = &CompletionTokensDetails{}
	}
	if u.TotalTokens == 0 {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
}
