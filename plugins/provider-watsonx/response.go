package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// maxChoices bounds the choices accepted in a stream.
const maxChoices = 128

// translateResponse maps a watsonx.ai chat response to an OpenAI
// chat.completion. The id, created time, choices and usage are kept;
// model_id, model_version, created_at and system warnings are dropped.
func translateResponse(wr *chatResponse, model string, now time.Time) (*openai.ChatCompletion, error) {
	if len(wr.Choices) == 0 {
		return nil, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "invalid_upstream_response",
			"watsonx: the chat response has no choices")
	}
	cc := &openai.ChatCompletion{
		ID:      responseID(wr.ID, now),
		Object:  openai.ObjectChatCompletion,
		Created: wr.Created,
		Model:   responseModel(wr.Model, wr.ModelID, model),
	}
	if cc.Created == 0 {
		cc.Created = now.Unix()
	}
	for i, ch := range wr.Choices {
		msg := openai.ResponseMessage{Role: openai.RoleAssistant, Content: ch.Message.Content, Refusal: ch.Message.Refusal}
		for j, tc := range ch.Message.ToolCalls {
			if tc.Function.Name == "" {
				return nil, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "invalid_upstream_response",
					fmt.Sprintf("watsonx: tool call %d of choice %d has no function name", j, i))
			}
			msg.ToolCalls = append(msg.ToolCalls, openai.ToolCall{
				ID:       callID(tc.ID, cc.ID, i, j),
				Type:     "function",
				Function: openai.FunctionCall{Name: tc.Function.Name, Arguments: tc.Function.Arguments},
			})
		}
		if msg.Content != nil && *msg.Content == "" && len(msg.ToolCalls) > 0 {
			msg.Content = nil
		}
		if msg.Content == nil && len(msg.ToolCalls) == 0 {
			empty := ""
			msg.Content = &empty
		}
		var lp json.RawMessage
		if len(ch.Logprobs) > 0 && string(ch.Logprobs) != "null" {
			lp = ch.Logprobs
		}
		cc.Choices = append(cc.Choices, openai.Choice{
			Index:        i,
			Message:      msg,
			Logprobs:     lp,
			FinishReason: finishReason(ch.FinishReason, len(msg.ToolCalls) > 0),
		})
	}
	if wr.Usage != nil {
		cc.Usage = openaiUsage(wr.Usage)
	}
	return cc, nil
}

// finishReason maps a watsonx.ai finish reason. Some models say "stop"
// on a turn that called tools: such a turn ends with tool_calls.
// time_limit, cancelled and error have no OpenAI counterpart and end as
// stop.
func finishReason(r string, hasCalls bool) string {
	switch r {
	case "length", "max_tokens":
		return openai.FinishLength
	case "content_filter":
		return openai.FinishContentFilter
	}
	if hasCalls {
		return openai.FinishToolCalls
	}
	return openai.FinishStop
}

// openaiUsage maps token counts, in OpenAI's terms already; the details
// are read when watsonx.ai reports them (models served through vLLM with
// prefix caching or reasoning do), zeros otherwise.
func openaiUsage(u *usage) *openai.Usage {
	t := openai.Tokens{Input: u.PromptTokens, Output: u.CompletionTokens, Total: u.TotalTokens}
	if d := u.PromptTokensDetails; d != nil {
		t.CacheRead = d.CachedTokens
	}
	if d := u.CompletionTokensDetails; d != nil {
		t.Reasoning = d.ReasoningTokens
	}
	out := t.Usage()
	return &out
}

// responseModel is the model a response reports: watsonx.ai's model,
// else its model_id, else the one requested.
func responseModel(model, modelID, requested string) string {
	switch {
	case model != "":
		return model
	case modelID != "":
		return modelID
	}
	return requested
}

// responseID is the completion id: watsonx.ai's, or one made from the
// time when it sent none.
func responseID(id string, now time.Time) string {
	if id != "" {
		return id
	}
	return "chatcmpl-watsonx-" + strconv.FormatInt(now.UnixNano(), 36)
}

// callID is a tool call's id: watsonx.ai's, or a stable one made from the
// completion id and the call's position when the model gave none.
func callID(id, completionID string, choice, index int) string {
	if id != "" {
		return id
	}
	base := strings.TrimPrefix(completionID, "chatcmpl-")
	return fmt.Sprintf("call_%s_%d_%d", base, choice, index)
}
