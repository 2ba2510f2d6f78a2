package openai

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ChatRequest is the body of POST /v1/chat/completions.
type ChatRequest struct {
	Model               string          `json:"model"`
	Messages            []Message       `json:"messages"`
	MaxTokens           *int            `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int            `json:"max_completion_tokens,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"top_p,omitempty"`
	N                   *int            `json:"n,omitempty"`
	Stop                Stop            `json:"stop,omitempty"`
	Stream              bool            `json:"stream,omitempty"`
	StreamOptions       *StreamOptions  `json:"stream_options,omitempty"`
	Tools               []Tool          `json:"tools,omitempty"`
	ToolChoice          *ToolChoice     `json:"tool_choice,omitempty"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls,omitempty"`
	ResponseFormat      *ResponseFormat `json:"response_format,omitempty"`
	Seed                *int64          `json:"seed,omitempty"`
	User                string          `json:"user,omitempty"`
	PresencePenalty     *float64        `json:"presence_penalty,omitempty"`
	FrequencyPenalty    *float64        `json:"frequency_penalty,omitempty"`
	LogitBias           json.RawMessage `json:"logit_bias,omitempty"`
	Logprobs            *bool           `json:"logprobs,omitempty"`
	TopLogprobs         *int            `json:"top_logprobs,omitempty"`
	ReasoningEffort     string          `json:"reasoning_effort,omitempty"`
	Metadata            json.RawMessage `json:"metadata,omitempty"`
	Store               *bool           `json:"store,omitempty"`
	ServiceTier         string          `json:"service_tier,omitempty"`
}

// MaxOutputTokens returns max_completion_tokens, else max_tokens, else 0.
func (r *ChatRequest) MaxOutputTokens() int {
	switch {
	case r.MaxCompletionTokens != nil:
		return *r.MaxCompletionTokens
	case r.MaxTokens != nil:
		return *r.MaxTokens
	}
	return 0
}

// IncludeUsage reports whether a streamed response must end with a usage
// chunk (stream_options.include_usage).
func (r *ChatRequest) IncludeUsage() bool {
	return r.StreamOptions != nil && r.StreamOptions.IncludeUsage
}

// Validate checks the fields every provider needs and returns an
// invalid_request_error naming the first problem.
func (r *ChatRequest) Validate() error {
	if r.Model == "" {
		return InvalidRequest("model", "you must provide a model parameter")
	}
	if len(r.Messages) == 0 {
		return InvalidRequest("messages", "messages must be a non-empty array")
	}
	for i, m := range r.Messages {
		switch m.Role {
		case RoleSystem, RoleDeveloper, RoleUser, RoleAssistant, RoleTool, RoleFunction:
		case "":
			return InvalidRequest(fmt.Sprintf("messages[%d].role", i), "each message needs a role")
		default:
			return InvalidRequest(fmt.Sprintf("messages[%d].role", i), fmt.Sprintf("unknown role %q", m.Role))
		}
		if m.Role == RoleTool && m.ToolCallID == "" {
			return InvalidRequest(fmt.Sprintf("messages[%d].tool_call_id", i), "tool messages need a tool_call_id")
		}
	}
	return nil
}

// StreamOptions is the stream_options object.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// Message roles.
const (
	RoleSystem    = "system"
	RoleDeveloper = "developer"
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleTool      = "tool"
	RoleFunction  = "function"
)

// Message is one entry of messages.
type Message struct {
	Role       string     `json:"role"`
	Content    Content    `json:"content"`
	Name       string     `json:"name,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
	Refusal    *string    `json:"refusal,omitempty"`
}

// Content is a message's content: a plain string, an array of parts, or
// null. Text is set for a string; Parts for an array.
type Content struct {
	Text   string
	Parts  []ContentPart
	IsNull bool
	// IsArray records that the content came as an array, even an empty one.
	IsArray bool
}

// TextContent returns Content holding a plain string.
func TextContent(s string) Content { return Content{Text: s} }

// String concatenates the text of a string content or of its text parts.
func (c Content) String() string {
	if !c.IsArray {
		return c.Text
	}
	var s string
	for _, p := range c.Parts {
		if p.Type == PartText || p.Type == PartRefusal {
			s += p.Text
		}
	}
	return s
}

// MarshalJSON encodes a string, an array of parts or null.
func (c Content) MarshalJSON() ([]byte, error) {
	switch {
	case c.IsArray || len(c.Parts) > 0:
		if c.Parts == nil {
			return []byte("[]"), nil
		}
		return json.Marshal(c.Parts)
	case c.IsNull:
		return []byte("null"), nil
	}
	return json.Marshal(c.Text)
}

// UnmarshalJSON accepts a string, an array of parts or null.
func (c *Content) UnmarshalJSON(b []byte) error {
	*c = Content{}
	if len(b) == 0 || string(b) == "null" {
		c.IsNull = true
		return nil
	}
	switch b[0] {
	case '"':
		return json.Unmarshal(b, &c.Text)
	case '[':
		c.IsArray = true
		return json.Unmarshal(b, &c.Parts)
	}
	return errors.New("content must be a string, an array of content parts or null")
}

// Content part types.
const (
	PartText       = "text"
	PartImageURL   = "image_url"
	PartInputAudio = "input_audio"
	PartFile       = "file"
	PartRefusal    = "refusal"
	// PartDocument is llmproxy's document part. Clients send it with a
	// Source; the host resolves the source and forwards it to plugins with
	// Document set, the content travelling beside the body.
	PartDocument = "document"
)

// ContentPart is one element of an array content.
type ContentPart struct {
	Type       string          `json:"type"`
	Text       string          `json:"text,omitempty"`
	Refusal    string          `json:"refusal,omitempty"`
	ImageURL   *ImageURL       `json:"image_url,omitempty"`
	InputAudio json.RawMessage `json:"input_audio,omitempty"`
	File       *File           `json:"file,omitempty"`
	Source     *DocumentSource `json:"source,omitempty"`
	Document   *DocumentRef    `json:"document,omitempty"`
}

// ImageURL is an image part's target: an https URL or a data: URL.
type ImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

// File is an OpenAI file part.
type File struct {
	Filename string `json:"filename,omitempty"`
	FileData string `json:"file_data,omitempty"`
	FileID   string `json:"file_id,omitempty"`
}

// DocumentSource says where a document part's content is: a URL
// (Type "url"), or an object of a configured storage instance
// (Type "storage").
type DocumentSource struct {
	Type    string `json:"type"`
	URL     string `json:"url,omitempty"`
	Storage string `json:"storage,omitempty"`
	Bucket  string `json:"bucket,omitempty"`
	Key     string `json:"key,omitempty"`
	Name    string `json:"name,omitempty"`
}

// DocumentRef names a resolved document that travels beside the request.
type DocumentRef struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// Tool is one entry of tools.
type Tool struct {
	Type     string       `json:"type"`
	Function FunctionDecl `json:"function"`
}

// FunctionDecl declares a callable function.
type FunctionDecl struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// ToolChoice is "none", "auto", "required" or a named function.
type ToolChoice struct {
	// Mode is none, auto or required; empty when Function is set.
	Mode     string
	Function string
}

// MarshalJSON encodes the string or object form.
func (t ToolChoice) MarshalJSON() ([]byte, error) {
	if t.Function != "" {
		return json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": t.Function}})
	}
	return json.Marshal(t.Mode)
}

// UnmarshalJSON decodes the string or object form.
func (t *ToolChoice) UnmarshalJSON(b []byte) error {
	*t = ToolChoice{}
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &t.Mode)
	}
	var obj struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return err
	}
	if obj.Function.Name == "" {
		return errors.New("tool_choice object needs function.name")
	}
	t.Function = obj.Function.Name
	return nil
}

// ResponseFormat is response_format.
type ResponseFormat struct {
	Type       string      `json:"type"`
	JSONSchema *JSONSchema `json:"json_schema,omitempty"`
}

// JSONSchema is response_format.json_schema.
type JSONSchema struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// Stop is stop: a string or up to four strings.
type Stop []string

// UnmarshalJSON accepts a string or an array of strings.
func (s *Stop) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = Stop{one}
		return nil
	}
	if string(b) == "null" {
		*s = nil
		return nil
	}
	return json.Unmarshal(b, (*[]string)(s))
}

// ToolCall is an assistant's call of a tool.
type ToolCall struct {
	// Index is set only in stream deltas.
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function FunctionCall `json:"function"`
}

// FunctionCall is the function a ToolCall names; Arguments is a JSON text.
type FunctionCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// Finish reasons.
const (
	FinishStop          = "stop"
	FinishLength        = "length"
	FinishToolCalls     = "tool_calls"
	FinishContentFilter = "content_filter"
)

// ChatCompletion is a non-streamed chat response.
type ChatCompletion struct {
	ID                string   `json:"id"`
	Object            string   `json:"object"`
	Created           int64    `json:"created"`
	Model             string   `json:"model"`
	Choices           []Choice `json:"choices"`
	Usage             *Usage   `json:"usage,omitempty"`
	SystemFingerprint string   `json:"system_fingerprint,omitempty"`
	ServiceTier       string   `json:"service_tier,omitempty"`
}

// Choice is one choice of a ChatCompletion.
type Choice struct {
	Index        int             `json:"index"`
	Message      ResponseMessage `json:"message"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason string          `json:"finish_reason"`
}

// ResponseMessage is the assistant message of a Choice. Content is null
// (nil) when the model only called tools.
type ResponseMessage struct {
	Role      string     `json:"role"`
	Content   *string    `json:"content"`
	Refusal   *string    `json:"refusal"`
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
}

// Usage is the token accounting of a response, normalised across
// providers (see Tokens.Usage for the rule). CostUSD is set by the
// gateway on the final usage chunk of a stream: the request's cost in US
// dollars, an llmproxy extension.
type Usage struct {
	PromptTokens            int                      `json:"prompt_tokens"`
	CompletionTokens        int                      `json:"completion_tokens"`
	TotalTokens             int                      `json:"total_tokens"`
	PromptTokensDetails     *PromptTokensDetails     `json:"prompt_tokens_details,omitempty"`
	CompletionTokensDetails *CompletionTokensDetails `json:"completion_tokens_details,omitempty"`
	CostUSD                 *float64                 `json:"cost_usd,omitempty"`
}

// PromptTokensDetails breaks down prompt tokens.
type PromptTokensDetails struct {
	// CachedTokens counts prompt tokens read from the provider's prompt
	// cache.
	CachedTokens int `json:"cached_tokens"`
	AudioTokens  int `json:"audio_tokens,omitempty"`
	// CacheWriteTokens counts prompt tokens written to the provider's
	// prompt cache (Anthropic, Bedrock): an llmproxy extension field,
	// OpenAI has none.
	CacheWriteTokens int `json:"cache_write_tokens"`
	// Deprecated: CacheCreationTokens is the name SDK v1.0 gave cache
	// writes; set CacheWriteTokens (Tokens.Usage does). The host still
	// reads it from plugins built against that SDK.
	CacheCreationTokens int `json:"cache_creation_tokens,omitempty"`
}

// CompletionTokensDetails breaks down completion tokens.
type CompletionTokensDetails struct {
	// ReasoningTokens counts the completion tokens the model spent
	// thinking; they are part of CompletionTokens.
	ReasoningTokens int `json:"reasoning_tokens"`
	AudioTokens     int `json:"audio_tokens,omitempty"`
}

// ChatChunk is one chat.completion.chunk of a stream.
type ChatChunk struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"`
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	Choices           []ChunkChoice `json:"choices"`
	Usage             *Usage        `json:"usage,omitempty"`
	SystemFingerprint string        `json:"system_fingerprint,omitempty"`
}

// ChunkChoice is one choice of a ChatChunk.
type ChunkChoice struct {
	Index        int             `json:"index"`
	Delta        Delta           `json:"delta"`
	Logprobs     json.RawMessage `json:"logprobs,omitempty"`
	FinishReason *string         `json:"finish_reason"`
}

// Delta is the increment a ChunkChoice carries.
type Delta struct {
	Role      string     `json:"role,omitempty"`
	Content   *string    `json:"content,omitempty"`
	Refusal   *string    `json:"refusal,omitempty"`
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
}

// Object names.
const (
	ObjectChatCompletion = "chat.completion"
	ObjectChatChunk      = "chat.completion.chunk"
	ObjectList           = "list"
	ObjectModel          = "model"
	ObjectEmbedding      = "embedding"
)
