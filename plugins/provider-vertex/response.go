package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// finishReason maps a Gemini finishReason. Gemini says STOP for a turn
// that ends in function calls; OpenAI says tool_calls.
func finishReason(reason string, hasCalls bool) string {
	switch reason {
	case "MAX_TOKENS":
		return openai.FinishLength
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE":
		return openai.FinishContentFilter
	}
	if hasCalls {
		return openai.FinishToolCalls
	}
	return openai.FinishStop
}

// openAIUsage maps usageMetadata. Gemini counts thinking tokens apart from
// candidatesTokenCount; OpenAI counts reasoning inside completion tokens.
func openAIUsage(u *usageMetadata) openai.Usage {
	if u == nil {
		return openai.Usage{}
	}
	// promptTokenCount already counts the cached content.
	return openai.Tokens{
		Input:                   u.PromptTokenCount,
		Output:                  u.CandidatesTokenCount,
		CacheRead:               u.CachedContentTokenCount,
		Reasoning:               u.ThoughtsTokenCount,
		Total:                   u.TotalTokenCount,
		OutputExcludesReasoning: true,
	}.Usage()
}

// completionID is the OpenAI id of a Gemini response.
func completionID(responseID string, newID func() string) string {
	if responseID == "" {
		return "chatcmpl-" + strings.TrimPrefix(newID(), callIDPrefix)
	}
	return "chatcmpl-" + responseID
}

// compactArgs renders function-call args as compact JSON text; absent
// args are {}.
func compactArgs(args json.RawMessage) (string, error) {
	if len(bytes.TrimSpace(args)) == 0 || string(args) == "null" {
		return "{}", nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, args); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// candidateIndex is a candidate's index: its own field when present, else
// its position (streams of one candidate omit the index).
func candidateIndex(c *candidate, pos int) int {
	if c.Index != nil && *c.Index >= 0 && *c.Index < 64 {
		return *c.Index
	}
	return pos
}

// invalidResponse is the error for an upstream answer that breaks the API's
// shape.
func invalidResponse(msg string) *openai.Error {
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "invalid_upstream_response", "vertex: "+msg)
}

// translateResponse maps a GenerateContentResponse to a chat.completion.
func translateResponse(gr *generateResponse, model string, created int64, newID func() string) (*openai.ChatCompletion, error) {
	if gr.ModelVersion != "" {
		model = gr.ModelVersion
	}
	cc := &openai.ChatCompletion{ID: completionID(gr.ResponseID, newID), Object: openai.ObjectChatCompletion,
		Created: created, Model: model, Choices: []openai.Choice{}}
	if len(gr.Candidates) == 0 {
		if gr.PromptFeedback == nil || gr.PromptFeedback.BlockReason == "" {
			return nil, invalidResponse("the response has no candidates and no block reason")
		}
		// A blocked prompt is an answer, not an error: empty content
		// filtered by the provider.
		cc.Choices = append(cc.Choices, openai.Choice{Message: openai.ResponseMessage{Role: openai.RoleAssistant},
			FinishReason: openai.FinishContentFilter})
	}
	seen := map[int]bool{}
	for pos := range gr.Candidates {
		c := &gr.Candidates[pos]
		idx := candidateIndex(c, pos)
		if seen[idx] {
			return nil, invalidResponse(fmt.Sprintf("candidate %d appears twice", idx))
		}
		seen[idx] = true
		for len(cc.Choices) <= idx {
			cc.Choices = append(cc.Choices, openai.Choice{Index: len(cc.Choices),
				Message: openai.ResponseMessage{Role: openai.RoleAssistant}, FinishReason: openai.FinishStop})
		}
		ch := &cc.Choices[idx]
		var text strings.Builder
		hasText := false
		if c.Content != nil {
			for _, p := range c.Content.Parts {
				switch {
				case p.Thought:
					// Reasoning summaries have no place in the OpenAI message.
				case p.FunctionCall != nil:
					if p.FunctionCall.Name == "" {
						return nil, invalidResponse("function call without a name")
					}
					args, err := compactArgs(p.FunctionCall.Args)
					if err != nil {
						return nil, invalidResponse("function call args are not JSON")
					}
					ch.Message.ToolCalls = append(ch.Message.ToolCalls, openai.ToolCall{
						ID: withSignature(newID(), p.ThoughtSignature), Type: "function",
						Function: openai.FunctionCall{Name: p.FunctionCall.Name, Arguments: args}})
				case p.Text != "":
					text.WriteString(p.Text)
					hasText = true
				}
			}
		}
		if hasText {
			s := text.String()
			ch.Message.Content = &s
		}
		ch.FinishReason = finishReason(c.FinishReason, len(ch.Message.ToolCalls) > 0)
	}
	if len(seen) != len(cc.Choices) && len(gr.Candidates) > 0 {
		return nil, invalidResponse("candidate indexes leave gaps")
	}
	if gr.UsageMetadata != nil {
		u := openAIUsage(gr.UsageMetadata)
		cc.Usage = &u
	}
	return cc, nil
}
