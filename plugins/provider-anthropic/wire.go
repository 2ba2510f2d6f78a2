package main

import "encoding/json"

// This file holds the Anthropic Messages API wire types the plugin sends
// and receives. Only the fields the translation uses are declared.

// messagesRequest is the body of POST /v1/messages.
type messagesRequest struct {
	Model         string       `json:"model"`
	MaxTokens     int          `json:"max_tokens"`
	System        []block      `json:"system,omitempty"`
	Messages      []message    `json:"messages"`
	Temperature   *float64     `json:"temperature,omitempty"`
	TopP          *float64     `json:"top_p,omitempty"`
	StopSequences []string     `json:"stop_sequences,omitempty"`
	Stream        bool         `json:"stream,omitempty"`
	Tools         []tool       `json:"tools,omitempty"`
	ToolChoice    *toolChoice  `json:"tool_choice,omitempty"`
	Metadata      *requestMeta `json:"metadata,omitempty"`
}

// message is one entry of messages; Content is always an array of blocks.
type message struct {
	Role    string  `json:"role"`
	Content []block `json:"content"`
}

// block is a content block of any type, in a request or a response.
type block struct {
	Type string `json:"type"`
	// Text is set for text blocks.
	Text string `json:"text,omitempty"`
	// Source is set for image and document blocks.
	Source *source `json:"source,omitempty"`
	// Title is a document block's title.
	Title string `json:"title,omitempty"`
	// ID, Name and Input are set for tool_use blocks.
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`
	// ToolUseID and Content are set for tool_result blocks.
	ToolUseID string  `json:"tool_use_id,omitempty"`
	Content   []block `json:"content,omitempty"`
	IsError   bool    `json:"is_error,omitempty"`
}

// source is an image or document block's source.
type source struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

// tool is a client tool definition.
type tool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

// toolChoice is the tool_choice object.
type toolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

// requestMeta is the metadata object.
type requestMeta struct {
	UserID string `json:"user_id,omitempty"`
}

// messagesResponse is a non-streamed response of POST /v1/messages and the
// message object of a message_start event.
type messagesResponse struct {
	ID         string  `json:"id"`
	Type       string  `json:"type"`
	Role       string  `json:"role"`
	Model      string  `json:"model"`
	Content    []block `json:"content"`
	StopReason string  `json:"stop_reason"`
	Usage      usage   `json:"usage"`
}

// usage is Anthropic's token accounting. Pointers tell an absent count
// from zero in message_delta events, which carry only what changed.
type usage struct {
	InputTokens              *int `json:"input_tokens"`
	OutputTokens             *int `json:"output_tokens"`
	CacheCreationInputTokens *int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     *int `json:"cache_read_input_tokens"`
}

// merge overwrites the counts u carries with those of v that are present.
func (u *usage) merge(v usage) {
	if v.InputTokens != nil {
		u.InputTokens = v.InputTokens
	}
	if v.OutputTokens != nil {
		u.OutputTokens = v.OutputTokens
	}
	if v.CacheCreationInputTokens != nil {
		u.CacheCreationInputTokens = v.CacheCreationInputTokens
	}
	if v.CacheReadInputTokens != nil {
		u.CacheReadInputTokens = v.CacheReadInputTokens
	}
}

// errorBody is Anthropic's error response and the data of an error event.
type errorBody struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
	RequestID string `json:"request_id,omitempty"`
}

// modelList is the response of GET /v1/models.
type modelList struct {
	Data []struct {
		ID          string `json:"id"`
		DisplayName string `json:"display_name"`
		CreatedAt   string `json:"created_at"`
	} `json:"data"`
	HasMore bool   `json:"has_more"`
	LastID  string `json:"last_id"`
}

// Block, source and event type names.
const (
	blockText       = "text"
	blockImage      = "image"
	blockDocument   = "document"
	blockToolUse    = "tool_use"
	blockToolResult = "tool_result"

	sourceBase64 = "base64"
	sourceURL    = "url"
	sourceText   = "text"

	roleUser      = "user"
	roleAssistant = "assistant"
)
