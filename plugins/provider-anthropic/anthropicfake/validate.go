package anthropicfake

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// request is the part of a Messages API request the fake checks.
type request struct {
	Model         *string           `json:"model"`
	MaxTokens     *int              `json:"max_tokens"`
	Messages      []json.RawMessage `json:"messages"`
	System        json.RawMessage   `json:"system"`
	Temperature   *float64          `json:"temperature"`
	TopP          *float64          `json:"top_p"`
	StopSequences []string          `json:"stop_sequences"`
	Stream        bool              `json:"stream"`
	Tools         []struct {
		Name        string          `json:"name"`
		InputSchema json.RawMessage `json:"input_schema"`
	} `json:"tools"`
	ToolChoice *struct {
		Type string `json:"type"`
		Name string `json:"name"`
	} `json:"tool_choice"`
	Metadata *struct {
		UserID string `json:"user_id"`
	} `json:"metadata"`
	model string
}

// knownFields are the top-level fields the API accepts; any other field
// is rejected, as the API does.
var knownFields = map[string]bool{
	"model": true, "max_tokens": true, "messages": true, "system": true, "temperature": true, "top_p": true,
	"top_k": true, "stop_sequences": true, "stream": true, "tools": true, "tool_choice": true, "metadata": true,
	"thinking": true, "service_tier": true, "container": true, "mcp_servers": true, "context_management": true,
}

var toolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)

var imageTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

// msg is one decoded message.
type msg struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	blocks  []blk
}

// blk is one decoded content block.
type blk struct {
	Type   string  `json:"type"`
	Text   *string `json:"text"`
	Source *struct {
		Type      string          `json:"type"`
		MediaType string          `json:"media_type"`
		Data      *string         `json:"data"`
		URL       string          `json:"url"`
		Content   json.RawMessage `json:"content"`
	} `json:"source"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
	Thinking  *string         `json:"thinking"`
	Signature string          `json:"signature"`
}

// validate checks a request body the way the Messages API does and
// returns the error message the API would give.
func validate(body []byte) (*request, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, fmt.Errorf("There was an issue with the format of your request: invalid JSON: %v", err)
	}
	var extra []string
	for k := range fields {
		if !knownFields[k] {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return nil, fmt.Errorf("%s: Extra inputs are not permitted", extra[0])
	}
	var r request
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("There was an issue with the format of your request: %v", err)
	}
	switch {
	case r.Model == nil || *r.Model == "":
		return nil, fmt.Errorf("model: Field required")
	case r.MaxTokens == nil:
		return nil, fmt.Errorf("max_tokens: Field required")
	case *r.MaxTokens < 1:
		return nil, fmt.Errorf("max_tokens: Input should be greater than or equal to 1")
	case r.Messages == nil:
		return nil, fmt.Errorf("messages: Field required")
	case len(r.Messages) == 0:
		return nil, fmt.Errorf("messages: at least one message is required")
	case r.Temperature != nil && (*r.Temperature < 0 || *r.Temperature > 1):
		return nil, fmt.Errorf("temperature: Input should be less than or equal to 1")
	}
	r.model = *r.Model
	if err := validateSystem(r.System); err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for i, t := range r.Tools {
		if !toolName.MatchString(t.Name) {
			return nil, fmt.Errorf("tools.%d.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'", i)
		}
		if names[t.Name] {
			return nil, fmt.Errorf("tools: Tool names must be unique.")
		}
		names[t.Name] = true
		var schema struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(t.InputSchema, &schema) != nil || schema.Type != "object" {
			return nil, fmt.Errorf("tools.%d.input_schema.type: Input should be 'object'", i)
		}
	}
	if tc := r.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto", "any", "none":
		case "tool":
			if !names[tc.Name] {
				return nil, fmt.Errorf("tool_choice: tool %q not found in tools", tc.Name)
			}
		default:
			return nil, fmt.Errorf("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
		}
		if tc.Type != "none" && len(r.Tools) == 0 {
			return nil, fmt.Errorf("tool_choice: tool_choice may only be specified while providing tools.")
		}
	}
	msgs := make([]msg, len(r.Messages))
	for i, raw := range r.Messages {
		if err := decodeMessage(i, raw, &msgs[i]); err != nil {
			return nil, err
		}
	}
	if err := validateConversation(msgs); err != nil {
		return nil, err
	}
	return &r, nil
}

func validateSystem(raw json.RawMessage) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" || raw[0] == '"' {
		return nil
	}
	var blocks []blk
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return fmt.Errorf("system: Input should be a valid string or list of text blocks")
	}
	for i, b := range blocks {
		if b.Type != "text" || b.Text == nil || *b.Text == "" {
			return fmt.Errorf("system.%d: system blocks must be non-empty text blocks", i)
		}
	}
	return nil
}

func decodeMessage(i int, raw json.RawMessage, m *msg) error {
	if err := json.Unmarshal(raw, m); err != nil {
		return fmt.Errorf("messages.%d: Input should be a valid dictionary", i)
	}
	if m.Role != "user" && m.Role != "assistant" {
		return fmt.Errorf("messages.%d.role: Input should be 'user' or 'assistant'", i)
	}
	c := bytes.TrimSpace(m.Content)
	switch {
	case len(c) == 0 || string(c) == "null":
		return fmt.Errorf("messages.%d.content: Field required", i)
	case c[0] == '"':
		var s string
		_ = json.Unmarshal(c, &s)
		if s == "" && m.Role == "user" {
			return fmt.Errorf("messages.%d: user messages must have non-empty content", i)
		}
		m.blocks = []blk{{Type: "text", Text: &s}}
		return nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(c, &raws); err != nil {
		return fmt.Errorf("messages.%d.content: Input should be a valid string or list", i)
	}
	if len(raws) == 0 && m.Role == "user" {
		return fmt.Errorf("messages.%d: user messages must have non-empty content", i)
	}
	for j, rb := range raws {
		var b blk
		if err := json.Unmarshal(rb, &b); err != nil {
			return fmt.Errorf("messages.%d.content.%d: Input should be a valid dictionary", i, j)
		}
		if err := validateBlock(m.Role, b, fmt.Sprintf("messages.%d.content.%d", i, j)); err != nil {
			return err
		}
		m.blocks = append(m.blocks, b)
	}
	return nil
}

func validateBlock(role string, b blk, at string) error {
	switch b.Type {
	case "text":
		if b.Text == nil || *b.Text == "" {
			return fmt.Errorf("messages: text content blocks must be non-empty")
		}
	case "image":
		if role != "user" {
			return fmt.Errorf("%s: image blocks are only allowed in user messages", at)
		}
		if b.Source == nil {
			return fmt.Errorf("%s.source: Field required", at)
		}
		switch b.Source.Type {
		case "base64":
			if !imageTypes[b.Source.MediaType] {
				return fmt.Errorf("%s.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'", at)
			}
			if b.Source.Data == nil || !validBase64(*b.Source.Data) {
				return fmt.Errorf("%s.source.base64.data: invalid base64 data", at)
			}
		case "url":
			if !strings.HasPrefix(b.Source.URL, "https://") && !strings.HasPrefix(b.Source.URL, "http://") {
				return fmt.Errorf("%s.source.url.url: Input should be a valid URL", at)
			}
		default:
			return fmt.Errorf("%s.source: Input tag '%s' does not match any of the expected tags: 'base64', 'url'", at, b.Source.Type)
		}
	case "document":
		if role != "user" {
			return fmt.Errorf("%s: document blocks are only allowed in user messages", at)
		}
		if b.Source == nil {
			return fmt.Errorf("%s.source: Field required", at)
		}
		switch b.Source.Type {
		case "base64":
			if b.Source.MediaType != "application/pdf" {
				return fmt.Errorf("%s.source.base64.media_type: Input should be 'application/pdf'", at)
			}
			if b.Source.Data == nil || !validBase64(*b.Source.Data) {
				return fmt.Errorf("%s.source.base64.data: invalid base64 data", at)
			}
		case "text":
			if b.Source.MediaType != "text/plain" {
				return fmt.Errorf("%s.source.text.media_type: Input should be 'text/plain'", at)
			}
			if b.Source.Data == nil {
				return fmt.Errorf("%s.source.text.data: Field required", at)
			}
		case "url":
			if !strings.HasPrefix(b.Source.URL, "https://") && !strings.HasPrefix(b.Source.URL, "http://") {
				return fmt.Errorf("%s.source.url.url: Input should be a valid URL", at)
			}
		case "content":
			if len(b.Source.Content) == 0 {
				return fmt.Errorf("%s.source.content.content: Field required", at)
			}
		default:
			return fmt.Errorf("%s.source: Input tag '%s' does not match any of the expected tags: 'base64', 'text', 'content', 'url'", at, b.Source.Type)
		}
	case "tool_use":
		if role != "assistant" {
			return fmt.Errorf("%s: tool_use blocks are only allowed in assistant messages", at)
		}
		var obj map[string]json.RawMessage
		if b.ID == "" || b.Name == "" || json.Unmarshal(b.Input, &obj) != nil || obj == nil {
			return fmt.Errorf("%s: tool_use blocks need an id, a name and an input object", at)
		}
	case "thinking":
		if role != "assistant" {
			return fmt.Errorf("%s: thinking blocks are only allowed in assistant messages", at)
		}
		if b.Thinking == nil || b.Signature != Signature(*b.Thinking) {
			return fmt.Errorf("%s.signature: Invalid signature in thinking block", at)
		}
	case "tool_result":
		if role != "user" {
			return fmt.Errorf("%s: tool_result blocks are only allowed in user messages", at)
		}
		if b.ToolUseID == "" {
			return fmt.Errorf("%s.tool_use_id: Field required", at)
		}
	default:
		return fmt.Errorf("%s.type: Input tag '%s' does not match any of the expected tags", at, b.Type)
	}
	return nil
}

func validBase64(s string) bool {
	_, err := base64.StdEncoding.DecodeString(s)
	return s != "" && err == nil
}

// validateConversation checks the rules that span messages: the first
// message is from the user, roles alternate, and tool_use and tool_result
// blocks pair up across adjacent messages.
func validateConversation(msgs []msg) error {
	if msgs[0].Role != "user" {
		return fmt.Errorf("messages: first message must use the \"user\" role")
	}
	for i := 1; i < len(msgs); i++ {
		if msgs[i].Role == msgs[i-1].Role {
			return fmt.Errorf("messages: roles must alternate between \"user\" and \"assistant\", but found multiple %q roles in a row", msgs[i].Role)
		}
	}
	for i, m := range msgs {
		if m.Role != "user" {
			continue
		}
		prior := map[string]bool{}
		if i > 0 {
			for _, b := range msgs[i-1].blocks {
				if b.Type == "tool_use" {
					prior[b.ID] = true
				}
			}
		}
		answered := map[string]bool{}
		for j, b := range m.blocks {
			if b.Type != "tool_result" {
				continue
			}
			if !prior[b.ToolUseID] {
				return fmt.Errorf("messages.%d.content.%d: unexpected `tool_use_id` found in `tool_result` blocks: %s. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.", i, j, b.ToolUseID)
			}
			answered[b.ToolUseID] = true
		}
		var missing []string
		for id := range prior {
			if !answered[id] {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			return fmt.Errorf("messages.%d: `tool_use` ids were found without `tool_result` blocks immediately after: %s. Each `tool_use` block must have a corresponding `tool_result` block in the next message.", i-1, strings.Join(missing, ", "))
		}
	}
	return nil
}
