package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// jsonToolName is the tool that carries a JSON-mode answer: Anthropic has
// no JSON mode, so response_format json_object/json_schema becomes a
// forced call of this tool whose input is the answer.
const jsonToolName = "json_response"

// imageTypes are the image media types the Messages API accepts.
var imageTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

// translated is an OpenAI request turned into a Messages API request.
type translated struct {
	body *messagesRequest
	// jsonTool is set when the answer arrives as a call of jsonToolName.
	jsonTool bool
}

// translateRequest maps an OpenAI chat request to a Messages API request.
// Problems the client can fix are 400 *openai.Error values.
func translateRequest(chat *openai.ChatRequest, req *provider.Request, defaultMax int) (*translated, error) {
	if chat.N != nil && *chat.N > 1 {
		return nil, openai.InvalidRequest("n", "anthropic models return one choice; n must be 1")
	}
	if chat.Logprobs != nil && *chat.Logprobs {
		return nil, openai.InvalidRequest("logprobs", "anthropic models do not return logprobs")
	}
	out := &messagesRequest{Model: chat.Model, Stream: chat.Stream, TopP: chat.TopP}

	out.MaxTokens = chat.MaxOutputTokens()
	switch {
	case chat.MaxCompletionTokens != nil && *chat.MaxCompletionTokens < 1:
		return nil, openai.InvalidRequest("max_completion_tokens", "max_completion_tokens must be at least 1")
	case chat.MaxCompletionTokens == nil && chat.MaxTokens != nil && *chat.MaxTokens < 1:
		return nil, openai.InvalidRequest("max_tokens", "max_tokens must be at least 1")
	case out.MaxTokens == 0:
		out.MaxTokens = defaultMax
	}
	if t := chat.Temperature; t != nil {
		if *t < 0 {
			return nil, openai.InvalidRequest("temperature", "temperature must not be negative")
		}
		v := min(*t, 1) // Anthropic's range is 0-1; OpenAI's is 0-2.
		out.Temperature = &v
	}
	for _, s := range chat.Stop {
		if s != "" {
			out.StopSequences = append(out.StopSequences, s)
		}
	}
	if chat.User != "" {
		out.Metadata = &requestMeta{UserID: chat.User}
	}

	for i, m := range chat.Messages {
		if err := addMessage(out, i, m, req); err != nil {
			return nil, err
		}
	}
	if len(out.Messages) == 0 {
		return nil, openai.InvalidRequest("messages", "messages must contain at least one user or assistant message with content")
	}

	jsonTool, err := addTools(out, chat)
	if err != nil {
		return nil, err
	}
	return &translated{body: out, jsonTool: jsonTool}, nil
}

// addMessage appends the blocks of OpenAI message i to out.
func addMessage(out *messagesRequest, i int, m openai.Message, req *provider.Request) error {
	param := fmt.Sprintf("messages[%d]", i)
	switch m.Role {
	case openai.RoleSystem, openai.RoleDeveloper:
		blocks, err := textBlocks(param, m.Content)
		if err != nil {
			return err
		}
		out.System = append(out.System, blocks...)
		return nil
	case openai.RoleUser:
		blocks, err := userBlocks(param, m.Content, req)
		if err != nil {
			return err
		}
		appendBlocks(out, roleUser, blocks)
		return nil
	case openai.RoleAssistant:
		blocks, err := textBlocks(param, m.Content)
		if err != nil {
			return err
		}
		for j, tc := range m.ToolCalls {
			b, err := toolUseBlock(fmt.Sprintf("%s.tool_calls[%d]", param, j), tc)
			if err != nil {
				return err
			}
			blocks = append(blocks, b)
		}
		appendBlocks(out, roleAssistant, blocks)
		return nil
	case openai.RoleTool:
		content, err := textBlocks(param, m.Content)
		if err != nil {
			return err
		}
		appendBlocks(out, roleUser, []block{{Type: blockToolResult, ToolUseID: m.ToolCallID, Content: content}})
		return nil
	}
	return openai.InvalidRequest(param+".role", fmt.Sprintf("role %q is not supported by anthropic models; use tool messages", m.Role))
}

// appendBlocks adds blocks to the conversation, merging them into the last
// message when it has the same role (the API wants alternating roles). In
// a user message, tool_result blocks stay ahead of all other blocks.
func appendBlocks(out *messagesRequest, role string, blocks []block) {
	if len(blocks) == 0 {
		return
	}
	n := len(out.Messages)
	if n == 0 || out.Messages[n-1].Role != role {
		out.Messages = append(out.Messages, message{Role: role, Content: blocks})
		return
	}
	last := &out.Messages[n-1]
	for _, b := range blocks {
		if b.Type != blockToolResult {
			last.Content = append(last.Content, b)
			continue
		}
		at := 0
		for at < len(last.Content) && last.Content[at].Type == blockToolResult {
			at++
		}
		last.Content = append(last.Content[:at], append([]block{b}, last.Content[at:]...)...)
	}
}

// textBlocks maps a content that may hold only text to text blocks,
// dropping empty text.
func textBlocks(param string, c openai.Content) ([]block, error) {
	if !c.IsArray {
		if c.Text == "" {
			return nil, nil
		}
		return []block{{Type: blockText, Text: c.Text}}, nil
	}
	var out []block
	for j, p := range c.Parts {
		switch p.Type {
		case openai.PartText, openai.PartRefusal:
			t := p.Text
			if p.Type == openai.PartRefusal {
				t = p.Refusal
			}
			if t != "" {
				out = append(out, block{Type: blockText, Text: t})
			}
		default:
			return nil, openai.InvalidRequest(fmt.Sprintf("%s.content[%d].type", param, j),
				fmt.Sprintf("content part type %q is not allowed in this message; only text is", p.Type))
		}
	}
	return out, nil
}

// userBlocks maps a user message's content to blocks.
func userBlocks(param string, c openai.Content, req *provider.Request) ([]block, error) {
	if !c.IsArray {
		return textBlocks(param, c)
	}
	var out []block
	for j, p := range c.Parts {
		pp := fmt.Sprintf("%s.content[%d]", param, j)
		switch p.Type {
		case openai.PartText:
			if p.Text != "" {
				out = append(out, block{Type: blockText, Text: p.Text})
			}
		case openai.PartImageURL:
			if p.ImageURL == nil {
				return nil, openai.InvalidRequest(pp+".image_url", "image_url part needs an image_url object")
			}
			b, err := imageBlock(pp+".image_url.url", p.ImageURL.URL)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		case openai.PartDocument:
			if p.Document == nil || p.Document.ID == "" {
				return nil, openai.InvalidRequest(pp+".document", "document part was not resolved by the gateway")
			}
			d := req.Document(p.Document.ID)
			if d == nil {
				return nil, openai.InvalidRequest(pp+".document", fmt.Sprintf("document %q is missing from the request", p.Document.ID))
			}
			name := d.Name
			if name == "" {
				name = p.Document.Name
			}
			b, err := documentBlock(pp, name, d.MIMEType, d.Data, d.Text)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		case openai.PartFile:
			b, err := fileBlock(pp, p.File)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		default:
			return nil, openai.InvalidRequest(pp+".type", fmt.Sprintf("content part type %q is not supported by anthropic models", p.Type))
		}
	}
	return out, nil
}

// imageBlock maps an image URL (https or data:) to an image block.
func imageBlock(param, u string) (block, error) {
	if strings.HasPrefix(u, "data:") {
		mime, data, err := parseDataURL(param, u)
		if err != nil {
			return block{}, err
		}
		if !imageTypes[mime] {
			return block{}, openai.InvalidRequest(param, fmt.Sprintf("image type %q is not supported; use jpeg, png, gif or webp", mime))
		}
		return block{Type: blockImage, Source: &source{Type: sourceBase64, MediaType: mime, Data: data}}, nil
	}
	if strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://") {
		return block{Type: blockImage, Source: &source{Type: sourceURL, URL: u}}, nil
	}
	return block{}, openai.InvalidRequest(param, "image url must be an http(s) URL or a base64 data URL")
}

// fileBlock maps an OpenAI file part carrying inline data.
func fileBlock(param string, f *openai.File) (block, error) {
	if f == nil || f.FileData == "" {
		return block{}, openai.InvalidRequest(param+".file", "file parts need file_data; uploaded file ids are not supported by anthropic models")
	}
	mime, data, err := parseDataURL(param+".file.file_data", f.FileData)
	if err != nil {
		return block{}, err
	}
	if imageTypes[mime] {
		return block{Type: blockImage, Source: &source{Type: sourceBase64, MediaType: mime, Data: data}}, nil
	}
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return block{}, openai.InvalidRequest(param+".file.file_data", "file_data is not valid base64")
	}
	return documentBlock(param, f.Filename, mime, raw, "")
}

// documentBlock maps a document: PDF as a base64 document, anything with
// text (extracted or text-like data) as a text document, keeping the name
// as the title.
func documentBlock(param, name, mime string, data []byte, text string) (block, error) {
	mime = strings.ToLower(strings.TrimSpace(strings.SplitN(mime, ";", 2)[0]))
	b := block{Type: blockDocument, Title: name}
	switch {
	case mime == "application/pdf":
		b.Source = &source{Type: sourceBase64, MediaType: mime, Data: base64.StdEncoding.EncodeToString(data)}
	case text != "":
		b.Source = &source{Type: sourceText, MediaType: "text/plain", Data: text}
	case textLike(mime) && utf8.Valid(data) && len(data) > 0:
		b.Source = &source{Type: sourceText, MediaType: "text/plain", Data: string(data)}
	default:
		return block{}, openai.InvalidRequest(param, fmt.Sprintf("document %q (%s) has no text and is not a PDF; anthropic models cannot read it", name, mime))
	}
	return b, nil
}

// textLike reports whether a media type is text a model can read as is.
func textLike(mime string) bool {
	if strings.HasPrefix(mime, "text/") {
		return true
	}
	switch mime {
	case "application/json", "application/xml", "application/x-yaml", "application/yaml", "application/x-ndjson", "application/csv":
		return true
	}
	return strings.HasSuffix(mime, "+json") || strings.HasSuffix(mime, "+xml")
}

// parseDataURL splits data:<mime>;base64,<payload>.
func parseDataURL(param, u string) (mime, data string, err error) {
	head, payload, ok := strings.Cut(strings.TrimPrefix(u, "data:"), ",")
	if !ok || !strings.HasSuffix(head, ";base64") {
		return "", "", openai.InvalidRequest(param, "data URL must look like data:<mime>;base64,<data>")
	}
	mime = strings.ToLower(strings.TrimSuffix(head, ";base64"))
	if mime == "" || payload == "" {
		return "", "", openai.InvalidRequest(param, "data URL needs a media type and data")
	}
	return mime, payload, nil
}

// toolUseBlock maps an assistant tool call; its arguments must be a JSON
// object.
func toolUseBlock(param string, tc openai.ToolCall) (block, error) {
	if tc.ID == "" || tc.Function.Name == "" {
		return block{}, openai.InvalidRequest(param, "tool calls need an id and a function name")
	}
	args := strings.TrimSpace(tc.Function.Arguments)
	if args == "" {
		args = "{}"
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(args), &obj); err != nil || obj == nil {
		return block{}, openai.InvalidRequest(param+".function.arguments", "function arguments must be a JSON object")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(args)); err != nil {
		return block{}, openai.InvalidRequest(param+".function.arguments", "function arguments must be a JSON object")
	}
	return block{Type: blockToolUse, ID: tc.ID, Name: tc.Function.Name, Input: buf.Bytes()}, nil
}

// addTools maps tools, tool_choice, parallel_tool_calls and
// response_format. It reports whether the JSON-mode tool was added.
func addTools(out *messagesRequest, chat *openai.ChatRequest) (bool, error) {
	for i, t := range chat.Tools {
		if t.Type != "function" {
			return false, openai.InvalidRequest(fmt.Sprintf("tools[%d].type", i), fmt.Sprintf("tool type %q is not supported; use function", t.Type))
		}
		if t.Function.Name == "" {
			return false, openai.InvalidRequest(fmt.Sprintf("tools[%d].function.name", i), "tools need a function name")
		}
		schema := t.Function.Parameters
		if len(bytes.TrimSpace(schema)) == 0 || string(schema) == "null" {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out.Tools = append(out.Tools, tool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema})
	}

	var choice *toolChoice
	if tc := chat.ToolChoice; tc != nil && len(out.Tools) > 0 {
		switch {
		case tc.Function != "":
			choice = &toolChoice{Type: "tool", Name: tc.Function}
		case tc.Mode == "auto":
			choice = &toolChoice{Type: "auto"}
		case tc.Mode == "required":
			choice = &toolChoice{Type: "any"}
		case tc.Mode == "none":
			choice = &toolChoice{Type: "none"}
		default:
			return false, openai.InvalidRequest("tool_choice", fmt.Sprintf("unknown tool_choice %q", tc.Mode))
		}
	}

	jsonTool := false
	if rf := chat.ResponseFormat; rf != nil && (rf.Type == "json_object" || rf.Type == "json_schema") {
		for _, t := range out.Tools {
			if t.Name == jsonToolName {
				return false, openai.InvalidRequest("tools", "the tool name "+jsonToolName+" is reserved for response_format")
			}
		}
		if choice != nil && choice.Type != "auto" {
			return false, openai.InvalidRequest("response_format", "response_format json cannot be combined with tool_choice "+choice.Type+" on anthropic models")
		}
		t := tool{Name: jsonToolName, Description: "Respond with the JSON answer to the conversation as this tool's input.",
			InputSchema: json.RawMessage(`{"type":"object"}`)}
		if rf.Type == "json_schema" {
			if rf.JSONSchema == nil || len(bytes.TrimSpace(rf.JSONSchema.Schema)) == 0 {
				return false, openai.InvalidRequest("response_format.json_schema.schema", "json_schema needs a schema")
			}
			t.InputSchema = rf.JSONSchema.Schema
			if rf.JSONSchema.Description != "" {
				t.Description = rf.JSONSchema.Description
			}
		}
		if len(out.Tools) == 0 {
			choice = &toolChoice{Type: "tool", Name: jsonToolName}
		} else {
			choice = &toolChoice{Type: "any"}
		}
		out.Tools = append(out.Tools, t)
		jsonTool = true
	} else if rf != nil && rf.Type != "" && rf.Type != "text" {
		return false, openai.InvalidRequest("response_format.type", fmt.Sprintf("response_format type %q is not supported", rf.Type))
	}

	if chat.ParallelToolCalls != nil && !*chat.ParallelToolCalls && len(out.Tools) > 0 {
		if choice == nil {
			choice = &toolChoice{Type: "auto"}
		}
		if choice.Type != "none" {
			choice.DisableParallelToolUse = true
		}
	}
	out.ToolChoice = choice
	return jsonTool, nil
}
