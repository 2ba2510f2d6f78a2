package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// translateResponse maps a Messages API response to a chat.completion.
// With jsonTool set, the input of the json_response tool is the message
// content rather than a tool call.
func translateResponse(mr *messagesResponse, jsonTool bool, created int64) (*openai.ChatCompletion, error) {
	if mr.ID == "" || mr.Type != "message" {
		return nil, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "invalid_upstream_response",
			"anthropic: response is not a message")
	}
	var text strings.Builder
	hasText := false
	var calls []openai.ToolCall
	for _, b := range mr.Content {
		switch b.Type {
		case blockText:
			text.WriteString(b.Text)
			hasText = true
		case blockToolUse:
			args, err := compactInput(b.Input)
			if err != nil {
				return nil, err
			}
			if jsonTool && b.Name == jsonToolName {
				text.WriteString(args)
				hasText = true
				continue
			}
			calls = append(calls, openai.ToolCall{ID: b.ID, Type: "function",
				Function: openai.FunctionCall{Name: b.Name, Arguments: args}})
		}
	}
	msg := openai.ResponseMessage{Role: openai.RoleAssistant, ToolCalls: calls}
	if hasText {
		s := text.String()
		msg.Content = &s
	}
	u := openAIUsage(mr.Usage)
	return &openai.ChatCompletion{
		ID:      mr.ID,
		Object:  openai.ObjectChatCompletion,
		Created: created,
		Model:   mr.Model,
		Choices: []openai.Choice{{
			Message:      msg,
			Logprobs:     json.RawMessage("null"),
			FinishReason: finishReason(mr.StopReason, len(calls)),
		}},
		Usage: &u,
	}, nil
}

// compactInput renders a tool_use input as the compact JSON string OpenAI
// clients expect in function.arguments.
func compactInput(in json.RawMessage) (string, error) {
	if len(bytes.TrimSpace(in)) == 0 || string(in) == "null" {
		return "{}", nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, in); err != nil {
		return "", openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "invalid_upstream_response",
			"anthropic: tool_use input is not JSON: "+err.Error())
	}
	return buf.String(), nil
}

// finishReason maps a stop_reason; a stop with tool calls is tool_calls,
// and tool_use without tool calls (the JSON-mode tool) is stop.
func finishReason(stop string, toolCalls int) string {
	var r string
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		r = openai.FinishLength
	case "tool_use":
		r = openai.FinishToolCalls
	case "refusal":
		r = openai.FinishContentFilter
	default: // end_turn, stop_sequence, pause_turn and anything new
		r = openai.FinishStop
	}
	switch {
	case r == openai.FinishStop && toolCalls > 0:
		return openai.FinishToolCalls
	case r == openai.FinishToolCalls && toolCalls == 0:
		return openai.FinishStop
	}
	return r
}

// openAIUsage maps Anthropic usage: input_tokens excludes the cache
// reads and writes, which openai.Tokens adds to the prompt. Anthropic
// counts thinking inside output_tokens and reports no split.
func openAIUsage(u usage) openai.Usage {
	return openai.Tokens{
		Input:              val(u.InputTokens),
		Output:             val(u.OutputTokens),
		CacheRead:          val(u.CacheReadInputTokens),
		CacheWrite:         val(u.CacheCreationInputTokens),
		InputExcludesCache: true,
	}.Usage()
}

func val(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}
