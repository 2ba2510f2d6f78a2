// Package responses translates the OpenAI Responses API (POST
// /v1/responses) to and from OpenAI chat completions, so that the host
// serves it through its ordinary chat path with every provider.
//
// The translation is stateless: Parse reads a Responses request, Chat
// builds the chat completions body for it (with the items of an earlier
// response prepended when the caller resolved previous_response_id), and
// a Converter turns the chat answer — a chat.completion body or the
// chunks of a stream — into a Response object or the typed response.*
// stream events. Keeping responses for previous_response_id is the
// caller's business; Memory is an in-process store for it.
package responses

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// Request is a POST /v1/responses body. Fields the gateway accepts but
// does not act on (include, truncation, service_tier, prompt_cache_key,
// safety_identifier, stream_options, top_logprobs) are read so that the
// SDKs' requests are not refused, and otherwise ignored.
type Request struct {
	Model              string            `json:"model"`
	Input              json.RawMessage   `json:"input,omitempty"`
	Instructions       *string           `json:"instructions,omitempty"`
	Tools              []json.RawMessage `json:"tools,omitempty"`
	ToolChoice         json.RawMessage   `json:"tool_choice,omitempty"`
	ParallelToolCalls  *bool             `json:"parallel_tool_calls,omitempty"`
	Text               *TextConfig       `json:"text,omitempty"`
	Reasoning          *Reasoning        `json:"reasoning,omitempty"`
	MaxOutputTokens    *int64            `json:"max_output_tokens,omitempty"`
	Temperature        *float64          `json:"temperature,omitempty"`
	TopP               *float64          `json:"top_p,omitempty"`
	Metadata           map[string]string `json:"metadata,omitempty"`
	User               string            `json:"user,omitempty"`
	Store              *bool             `json:"store,omitempty"`
	PreviousResponseID string            `json:"previous_response_id,omitempty"`
	Stream             bool              `json:"stream,omitempty"`

	Background   *bool           `json:"background,omitempty"`
	Conversation json.RawMessage `json:"conversation,omitempty"`
	Prompt       json.RawMessage `json:"prompt,omitempty"`
	MaxToolCalls *int64          `json:"max_tool_calls,omitempty"`

	Include        []string        `json:"include,omitempty"`
	Truncation     string          `json:"truncation,omitempty"`
	ServiceTier    string          `json:"service_tier,omitempty"`
	PromptCacheKey string          `json:"prompt_cache_key,omitempty"`
	SafetyID       string          `json:"safety_identifier,omitempty"`
	StreamOptions  json.RawMessage `json:"stream_options,omitempty"`
	TopLogprobs    *int64          `json:"top_logprobs,omitempty"`

	// tools and choice are the parsed function tools and tool_choice.
	tools  []openai.Tool
	choice *openai.ToolChoice
	// items are the input items, a string input as one user message.
	items []json.RawMessage
}

// TextConfig is the text parameter: the answer's format.
type TextConfig struct {
	Format    *Format `json:"format,omitempty"`
	Verbosity string  `json:"verbosity,omitempty"`
}

// Format is text.format: text, json_object or json_schema (flat: name,
// schema, description and strict beside type).
type Format struct {
	Type        string          `json:"type"`
	Name        string          `json:"name,omitempty"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// Reasoning is the reasoning parameter. Only effort reaches the
// provider; summary (and its older name generate_summary) is accepted
// and echoed.
type Reasoning struct {
	Effort          *string `json:"effort"`
	Summary         *string `json:"summary"`
	GenerateSummary *string `json:"generate_summary,omitempty"`
}

// Errors of this package carry the status and shape the client sees.
func invalid(param, format string, args ...any) *openai.Error {
	return openai.InvalidRequest(param, fmt.Sprintf(format, args...))
}

func unsupported(param, format string, args ...any) *openai.Error {
	e := invalid(param, format, args...)
	e.Code = "unsupported_parameter"
	return e
}

// Parse reads and validates a Responses request body. Every error is an
// *openai.Error with status 400 that names the offending parameter.
func Parse(body []byte) (*Request, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var r Request
	if err := dec.Decode(&r); err != nil {
		var field string
		if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
			field = strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`)
			return nil, unsupported(field, "unknown parameter %q; see docs/responses.md for what /v1/responses accepts", field)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, invalid(te.Field, "%s must be of type %s, not a JSON %s", te.Field, goType(te.Type.String()), te.Value)
		}
		return nil, invalid("", "request body is not a valid Responses request: %v", err)
	}
	if dec.More() {
		return nil, invalid("", "request body must hold exactly one JSON object")
	}
	if r.Model == "" {
		return nil, invalid("model", "you must provide a model parameter (a string)")
	}
	if r.Background != nil && *r.Background {
		return nil, unsupported("background", "background responses are not supported; send the request without background")
	}
	if len(r.Conversation) > 0 && string(r.Conversation) != "null" {
		return nil, unsupported("conversation", "conversations are not supported; chain responses with previous_response_id")
	}
	if len(r.Prompt) > 0 && string(r.Prompt) != "null" {
		return nil, unsupported("prompt", "prompt templates are not supported; send instructions and input")
	}
	if r.MaxOutputTokens != nil && *r.MaxOutputTokens <= 0 {
		return nil, invalid("max_output_tokens", "max_output_tokens must be a positive integer")
	}
	if r.Truncation != "" && r.Truncation != "auto" && r.Truncation != "disabled" {
		return nil, invalid("truncation", "truncation must be \"auto\" or \"disabled\"")
	}
	if err := r.parseInput(); err != nil {
		return nil, err
	}
	if len(r.items) == 0 && r.PreviousResponseID == "" {
		return nil, invalid("input", "you must provide input: a string or a non-empty array of input items")
	}
	if err := r.parseTools(); err != nil {
		return nil, err
	}
	if _, err := r.responseFormat(); err != nil {
		return nil, err
	}
	if r.Reasoning != nil && r.Reasoning.Effort != nil && *r.Reasoning.Effort == "" {
		return nil, invalid("reasoning.effort", "reasoning.effort must not be empty")
	}
	// Check the items now so that a bad item is a 400 before any lookup.
	if _, err := messages(r.items, "input"); err != nil {
		return nil, err
	}
	return &r, nil
}

// goType names a Go type as the JSON type a client should send.
func goType(t string) string {
	switch {
	case strings.Contains(t, "string"):
		return "string"
	case strings.Contains(t, "int"), strings.Contains(t, "float"):
		return "number"
	case strings.Contains(t, "bool"):
		return "boolean"
	case strings.HasPrefix(t, "[]"):
		return "array"
	}
	return "object"
}

// Items returns the request's input items; a string input is one user
// message item.
func (r *Request) Items() []json.RawMessage { return r.items }

func (r *Request) parseInput() error {
	in := bytes.TrimSpace(r.Input)
	switch {
	case len(in) == 0 || string(in) == "null":
		return nil
	case in[0] == '"':
		var s string
		if err := json.Unmarshal(in, &s); err != nil {
			return invalid("input", "input is not a valid JSON string")
		}
		item, _ := json.Marshal(struct {
			Type    string `json:"type"`
			Role    string `json:"role"`
			Content string `json:"content"`
		}{"message", "user", s})
		r.items = []json.RawMessage{item}
		return nil
	case in[0] == '[':
		if err := json.Unmarshal(in, &r.items); err != nil {
			return invalid("input", "input must be a string or an array of input items")
		}
		for i, it := range r.items {
			if t := bytes.TrimSpace(it); len(t) == 0 || t[0] != '{' {
				return invalid(fmt.Sprintf("input[%d]", i), "input[%d] must be an object", i)
			}
		}
		return nil
	}
	return invalid("input", "input must be a string or an array of input items")
}

func (r *Request) parseTools() error {
	for i, raw := range r.Tools {
		var t struct {
			Type        string          `json:"type"`
			Name        string          `json:"name"`
			Description string          `json:"description"`
			Parameters  json.RawMessage `json:"parameters"`
			Strict      *bool           `json:"strict"`
		}
		if err := json.Unmarshal(raw, &t); err != nil {
			return invalid(fmt.Sprintf("tools[%d]", i), "tools[%d] must be a tool object", i)
		}
		if t.Type != "function" {
			e := invalid(fmt.Sprintf("tools[%d].type", i),
				"tools[%d]: the %q tool is not supported by this gateway; only function tools ({\"type\":\"function\",\"name\":…}) are", i, t.Type)
			e.Code = "unsupported_tool"
			return e
		}
		if t.Name == "" {
			return invalid(fmt.Sprintf("tools[%d].name", i), "tools[%d]: a function tool needs a name", i)
		}
		if string(t.Parameters) == "null" {
			t.Parameters = nil
		}
		r.tools = append(r.tools, openai.Tool{Type: "function", Function: openai.FunctionDecl{
			Name: t.Name, Description: t.Description, Parameters: t.Parameters, Strict: t.Strict}})
	}
	tc := bytes.TrimSpace(r.ToolChoice)
	switch {
	case len(tc) == 0 || string(tc) == "null":
	case tc[0] == '"':
		var mode string
		json.Unmarshal(tc, &mode)
		switch mode {
		case "auto", "none", "required":
			r.choice = &openai.ToolChoice{Mode: mode}
		default:
			return invalid("tool_choice", "tool_choice must be \"auto\", \"none\", \"required\" or {\"type\":\"function\",\"name\":…}, not %q", mode)
		}
	default:
		var c struct {
			Type string `json:"type"`
			Name string `json:"name"`
		}
		if err := json.Unmarshal(tc, &c); err != nil {
			return invalid("tool_choice", "tool_choice must be a string or an object")
		}
		if c.Type != "function" {
			e := invalid("tool_choice.type", "tool_choice type %q is not supported by this gateway; name a function tool", c.Type)
			e.Code = "unsupported_tool"
			return e
		}
		if c.Name == "" {
			return invalid("tool_choice.name", "tool_choice of type function needs a name")
		}
		r.choice = &openai.ToolChoice{Function: c.Name}
	}
	return nil
}

// responseFormat maps text.format onto chat's response_format.
func (r *Request) responseFormat() (*openai.ResponseFormat, error) {
	if r.Text == nil || r.Text.Format == nil {
		return nil, nil
	}
	f := r.Text.Format
	switch f.Type {
	case "text":
		return nil, nil
	case "json_object":
		return &openai.ResponseFormat{Type: "json_object"}, nil
	case "json_schema":
		if f.Name == "" {
			return nil, invalid("text.format.name", "text.format of type json_schema needs a name")
		}
		if s := bytes.TrimSpace(f.Schema); len(s) == 0 || s[0] != '{' {
			return nil, invalid("text.format.schema", "text.format of type json_schema needs a schema object")
		}
		return &openai.ResponseFormat{Type: "json_schema", JSONSchema: &openai.JSONSchema{
			Name: f.Name, Description: f.Description, Schema: f.Schema, Strict: f.Strict}}, nil
	}
	return nil, invalid("text.format.type", "text.format.type must be text, json_object or json_schema, not %q", f.Type)
}

// Chat returns the chat completions body for the request, with prior —
// the input and output items of the response named by
// previous_response_id — before the request's own input.
func (r *Request) Chat(prior []json.RawMessage) ([]byte, error) {
	var msgs []openai.Message
	if r.Instructions != nil && *r.Instructions != "" {
		msgs = append(msgs, openai.Message{Role: openai.RoleSystem, Content: openai.TextContent(*r.Instructions)})
	}
	if len(prior) > 0 {
		m, err := messages(prior, "previous_response_id")
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m...)
	}
	m, err := messages(r.items, "input")
	if err != nil {
		return nil, err
	}
	msgs = append(msgs, m...)
	if len(msgs) == 0 {
		return nil, invalid("input", "the request has no input to answer")
	}
	rf, err := r.responseFormat()
	if err != nil {
		return nil, err
	}
	c := openai.ChatRequest{
		Model:             r.Model,
		Messages:          msgs,
		Temperature:       r.Temperature,
		TopP:              r.TopP,
		Tools:             r.tools,
		ToolChoice:        r.choice,
		ParallelToolCalls: r.ParallelToolCalls,
		ResponseFormat:    rf,
		User:              r.User,
	}
	if len(r.tools) == 0 {
		// Chat refuses parallel_tool_calls without tools.
		c.ParallelToolCalls = nil
	}
	if r.MaxOutputTokens != nil {
		n := int(*r.MaxOutputTokens)
		c.MaxCompletionTokens = &n
	}
	if r.Reasoning != nil && r.Reasoning.Effort != nil {
		c.ReasoningEffort = *r.Reasoning.Effort
	}
	if r.Stream {
		c.Stream = true
		c.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("responses: encode chat request: %w", err)
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// item is the union of the input item shapes the gateway reads.
type item struct {
	Type    string          `json:"type"`
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	// function_call
	CallID    string `json:"call_id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
	// function_call_output
	Output json.RawMessage `json:"output"`
}

// part is one content part of a message item.
type part struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	Refusal  string `json:"refusal"`
	ImageURL string `json:"image_url"`
	Detail   string `json:"detail"`
	FileID   string `json:"file_id"`
	FileData string `json:"file_data"`
	FileURL  string `json:"file_url"`
	Filename string `json:"filename"`
}

// messages translates input items into chat messages. where names the
// items in errors: "input" or "previous_response_id".
//
// Function calls join the assistant message just before them (a model
// turn is text and calls together); their outputs become tool messages.
// Reasoning items are dropped: chat completions have no place for them,
// and providers that reason do so again on each turn.
func messages(items []json.RawMessage, where string) ([]openai.Message, error) {
	var out []openai.Message
	for i, raw := range items {
		param := fmt.Sprintf("%s[%d]", where, i)
		var it item
		if err := json.Unmarshal(raw, &it); err != nil {
			return nil, invalid(param, "%s is not a valid input item: %v", param, err)
		}
		if it.Type == "" && it.Role != "" {
			it.Type = "message"
		}
		switch it.Type {
		case "message":
			m, err := message(it, param)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		case "function_call":
			if it.CallID == "" || it.Name == "" {
				return nil, invalid(param, "%s: a function_call item needs call_id and name", param)
			}
			args := it.Arguments
			if args == "" {
				args = "{}"
			}
			call := openai.ToolCall{ID: it.CallID, Type: "function", Function: openai.FunctionCall{Name: it.Name, Arguments: args}}
			if n := len(out); n > 0 && out[n-1].Role == openai.RoleAssistant {
				out[n-1].ToolCalls = append(out[n-1].ToolCalls, call)
				if out[n-1].Content.Text == "" && !out[n-1].Content.IsArray {
					out[n-1].Content = openai.Content{IsNull: true}
				}
			} else {
				out = append(out, openai.Message{Role: openai.RoleAssistant, Content: openai.Content{IsNull: true}, ToolCalls: []openai.ToolCall{call}})
			}
		case "function_call_output":
			if it.CallID == "" {
				return nil, invalid(param, "%s: a function_call_output item needs call_id", param)
			}
			c, err := toolOutput(it.Output, param)
			if err != nil {
				return nil, err
			}
			out = append(out, openai.Message{Role: openai.RoleTool, ToolCallID: it.CallID, Content: c})
		case "reasoning":
		case "item_reference":
			return nil, unsupported(param, "%s: item references are not supported; send the items themselves or use previous_response_id", param)
		case "":
			return nil, invalid(param, "%s needs a type (message, function_call or function_call_output)", param)
		default:
			e := invalid(param+".type", "%s: items of type %q are not supported by this gateway; only message, function_call, function_call_output and reasoning items are", param, it.Type)
			e.Code = "unsupported_tool"
			return nil, e
		}
	}
	return out, nil
}

// message translates a message item.
func message(it item, param string) (openai.Message, error) {
	var role string
	switch it.Role {
	case "user":
		role = openai.RoleUser
	case "assistant":
		role = openai.RoleAssistant
	case "system", "developer":
		// Providers take system messages; developer is OpenAI's new name
		// for the same thing.
		role = openai.RoleSystem
	default:
		return openai.Message{}, invalid(param+".role", "%s: role must be user, assistant, system or developer, not %q", param, it.Role)
	}
	c := bytes.TrimSpace(it.Content)
	if len(c) > 0 && c[0] == '"' {
		var s string
		json.Unmarshal(c, &s)
		return openai.Message{Role: role, Content: openai.TextContent(s)}, nil
	}
	var parts []part
	if len(c) == 0 || c[0] != '[' || json.Unmarshal(c, &parts) != nil {
		return openai.Message{}, invalid(param+".content", "%s: content must be a string or an array of content parts", param)
	}
	if role != openai.RoleUser {
		// System and assistant turns are text: join their parts.
		var text, refusal strings.Builder
		for j, p := range parts {
			switch p.Type {
			case "input_text", "output_text", "text":
				text.WriteString(p.Text)
			case "refusal":
				refusal.WriteString(p.Refusal)
			default:
				return openai.Message{}, invalid(fmt.Sprintf("%s.content[%d].type", param, j),
					"%s.content[%d]: a %s message takes text parts, not %q", param, j, it.Role, p.Type)
			}
		}
		if text.Len() == 0 && refusal.Len() > 0 {
			text.WriteString(refusal.String())
		}
		return openai.Message{Role: role, Content: openai.TextContent(text.String())}, nil
	}
	out := make([]openai.ContentPart, 0, len(parts))
	for j, p := range parts {
		cp, err := userPart(p, fmt.Sprintf("%s.content[%d]", param, j))
		if err != nil {
			return openai.Message{}, err
		}
		out = append(out, cp)
	}
	return openai.Message{Role: role, Content: openai.Content{Parts: out, IsArray: true}}, nil
}

// userPart translates one content part of a user message or of a
// function call's output.
func userPart(p part, param string) (openai.ContentPart, error) {
	switch p.Type {
	case "input_text", "text":
		return openai.ContentPart{Type: openai.PartText, Text: p.Text}, nil
	case "input_image":
		if p.ImageURL == "" {
			return openai.ContentPart{}, unsupported(param+".image_url",
				"%s: images are taken by image_url (https or data: URL); file_id needs the Files API, which this gateway does not serve", param)
		}
		return openai.ContentPart{Type: openai.PartImageURL, ImageURL: &openai.ImageURL{URL: p.ImageURL, Detail: p.Detail}}, nil
	case "input_file":
		switch {
		case p.FileData != "":
			return openai.ContentPart{Type: openai.PartFile, File: &openai.File{Filename: p.Filename, FileData: p.FileData}}, nil
		case p.FileURL != "":
			return openai.ContentPart{Type: openai.PartDocument, Source: &openai.DocumentSource{Type: "url", URL: p.FileURL, Name: p.Filename}}, nil
		}
		return openai.ContentPart{}, unsupported(param,
			"%s: files are taken by file_data (a data: URL) or file_url; file_id needs the Files API, which this gateway does not serve", param)
	}
	return openai.ContentPart{}, invalid(param+".type", "%s: content parts of type %q are not supported; use input_text, input_image or input_file", param, p.Type)
}

// toolOutput translates a function_call_output's output: a string, or an
// array of input_text / input_image / input_file parts.
func toolOutput(raw json.RawMessage, param string) (openai.Content, error) {
	o := bytes.TrimSpace(raw)
	if len(o) > 0 && o[0] == '"' {
		var s string
		json.Unmarshal(o, &s)
		return openai.TextContent(s), nil
	}
	var parts []part
	if len(o) == 0 || o[0] != '[' || json.Unmarshal(o, &parts) != nil {
		return openai.Content{}, invalid(param+".output", "%s: output must be a string or an array of content parts", param)
	}
	out := make([]openai.ContentPart, 0, len(parts))
	var text strings.Builder
	for j, p := range parts {
		cp, err := userPart(p, fmt.Sprintf("%s.output[%d]", param, j))
		if err != nil {
			return openai.Content{}, err
		}
		out = append(out, cp)
		text.WriteString(cp.Text)
	}
	for _, cp := range out {
		if cp.Type != openai.PartText {
			return openai.Content{Parts: out, IsArray: true}, nil
		}
	}
	// Text only: one string, which every provider takes as a tool result.
	return openai.TextContent(text.String()), nil
}
