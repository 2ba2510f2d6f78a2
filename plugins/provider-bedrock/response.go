package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// finishReasons maps Bedrock stop reasons (Converse and Anthropic) to
// OpenAI finish reasons.
var finishReasons = map[string]string{
	"end_turn":                      openai.FinishStop,
	"stop_sequence":                 openai.FinishStop,
	"pause_turn":                    openai.FinishStop,
	"malformed_model_output":        openai.FinishStop,
	"malformed_tool_use":            openai.FinishStop,
	"tool_use":                      openai.FinishToolCalls,
	"max_tokens":                    openai.FinishLength,
	"model_context_window_exceeded": openai.FinishLength,
	"guardrail_intervened":          openai.FinishContentFilter,
	"content_filtered":              openai.FinishContentFilter,
	"refusal":                       openai.FinishContentFilter,
}

// finishReason maps a stop reason. A reply with tool calls finishes with
// tool_calls when the reason would be stop; a reply whose only tool call
// was the JSON-mode tool finishes with stop.
func finishReason(stop string, toolCalls int, jsonMode bool) string {
	f, ok := finishReasons[stop]
	if !ok {
		f = openai.FinishStop
	}
	switch {
	case f == openai.FinishStop && toolCalls > 0:
		return openai.FinishToolCalls
	case f == openai.FinishToolCalls && toolCalls == 0 && jsonMode:
		return openai.FinishStop
	}
	return f
}

// tokens is Bedrock's token accounting in either API's terms.
type tokens struct {
	input, output, cacheRead, cacheWrite int
}

// openAI returns the usage in OpenAI's terms: Bedrock's inputTokens
// exclude the cache reads and writes, which openai.Tokens adds to the
// prompt.
func (t tokens) openAI() *openai.Usage {
	u := openai.Tokens{Input: t.input, Output: t.output, CacheRead: t.cacheRead, CacheWrite: t.cacheWrite, InputExcludesCache: true}.Usage()
	return &u
}

// converseTokens reads a Converse TokenUsage.
func converseTokens(u *types.TokenUsage) tokens {
	if u == nil {
		return tokens{}
	}
	return tokens{
		input:      int(aws.ToInt32(u.InputTokens)),
		output:     int(aws.ToInt32(u.OutputTokens)),
		cacheRead:  int(aws.ToInt32(u.CacheReadInputTokens)),
		cacheWrite: int(aws.ToInt32(u.CacheWriteInputTokens)),
	}
}

// reply is a complete assistant answer in OpenAI's terms.
type reply struct {
	text      strings.Builder
	hasText   bool
	toolCalls []openai.ToolCall
	stop      string
	usage     tokens
}

// addText appends text content.
func (r *reply) addText(s string) {
	r.text.WriteString(s)
	r.hasText = true
}

// addTool appends a tool call, or the JSON-mode answer when name is the
// conversation's JSON tool.
func (r *reply) addTool(c *conversation, id, name, args string) {
	if c.jsonTool != "" && name == c.jsonTool {
		r.addText(args)
		return
	}
	r.toolCalls = append(r.toolCalls, openai.ToolCall{ID: id, Type: "function", Function: openai.FunctionCall{Name: name, Arguments: args}})
}

// converseReply reads a Converse response.
func converseReply(c *conversation, out *bedrockruntime.ConverseOutput) (*reply, error) {
	r := &reply{stop: string(out.StopReason), usage: converseTokens(out.Usage)}
	msg, ok := out.Output.(*types.ConverseOutputMemberMessage)
	if !ok {
		return nil, streamCut("without an output message")
	}
	for _, b := range msg.Value.Content {
		switch v := b.(type) {
		case *types.ContentBlockMemberText:
			r.addText(v.Value)
		case *types.ContentBlockMemberToolUse:
			args := "{}"
			if v.Value.Input != nil {
				raw, err := v.Value.Input.MarshalSmithyDocument()
				if err != nil {
					return nil, streamCut("with a tool input that is not JSON")
				}
				args = string(raw)
			}
			r.addTool(c, aws.ToString(v.Value.ToolUseId), aws.ToString(v.Value.Name), args)
		}
	}
	return r, nil
}

// completion builds the chat.completion of a reply.
func (c *conversation) completion(id string, created int64, r *reply) *openai.ChatCompletion {
	msg := openai.ResponseMessage{Role: openai.RoleAssistant, ToolCalls: r.toolCalls}
	if r.hasText || len(r.toolCalls) == 0 {
		s := r.text.String()
		msg.Content = &s
	}
	return &openai.ChatCompletion{
		ID:      id,
		Object:  openai.ObjectChatCompletion,
		Created: created,
		Model:   c.model,
		Choices: []openai.Choice{{
			Message:      msg,
			Logprobs:     json.RawMessage("null"),
			FinishReason: finishReason(r.stop, len(r.toolCalls), c.jsonTool != ""),
		}},
		Usage: r.usage.openAI(),
	}
}

// completionID derives the response id from Bedrock's request id, or makes
// a random one when there is none.
func completionID(md middleware.Metadata) string {
	if id, ok := awsmiddleware.GetRequestIDMetadata(md); ok && id != "" {
		return "chatcmpl-" + id
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "chatcmpl-" + hex.EncodeToString(b[:])
}
