package openai

import (
	"encoding/json"
	"fmt"
)

// Accumulator folds the chunks of a stream into the chat.completion they
// stand for, checking the stream rules on the way: one id, created and
// model throughout; tool-call fragments keyed by a dense 0-based index with
// the id and name on the first fragment. Tests use it to compare a stream
// with its non-streamed twin.
type Accumulator struct {
	c       ChatCompletion
	started bool
	content map[int]*string
	// UsageChunks counts chunks with usage and no choices.
	UsageChunks int
}

// Add folds one chunk JSON into the accumulated completion.
func (a *Accumulator) Add(data []byte) error {
	var ch ChatChunk
	if err := json.Unmarshal(data, &ch); err != nil {
		return fmt.Errorf("chunk is not JSON: %w", err)
	}
	if ch.Object != ObjectChatChunk {
		return fmt.Errorf("chunk object is %q, want %q", ch.Object, ObjectChatChunk)
	}
	if !a.started {
		a.started = true
		a.c = ChatCompletion{ID: ch.ID, Object: ObjectChatCompletion, Created: ch.Created, Model: ch.Model,
			SystemFingerprint: ch.SystemFingerprint}
		a.content = map[int]*string{}
	} else if ch.ID != a.c.ID || ch.Created != a.c.Created || ch.Model != a.c.Model {
		return fmt.Errorf("chunk id/created/model changed mid-stream: %s/%d/%s after %s/%d/%s",
			ch.ID, ch.Created, ch.Model, a.c.ID, a.c.Created, a.c.Model)
	}
	if ch.Usage != nil {
		u := *ch.Usage
		a.c.Usage = &u
		if len(ch.Choices) == 0 {
			a.UsageChunks++
		}
	}
	for _, cc := range ch.Choices {
		for len(a.c.Choices) <= cc.Index {
			a.c.Choices = append(a.c.Choices, Choice{Index: len(a.c.Choices)})
		}
		choice := &a.c.Choices[cc.Index]
		if cc.Delta.Role != "" {
			choice.Message.Role = cc.Delta.Role
		}
		if cc.Delta.Content != nil {
			s := a.content[cc.Index]
			if s == nil {
				s = new(string)
				a.content[cc.Index] = s
			}
			*s += *cc.Delta.Content
			choice.Message.Content = s
		}
		if cc.Delta.Refusal != nil {
			r := *cc.Delta.Refusal
			if choice.Message.Refusal != nil {
				r = *choice.Message.Refusal + r
			}
			choice.Message.Refusal = &r
		}
		for _, tc := range cc.Delta.ToolCalls {
			if tc.Index == nil {
				return fmt.Errorf("tool call fragment without index")
			}
			i := *tc.Index
			switch {
			case i == len(choice.Message.ToolCalls):
				if tc.ID == "" || tc.Function.Name == "" {
					return fmt.Errorf("first fragment of tool call %d lacks id or name", i)
				}
				choice.Message.ToolCalls = append(choice.Message.ToolCalls, ToolCall{
					ID: tc.ID, Type: "function", Function: FunctionCall{Name: tc.Function.Name}})
			case i > len(choice.Message.ToolCalls) || i < 0:
				return fmt.Errorf("tool call index %d skips ahead of %d calls", i, len(choice.Message.ToolCalls))
			}
			choice.Message.ToolCalls[i].Function.Arguments += tc.Function.Arguments
		}
		if cc.FinishReason != nil && *cc.FinishReason != "" {
			if choice.FinishReason != "" {
				return fmt.Errorf("choice %d finished twice", cc.Index)
			}
			choice.FinishReason = *cc.FinishReason
		}
	}
	return nil
}

// Completion returns the completion accumulated so far.
func (a *Accumulator) Completion() *ChatCompletion {
	c := a.c
	return &c
}
