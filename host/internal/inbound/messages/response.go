package messages

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// chatCompletion is a chat.completion as far as Response reads it.
type chatCompletion struct {
	ID      string       `json:"id"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *chatUsage   `json:"usage"`
}

type chatChoice struct {
	Index        int        `json:"index"`
	Message      chatAnswer `json:"message"`
	Delta        chatAnswer `json:"delta"`
	FinishReason *string    `json:"finish_reason"`
}

// chatAnswer is a choice's message, or the delta of a chunk.
type chatAnswer struct {
	Content          *string         `json:"content"`
	Refusal          *string         `json:"refusal"`
	ReasoningContent *string         `json:"reasoning_content"`
	Reasoning        *string         `json:"reasoning"`
	ToolCalls        []chatToolDelta `json:"tool_calls"`
}

type chatToolDelta struct {
	Index    *int   `json:"index"`
	ID       string `json:"id"`
	Function struct {
		Name      string  `json:"name"`
		Arguments *string `json:"arguments"`
	} `json:"function"`
}

// chatUsage holds the usage fields every provider reports: cache reads in
// prompt_tokens_details.cached_tokens, cache writes in
// prompt_tokens_details.cache_write_tokens (cache_creation_tokens is read
// too), reasoning in completion_tokens_details.reasoning_tokens.
type chatUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens        int64 `json:"cached_tokens"`
		CacheWriteTokens    int64 `json:"cache_write_tokens"`
		CacheCreationTokens int64 `json:"cache_creation_tokens"`
	} `json:"prompt_tokens_details"`
}

// Usage is a Message's usage. InputTokens excludes the tokens read from
// and written to the prompt cache, as Anthropic counts them.
type Usage struct {
	InputTokens              int64 `json:"input_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
}

// usage converts chat usage: prompt_tokens counts every prompt token,
// Anthropic's input_tokens only those neither read from nor written to
// the cache.
func usage(u *chatUsage) Usage {
	if u == nil {
		return Usage{}
	}
	out := Usage{OutputTokens: max(u.CompletionTokens, 0)}
	if d := u.PromptTokensDetails; d != nil {
		out.CacheReadInputTokens = max(d.CachedTokens, 0)
		out.CacheCreationInputTokens = max(d.CacheWriteTokens, 0)
		if out.CacheCreationInputTokens == 0 {
			out.CacheCreationInputTokens = max(d.CacheCreationTokens, 0)
		}
	}
	out.InputTokens = max(u.PromptTokens-out.CacheReadInputTokens-out.CacheCreationInputTokens, 0)
	return out
}

// message is the Messages API answer.
type messageOut struct {
	ID           string  `json:"id"`
	Type         string  `json:"type"`
	Role         string  `json:"role"`
	Model        string  `json:"model"`
	Content      []any   `json:"content"`
	StopReason   *string `json:"stop_reason"`
	StopSequence *string `json:"stop_sequence"`
	Usage        Usage   `json:"usage"`
}

type textBlock struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type thinkingBlock struct {
	Type      string `json:"type"`
	Thinking  string `json:"thinking"`
	Signature string `json:"signature"`
}

type toolUseBlock struct {
	Type  string          `json:"type"`
	ID    string          `json:"id"`
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
}

// StopReason maps a chat finish_reason onto a Messages stop_reason:
// stop → end_turn, length → max_tokens, tool_calls (and function_call) →
// tool_use, content_filter → refusal. Chat does not say whether a stop
// sequence ended the answer, so stop_sequence is never produced.
func StopReason(finish string) string {
	switch finish {
	case "length":
		return "max_tokens"
	case "tool_calls", "function_call":
		return "tool_use"
	case "content_filter":
		return "refusal"
	}
	return "end_turn"
}

// toolInput returns a tool call's arguments as the input object of a
// tool_use block. Arguments that are not a JSON object (a model can write
// anything) are kept as {"arguments": "<the text>"}, never lost.
func toolInput(args string) json.RawMessage {
	b := bytes.TrimSpace([]byte(args))
	if len(b) == 0 {
		return json.RawMessage(`{}`)
	}
	if b[0] == '{' && json.Valid(b) {
		var c bytes.Buffer
		if json.Compact(&c, b) == nil {
			return c.Bytes()
		}
	}
	w, _ := json.Marshal(map[string]string{"arguments": args})
	return w
}

// Response translates a chat.completion body into a Messages API
// Message. Only the first choice is read (the request never asks for
// more).
func Response(body []byte) ([]byte, error) {
	var cc chatCompletion
	if err := json.Unmarshal(body, &cc); err != nil {
		return nil, fmt.Errorf("messages: the provider's answer is not a chat completion: %w", err)
	}
	if len(cc.Choices) == 0 {
		return nil, fmt.Errorf("messages: the provider's answer has no choices")
	}
	ch := cc.Choices[0]
	m := ch.Message
	out := messageOut{ID: MessageID(cc.ID), Type: "message", Role: "assistant", Model: cc.Model, Content: []any{}, Usage: usage(cc.Usage)}
	if r := reasoning(m); r != "" {
		out.Content = append(out.Content, thinkingBlock{Type: "thinking", Thinking: r})
	}
	if m.Content != nil && *m.Content != "" {
		out.Content = append(out.Content, textBlock{Type: "text", Text: *m.Content})
	}
	refused := m.Refusal != nil && *m.Refusal != ""
	if refused {
		out.Content = append(out.Content, textBlock{Type: "text", Text: *m.Refusal})
	}
	for _, tc := range m.ToolCalls {
		out.Content = append(out.Content, toolUseBlock{Type: "tool_use", ID: ToolID(tc.ID), Name: tc.Function.Name, Input: toolInput(deref(tc.Function.Arguments))})
	}
	finish := ""
	if ch.FinishReason != nil {
		finish = *ch.FinishReason
	}
	stop := StopReason(finish)
	if refused {
		stop = "refusal"
	} else if len(m.ToolCalls) > 0 && finish == "" {
		stop = "tool_use"
	}
	out.StopReason = &stop
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("messages: encode the message: %w", err)
	}
	return b, nil
}

func reasoning(a chatAnswer) string {
	if a.ReasoningContent != nil {
		return *a.ReasoningContent
	}
	return deref(a.Reasoning)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
