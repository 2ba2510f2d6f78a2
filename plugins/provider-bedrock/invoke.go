package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// anthropicVersion is the body version Anthropic models on Bedrock expect.
const anthropicVersion = "bedrock-2023-05-31"

// defaultAnthropicMaxTokens is sent when the client gives no limit, since
// the Anthropic format requires one.
const defaultAnthropicMaxTokens = 4096

// anthropicRequest is an Anthropic Messages body for InvokeModel: no model
// and no stream field, plus anthropic_version.
type anthropicRequest struct {
	AnthropicVersion string             `json:"anthropic_version"`
	MaxTokens        int                `json:"max_tokens"`
	System           string             `json:"system,omitempty"`
	Messages         []anthropicMessage `json:"messages"`
	Temperature      *float32           `json:"temperature,omitempty"`
	TopP             *float32           `json:"top_p,omitempty"`
	StopSequences    []string           `json:"stop_sequences,omitempty"`
	Tools            []anthropicTool    `json:"tools,omitempty"`
	ToolChoice       map[string]string  `json:"tool_choice,omitempty"`
}

type anthropicMessage struct {
	Role    string           `json:"role"`
	Content []map[string]any `json:"content"`
}

type anthropicTool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

// anthropicUsage is the usage object of Anthropic responses and events.
type anthropicUsage struct {
	InputTokens              int  `json:"input_tokens"`
	OutputTokens             int  `json:"output_tokens"`
	CacheCreationInputTokens *int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     *int `json:"cache_read_input_tokens"`
}

func (u anthropicUsage) tokens() tokens {
	return tokens{
		input:      u.InputTokens,
		output:     u.OutputTokens,
		cacheRead:  aws.ToInt(u.CacheReadInputTokens),
		cacheWrite: aws.ToInt(u.CacheCreationInputTokens),
	}
}

// anthropicBlock is a response content block or a streamed block start.
type anthropicBlock struct {
	Type  string          `json:"type"`
	Text  string          `json:"text"`
	ID    string          `json:"id"`
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
}

// anthropicResponse is an Anthropic message object.
type anthropicResponse struct {
	Content    []anthropicBlock `json:"content"`
	StopReason string           `json:"stop_reason"`
	Usage      anthropicUsage   `json:"usage"`
}

// anthropicEvent is one decoded event of an Anthropic stream.
type anthropicEvent struct {
	Type         string            `json:"type"`
	Index        int32             `json:"index"`
	Message      anthropicResponse `json:"message"`
	ContentBlock anthropicBlock    `json:"content_block"`
	Delta        struct {
		Type        string `json:"type"`
		Text        string `json:"text"`
		PartialJSON string `json:"partial_json"`
		StopReason  string `json:"stop_reason"`
	} `json:"delta"`
	Usage *anthropicUsage `json:"usage"`
	Error *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// isAnthropic reports whether a model id, inference profile id or ARN
// names an Anthropic model.
func isAnthropic(model string) bool { return strings.Contains(model, "anthropic.") }

// anthropicBody encodes the conversation in the Anthropic Messages format.
func (c *conversation) anthropicBody() ([]byte, error) {
	if !isAnthropic(c.model) {
		return nil, openai.InvalidRequest("model", fmt.Sprintf("model %q cannot be called through InvokeModel by this instance (api = \"invoke\" serves anthropic.* models only)", c.model))
	}
	r := anthropicRequest{
		AnthropicVersion: anthropicVersion,
		MaxTokens:        defaultAnthropicMaxTokens,
		System:           strings.Join(c.system, "\n\n"),
		Temperature:      c.inference.Temperature,
		TopP:             c.inference.TopP,
		StopSequences:    c.inference.StopSequences,
	}
	if c.inference.MaxTokens != nil {
		r.MaxTokens = int(*c.inference.MaxTokens)
	}
	for i, m := range c.messages {
		am := anthropicMessage{Role: string(m.Role)}
		for j, b := range m.Content {
			block, err := anthropicContent(b)
			if err != nil {
				return nil, openai.InvalidRequest(fmt.Sprintf("messages[%d].content[%d]", i, j), err.Error())
			}
			am.Content = append(am.Content, block)
		}
		r.Messages = append(r.Messages, am)
	}
	if tc := c.toolConfig; tc != nil {
		for _, t := range tc.Tools {
			spec, ok := t.(*types.ToolMemberToolSpec)
			if !ok {
				continue
			}
			schema, err := spec.Value.InputSchema.(*types.ToolInputSchemaMemberJson).Value.MarshalSmithyDocument()
			if err != nil {
				return nil, fmt.Errorf("encode tool schema: %w", err)
			}
			r.Tools = append(r.Tools, anthropicTool{Name: aws.ToString(spec.Value.Name), Description: aws.ToString(spec.Value.Description), InputSchema: schema})
		}
		switch ch := tc.ToolChoice.(type) {
		case *types.ToolChoiceMemberAuto:
			r.ToolChoice = map[string]string{"type": "auto"}
		case *types.ToolChoiceMemberAny:
			r.ToolChoice = map[string]string{"type": "any"}
		case *types.ToolChoiceMemberTool:
			r.ToolChoice = map[string]string{"type": "tool", "name": aws.ToString(ch.Value.Name)}
		}
	}
	return json.Marshal(r)
}

// anthropicContent encodes one Converse content block as an Anthropic one.
func anthropicContent(b types.ContentBlock) (map[string]any, error) {
	switch v := b.(type) {
	case *types.ContentBlockMemberText:
		return map[string]any{"type": "text", "text": v.Value}, nil
	case *types.ContentBlockMemberImage:
		src := v.Value.Source.(*types.ImageSourceMemberBytes)
		return map[string]any{"type": "image", "source": map[string]any{
			"type": "base64", "media_type": "image/" + string(v.Value.Format), "data": base64.StdEncoding.EncodeToString(src.Value),
		}}, nil
	case *types.ContentBlockMemberDocument:
		src := v.Value.Source.(*types.DocumentSourceMemberBytes)
		doc := map[string]any{"type": "document", "title": aws.ToString(v.Value.Name)}
		switch v.Value.Format {
		case types.DocumentFormatPdf:
			doc["source"] = map[string]any{"type": "base64", "media_type": "application/pdf", "data": base64.StdEncoding.EncodeToString(src.Value)}
		case types.DocumentFormatTxt, types.DocumentFormatMd, types.DocumentFormatCsv, types.DocumentFormatHtml:
			doc["source"] = map[string]any{"type": "text", "media_type": "text/plain", "data": string(src.Value)}
		default:
			return nil, fmt.Errorf("document format %q is not supported by Anthropic models through InvokeModel; use api = \"converse\"", v.Value.Format)
		}
		return doc, nil
	case *types.ContentBlockMemberToolUse:
		input, err := v.Value.Input.MarshalSmithyDocument()
		if err != nil {
			return nil, fmt.Errorf("encode tool input: %w", err)
		}
		return map[string]any{"type": "tool_use", "id": aws.ToString(v.Value.ToolUseId), "name": aws.ToString(v.Value.Name), "input": json.RawMessage(input)}, nil
	case *types.ContentBlockMemberToolResult:
		var parts []map[string]any
		for _, p := range v.Value.Content {
			if t, ok := p.(*types.ToolResultContentBlockMemberText); ok {
				parts = append(parts, map[string]any{"type": "text", "text": t.Value})
			}
		}
		return map[string]any{"type": "tool_result", "tool_use_id": aws.ToString(v.Value.ToolUseId), "content": parts}, nil
	}
	return nil, fmt.Errorf("content block %T has no Anthropic form", b)
}

// invokeChat answers a chat request through InvokeModel.
func (b *Bedrock) invokeChat(ctx context.Context, inst *instance, conv *conversation) (*provider.Response, error) {
	body, err := conv.anthropicBody()
	if err != nil {
		return nil, err
	}
	out, err := inst.client.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{
		ModelId: aws.String(conv.model), Body: body,
		ContentType: aws.String("application/json"), Accept: aws.String("application/json"),
	})
	if err != nil {
		return nil, clientError(err)
	}
	var msg anthropicResponse
	if err := json.Unmarshal(out.Body, &msg); err != nil {
		return nil, streamCut(fmt.Sprintf("with a body that is not an Anthropic message: %v", err))
	}
	r := &reply{stop: msg.StopReason, usage: msg.Usage.tokens()}
	for _, blk := range msg.Content {
		switch blk.Type {
		case "text":
			r.addText(blk.Text)
		case "tool_use":
			args := string(blk.Input)
			if args == "" || args == "null" {
				args = "{}"
			}
			r.addTool(conv, blk.ID, blk.Name, args)
		}
	}
	return provider.JSONResponse(conv.completion(completionID(out.ResultMetadata), b.clock().Unix(), r))
}

// invokeChatStream answers a chat request through
// InvokeModelWithResponseStream; each chunk carries one Anthropic event.
func (b *Bedrock) invokeChatStream(ctx context.Context, inst *instance, conv *conversation, w provider.ChunkWriter) error {
	body, err := conv.anthropicBody()
	if err != nil {
		return err
	}
	out, err := inst.client.InvokeModelWithResponseStream(ctx, &bedrockruntime.InvokeModelWithResponseStreamInput{
		ModelId: aws.String(conv.model), Body: body,
		ContentType: aws.String("application/json"), Accept: aws.String("application/json"),
	})
	if err != nil {
		return clientError(err)
	}
	stream := out.GetStream()
	defer stream.Close()
	c := newChunker(w, conv, completionID(out.ResultMetadata), b.clock().Unix())
	var usage anthropicUsage
	for ev := range stream.Events() {
		chunk, ok := ev.(*types.ResponseStreamMemberChunk)
		if !ok {
			continue
		}
		var e anthropicEvent
		if err := json.Unmarshal(chunk.Value.Bytes, &e); err != nil {
			return streamCut(fmt.Sprintf("with an event that is not JSON: %v", err))
		}
		if err := anthropicStreamEvent(c, &e, &usage); err != nil {
			return err
		}
	}
	if err := stream.Err(); err != nil {
		return clientError(err)
	}
	if err := ctx.Err(); err != nil {
		return clientError(err)
	}
	return c.end()
}

// anthropicStreamEvent feeds one Anthropic stream event to the chunker;
// usage collects input tokens from message_start and the cumulative output
// tokens from message_delta.
func anthropicStreamEvent(c *chunker, e *anthropicEvent, usage *anthropicUsage) error {
	switch e.Type {
	case "message_start":
		*usage = e.Message.Usage
		return c.start()
	case "content_block_start":
		switch e.ContentBlock.Type {
		case "tool_use":
			return c.toolStart(e.Index, e.ContentBlock.ID, e.ContentBlock.Name)
		case "text":
			return c.text(e.ContentBlock.Text)
		}
	case "content_block_delta":
		switch e.Delta.Type {
		case "text_delta":
			return c.text(e.Delta.Text)
		case "input_json_delta":
			return c.toolArgs(e.Index, e.Delta.PartialJSON)
		}
	case "message_delta":
		if e.Usage != nil {
			usage.OutputTokens = e.Usage.OutputTokens
		}
		return c.finish(e.Delta.StopReason)
	case "message_stop":
		c.setUsage(usage.tokens())
	case "error":
		msg := "upstream stream error"
		if e.Error != nil {
			msg = e.Error.Type + ": " + e.Error.Message
		}
		return openai.NewError(502, openai.TypeUpstream, "upstream_stream_error", "bedrock: "+msg)
	}
	return nil
}
