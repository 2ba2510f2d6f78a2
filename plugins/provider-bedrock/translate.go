package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/document"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	smithydocument "github.com/aws/smithy-go/document"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// jsonToolName is the forced tool that carries a JSON-mode answer when the
// request names no schema.
const jsonToolName = "json_response"

// jsonInstruction is the system instruction used for JSON mode when the
// request also declares its own tools.
const jsonInstruction = "Respond with a single valid JSON object and nothing else: no prose, no code fences."

// conversation is a chat request in Bedrock's terms. The Converse input
// and the Anthropic InvokeModel body are both encoded from it.
type conversation struct {
	model      string
	system     []string
	messages   []types.Message
	inference  types.InferenceConfiguration
	toolConfig *types.ToolConfiguration
	// jsonTool names the forced tool whose input is the JSON-mode answer;
	// empty when JSON mode is off or emulated by instruction.
	jsonTool     string
	includeUsage bool
}

// toolNameRE is what Bedrock accepts as a tool name.
var toolNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// translate maps an OpenAI chat request onto a conversation.
func translate(req *provider.Request) (*conversation, error) {
	chat, err := req.Chat()
	if err != nil {
		return nil, err
	}
	if chat.N != nil && *chat.N > 1 {
		return nil, openai.InvalidRequest("n", "bedrock returns one choice per request; n must be 1")
	}
	c := &conversation{model: chat.Model, includeUsage: chat.IncludeUsage()}
	if m := chat.MaxOutputTokens(); m > 0 {
		c.inference.MaxTokens = aws.Int32(int32(min(m, 1<<30)))
	}
	if chat.Temperature != nil {
		c.inference.Temperature = aws.Float32(float32(*chat.Temperature))
	}
	if chat.TopP != nil {
		c.inference.TopP = aws.Float32(float32(*chat.TopP))
	}
	for _, s := range chat.Stop {
		if s != "" {
			c.inference.StopSequences = append(c.inference.StopSequences, s)
		}
	}

	var names documentNamer
	var msgs []types.Message
	toolHistory := map[string]bool{}
	for i, m := range chat.Messages {
		at := fmt.Sprintf("messages[%d]", i)
		switch m.Role {
		case openai.RoleSystem, openai.RoleDeveloper:
			if t := m.Content.String(); t != "" {
				c.system = append(c.system, t)
			}
		case openai.RoleUser:
			blocks, err := userBlocks(at, m.Content, req, &names)
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, types.Message{Role: types.ConversationRoleUser, Content: blocks})
		case openai.RoleAssistant:
			blocks, err := assistantBlocks(at, m)
			if err != nil {
				return nil, err
			}
			for _, tc := range m.ToolCalls {
				toolHistory[tc.Function.Name] = true
			}
			msgs = append(msgs, types.Message{Role: types.ConversationRoleAssistant, Content: blocks})
		case openai.RoleTool:
			msgs = append(msgs, types.Message{Role: types.ConversationRoleUser, Content: []types.ContentBlock{
				&types.ContentBlockMemberToolResult{Value: types.ToolResultBlock{
					ToolUseId: aws.String(m.ToolCallID),
					Content:   toolResultContent(m.Content),
					Status:    types.ToolResultStatusSuccess,
				}},
			}})
		default:
			return nil, openai.InvalidRequest(at+".role", fmt.Sprintf("role %q is not supported by bedrock; use tool messages", m.Role))
		}
	}
	c.messages = mergeRoles(msgs)
	if len(c.messages) == 0 {
		return nil, openai.InvalidRequest("messages", "bedrock needs at least one user or assistant message besides system messages")
	}
	if err := c.setTools(chat, toolHistory); err != nil {
		return nil, err
	}
	return c, nil
}

// mergeRoles merges consecutive messages of the same role, as Bedrock
// requires alternating roles; this also puts the results of parallel tool
// calls into one user message.
func mergeRoles(msgs []types.Message) []types.Message {
	var out []types.Message
	for _, m := range msgs {
		if len(m.Content) == 0 {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Role == m.Role {
			out[n-1].Content = append(out[n-1].Content, m.Content...)
			continue
		}
		out = append(out, m)
	}
	return out
}

// userBlocks maps a user message's content to Converse blocks.
func userBlocks(at string, content openai.Content, req *provider.Request, names *documentNamer) ([]types.ContentBlock, error) {
	if !content.IsArray {
		if content.Text == "" {
			return nil, nil
		}
		return []types.ContentBlock{&types.ContentBlockMemberText{Value: content.Text}}, nil
	}
	var blocks []types.ContentBlock
	for j, p := range content.Parts {
		pat := fmt.Sprintf("%s.content[%d]", at, j)
		switch p.Type {
		case openai.PartText:
			if p.Text != "" {
				blocks = append(blocks, &types.ContentBlockMemberText{Value: p.Text})
			}
		case openai.PartImageURL:
			b, err := imageBlock(pat, p.ImageURL)
			if err != nil {
				return nil, err
			}
			blocks = append(blocks, b)
		case openai.PartDocument:
			if p.Document == nil {
				return nil, openai.InvalidRequest(pat+".document", "document part without a resolved document")
			}
			d := req.Document(p.Document.ID)
			if d == nil {
				return nil, openai.InvalidRequest(pat+".document.id", fmt.Sprintf("document %q was not resolved", p.Document.ID))
			}
			name := d.Name
			if name == "" {
				name = p.Document.Name
			}
			b, err := documentBlock(pat, name, d.MIMEType, d.Data, d.Text, names)
			if err != nil {
				return nil, err
			}
			blocks = append(blocks, b)
		case openai.PartFile:
			if p.File == nil || p.File.FileData == "" {
				return nil, openai.InvalidRequest(pat+".file", "bedrock needs file parts with file_data; file_id references are not supported")
			}
			du, err := parseDataURL(p.File.FileData)
			if err != nil {
				return nil, openai.InvalidRequest(pat+".file.file_data", err.Error())
			}
			b, err := documentBlock(pat, p.File.Filename, du.mimeType, du.data, "", names)
			if err != nil {
				return nil, err
			}
			blocks = append(blocks, b)
		default:
			return nil, openai.InvalidRequest(pat+".type", fmt.Sprintf("content part type %q is not supported by bedrock", p.Type))
		}
	}
	return blocks, nil
}

// imageBlock maps an image_url part; only data: URLs can be sent because
// Bedrock does not fetch URLs.
func imageBlock(at string, img *openai.ImageURL) (types.ContentBlock, error) {
	if img == nil || img.URL == "" {
		return nil, openai.InvalidRequest(at+".image_url", "image_url part without a url")
	}
	if !strings.HasPrefix(img.URL, "data:") {
		return nil, openai.InvalidRequest(at+".image_url.url", "bedrock cannot fetch image URLs; send the image inline as a data: URL")
	}
	du, err := parseDataURL(img.URL)
	if err != nil {
		return nil, openai.InvalidRequest(at+".image_url.url", err.Error())
	}
	f, ok := imageFormats[du.mimeType]
	if !ok {
		return nil, openai.InvalidRequest(at+".image_url.url", fmt.Sprintf("image type %q is not supported by bedrock (png, jpeg, gif, webp)", du.mimeType))
	}
	return &types.ContentBlockMemberImage{Value: types.ImageBlock{Format: f, Source: &types.ImageSourceMemberBytes{Value: du.data}}}, nil
}

// documentBlock maps a document to a Converse document block. A document
// of a type Bedrock does not read is sent as its extracted text.
func documentBlock(at, name, mimeType string, data []byte, text string, names *documentNamer) (types.ContentBlock, error) {
	f, ok := documentFormat(mimeType)
	if !ok {
		if text == "" {
			return nil, openai.InvalidRequest(at, fmt.Sprintf("document type %q is not supported by bedrock and no text could be extracted from it", mimeType))
		}
		f, data = types.DocumentFormatTxt, []byte(text)
	}
	if len(data) == 0 {
		return nil, openai.InvalidRequest(at, "document is empty")
	}
	return &types.ContentBlockMemberDocument{Value: types.DocumentBlock{
		Format: f,
		Name:   aws.String(names.name(name)),
		Source: &types.DocumentSourceMemberBytes{Value: data},
	}}, nil
}

// assistantBlocks maps an assistant message: its text, then its tool calls.
func assistantBlocks(at string, m openai.Message) ([]types.ContentBlock, error) {
	var blocks []types.ContentBlock
	if t := m.Content.String(); t != "" {
		blocks = append(blocks, &types.ContentBlockMemberText{Value: t})
	}
	for j, tc := range m.ToolCalls {
		input, err := parseArguments(tc.Function.Arguments)
		if err != nil {
			return nil, openai.InvalidRequest(fmt.Sprintf("%s.tool_calls[%d].function.arguments", at, j), err.Error())
		}
		blocks = append(blocks, &types.ContentBlockMemberToolUse{Value: types.ToolUseBlock{
			ToolUseId: aws.String(tc.ID),
			Name:      aws.String(tc.Function.Name),
			Input:     document.NewLazyDocument(input),
		}})
	}
	return blocks, nil
}

// toolResultContent maps a tool message's content to tool-result blocks.
func toolResultContent(c openai.Content) []types.ToolResultContentBlock {
	if c.IsArray {
		var out []types.ToolResultContentBlock
		for _, p := range c.Parts {
			if p.Type == openai.PartText {
				out = append(out, &types.ToolResultContentBlockMemberText{Value: p.Text})
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return []types.ToolResultContentBlock{&types.ToolResultContentBlockMemberText{Value: c.String()}}
}

// parseArguments decodes a JSON arguments string into a document value
// with exact numbers; an empty string is an empty object.
func parseArguments(args string) (any, error) {
	if strings.TrimSpace(args) == "" {
		return map[string]any{}, nil
	}
	v, err := decodeJSON([]byte(args))
	if err != nil {
		return nil, fmt.Errorf("arguments are not valid JSON: %w", err)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("arguments must be a JSON object")
	}
	return v, nil
}

// decodeJSON decodes b keeping numbers exact (as smithy document numbers).
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, fmt.Errorf("trailing data after JSON value")
	}
	return toDocument(v), nil
}

// toDocument replaces json.Number by smithy document numbers, which the
// SDK encodes as JSON numbers.
func toDocument(v any) any {
	switch x := v.(type) {
	case json.Number:
		return smithydocument.Number(x)
	case map[string]any:
		for k, e := range x {
			x[k] = toDocument(e)
		}
	case []any:
		for i, e := range x {
			x[i] = toDocument(e)
		}
	}
	return v
}

// setTools maps tools, tool_choice and response_format onto toolConfig.
//
// JSON mode (response_format json_object or json_schema): without client
// tools, a forced tool whose input schema is the requested schema carries
// the answer, which is returned as the message content. With client tools,
// a system instruction asks for JSON instead, so the client's tools stay
// callable.
func (c *conversation) setTools(chat *openai.ChatRequest, history map[string]bool) error {
	var tools []types.Tool
	declared := map[string]bool{}
	for i, t := range chat.Tools {
		at := fmt.Sprintf("tools[%d]", i)
		if t.Type != "" && t.Type != "function" {
			return openai.InvalidRequest(at+".type", fmt.Sprintf("tool type %q is not supported by bedrock", t.Type))
		}
		if !toolNameRE.MatchString(t.Function.Name) {
			return openai.InvalidRequest(at+".function.name", "tool names must match [a-zA-Z0-9_-]{1,64}")
		}
		schema, err := toolSchema(t.Function.Parameters)
		if err != nil {
			return openai.InvalidRequest(at+".function.parameters", err.Error())
		}
		spec := types.ToolSpecification{Name: aws.String(t.Function.Name), InputSchema: schema}
		if t.Function.Description != "" {
			spec.Description = aws.String(t.Function.Description)
		}
		tools = append(tools, &types.ToolMemberToolSpec{Value: spec})
		declared[t.Function.Name] = true
	}

	var choice types.ToolChoice
	none := false
	if tc := chat.ToolChoice; tc != nil {
		switch {
		case tc.Function != "":
			if !declared[tc.Function] {
				return openai.InvalidRequest("tool_choice", fmt.Sprintf("tool_choice names %q, which is not in tools", tc.Function))
			}
			choice = &types.ToolChoiceMemberTool{Value: types.SpecificToolChoice{Name: aws.String(tc.Function)}}
		case tc.Mode == "auto":
			if len(tools) > 0 {
				choice = &types.ToolChoiceMemberAuto{}
			}
		case tc.Mode == "required":
			if len(tools) == 0 {
				return openai.InvalidRequest("tool_choice", `tool_choice "required" needs tools`)
			}
			choice = &types.ToolChoiceMemberAny{}
		case tc.Mode == "none":
			none = true
		default:
			return openai.InvalidRequest("tool_choice", fmt.Sprintf("unknown tool_choice %q", tc.Mode))
		}
	}

	if rf := chat.ResponseFormat; rf != nil && (rf.Type == "json_object" || rf.Type == "json_schema") {
		if len(tools) > 0 {
			c.system = append(c.system, jsonInstruction)
		} else {
			name, raw := jsonToolName, json.RawMessage(nil)
			desc := "Return the response as this tool's input."
			if rf.Type == "json_schema" && rf.JSONSchema != nil {
				if toolNameRE.MatchString(rf.JSONSchema.Name) {
					name = rf.JSONSchema.Name
				}
				raw = rf.JSONSchema.Schema
				if rf.JSONSchema.Description != "" {
					desc = rf.JSONSchema.Description
				}
			}
			schema, err := toolSchema(raw)
			if err != nil {
				return openai.InvalidRequest("response_format.json_schema.schema", err.Error())
			}
			tools = []types.Tool{&types.ToolMemberToolSpec{Value: types.ToolSpecification{
				Name: aws.String(name), Description: aws.String(desc), InputSchema: schema,
			}}}
			declared = map[string]bool{name: true}
			choice = &types.ToolChoiceMemberTool{Value: types.SpecificToolChoice{Name: aws.String(name)}}
			c.jsonTool = name
			none = false
		}
	}

	// Bedrock rejects toolUse/toolResult blocks without a toolConfig, so
	// tools called in the history are declared (with an open schema, in
	// name order) even when the client sent none.
	var extra []string
	for name := range history {
		if !declared[name] {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	for _, name := range extra {
		tools = append(tools, &types.ToolMemberToolSpec{Value: types.ToolSpecification{
			Name:        aws.String(name),
			InputSchema: &types.ToolInputSchemaMemberJson{Value: document.NewLazyDocument(map[string]any{"type": "object"})},
		}})
	}
	if len(tools) == 0 || (none && len(history) == 0) {
		return nil
	}
	if none {
		choice = nil
	}
	c.toolConfig = &types.ToolConfiguration{Tools: tools, ToolChoice: choice}
	return nil
}

// toolSchema maps function parameters to a tool input schema; absent
// parameters mean an object without properties.
func toolSchema(params json.RawMessage) (types.ToolInputSchema, error) {
	if len(params) == 0 || string(params) == "null" {
		return &types.ToolInputSchemaMemberJson{Value: document.NewLazyDocument(map[string]any{"type": "object", "properties": map[string]any{}})}, nil
	}
	v, err := decodeJSON(params)
	if err != nil {
		return nil, fmt.Errorf("parameters are not valid JSON: %w", err)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("parameters must be a JSON schema object")
	}
	return &types.ToolInputSchemaMemberJson{Value: document.NewLazyDocument(v)}, nil
}

// converseInput encodes the conversation as a Converse request.
func (c *conversation) converseInput() *bedrockruntime.ConverseInput {
	in := &bedrockruntime.ConverseInput{
		ModelId:    aws.String(c.model),
		Messages:   c.messages,
		ToolConfig: c.toolConfig,
	}
	for _, s := range c.system {
		in.System = append(in.System, &types.SystemContentBlockMemberText{Value: s})
	}
	if inf := c.inference; inf.MaxTokens != nil || inf.Temperature != nil || inf.TopP != nil || len(inf.StopSequences) > 0 {
		in.InferenceConfig = &inf
	}
	return in
}

// converseStreamInput encodes the conversation as a ConverseStream request.
func (c *conversation) converseStreamInput() *bedrockruntime.ConverseStreamInput {
	in := c.converseInput()
	return &bedrockruntime.ConverseStreamInput{
		ModelId:         in.ModelId,
		Messages:        in.Messages,
		System:          in.System,
		InferenceConfig: in.InferenceConfig,
		ToolConfig:      in.ToolConfig,
	}
}
