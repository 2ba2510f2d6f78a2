package messages

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// Info is what Request learns about a request besides its chat body.
type Info struct {
	// Model is the model the request names.
	Model string
	// Stream is set for a streamed request.
	Stream bool
	// MaxTokens is the request's max_tokens.
	MaxTokens int64
	// Ignored lists the request fields the translation dropped because
	// chat completions has no equivalent (top_k, cache_control, the
	// signatures of thinking blocks).
	Ignored []string
}

// request is a Messages API request as far as the translation reads it.
type request struct {
	Model         *string         `json:"model"`
	MaxTokens     *int64          `json:"max_tokens"`
	System        json.RawMessage `json:"system"`
	Messages      []message       `json:"messages"`
	Temperature   *float64        `json:"temperature"`
	TopP          *float64        `json:"top_p"`
	TopK          *int64          `json:"top_k"`
	StopSequences []string        `json:"stop_sequences"`
	Stream        *bool           `json:"stream"`
	Tools         []tool          `json:"tools"`
	ToolChoice    *toolChoice     `json:"tool_choice"`
	Metadata      *struct {
		UserID *string `json:"user_id"`
	} `json:"metadata"`
	Thinking *struct {
		Type         string `json:"type"`
		BudgetTokens int64  `json:"budget_tokens"`
	} `json:"thinking"`
}

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// block is one content block of any type.
type block struct {
	Type         string          `json:"type"`
	Text         string          `json:"text"`
	Source       *source         `json:"source"`
	Title        string          `json:"title"`
	Context      string          `json:"context"`
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Input        json.RawMessage `json:"input"`
	ToolUseID    string          `json:"tool_use_id"`
	Content      json.RawMessage `json:"content"`
	IsError      bool            `json:"is_error"`
	Thinking     string          `json:"thinking"`
	Signature    string          `json:"signature"`
	Data         string          `json:"data"`
	CacheControl json.RawMessage `json:"cache_control"`
}

type source struct {
	Type      string          `json:"type"`
	MediaType string          `json:"media_type"`
	Data      string          `json:"data"`
	URL       string          `json:"url"`
	Content   json.RawMessage `json:"content"`
}

type tool struct {
	Type         string          `json:"type"`
	Name         string          `json:"name"`
	Description  string          `json:"description"`
	InputSchema  json.RawMessage `json:"input_schema"`
	CacheControl json.RawMessage `json:"cache_control"`
}

type toolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use"`
}

// The chat completions request Request writes.
type chatRequest struct {
	Model             string         `json:"model"`
	Messages          []chatMessage  `json:"messages"`
	MaxTokens         int64          `json:"max_tokens"`
	Temperature       *float64       `json:"temperature,omitempty"`
	TopP              *float64       `json:"top_p,omitempty"`
	Stop              []string       `json:"stop,omitempty"`
	Stream            bool           `json:"stream,omitempty"`
	StreamOptions     *streamOptions `json:"stream_options,omitempty"`
	Tools             []chatTool     `json:"tools,omitempty"`
	ToolChoice        any            `json:"tool_choice,omitempty"`
	ParallelToolCalls *bool          `json:"parallel_tool_calls,omitempty"`
	User              string         `json:"user,omitempty"`
	ReasoningEffort   string         `json:"reasoning_effort,omitempty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatMessage struct {
	Role       string         `json:"role"`
	Content    any            `json:"content"`
	ToolCalls  []chatToolCall `json:"tool_calls,omitempty"`
	ToolCallID string         `json:"tool_call_id,omitempty"`
}

type chatPart struct {
	Type     string         `json:"type"`
	Text     string         `json:"text,omitempty"`
	ImageURL *chatImage     `json:"image_url,omitempty"`
	File     *chatFile      `json:"file,omitempty"`
	Source   *chatDocSource `json:"source,omitempty"`
}

type chatImage struct {
	URL string `json:"url"`
}

type chatFile struct {
	Filename string `json:"filename,omitempty"`
	FileData string `json:"file_data"`
}

type chatDocSource struct {
	Type string `json:"type"`
	URL  string `json:"url"`
	Name string `json:"name,omitempty"`
}

type chatToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function chatFunction `json:"function"`
}

type chatFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type chatTool struct {
	Type     string       `json:"type"`
	Function chatFuncDecl `json:"function"`
}

type chatFuncDecl struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters"`
}

type chatNamedChoice struct {
	Type     string `json:"type"`
	Function struct {
		Name string `json:"name"`
	} `json:"function"`
}

// imageTypes are the media types Anthropic takes for images.
var imageTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

// toolName is the shape Anthropic requires of tool names.
var toolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)

// Request translates a Messages API request body into a chat completions
// body. Errors are *openai.Error values with status 400 naming the field
// (param) in Anthropic's terms, e.g. "messages.1.content.0.source".
func Request(body []byte) ([]byte, Info, error) {
	var info Info
	var req request
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return nil, info, invalid("", "the request body is not a valid Messages request: %v", err)
	}
	if dec.More() {
		return nil, info, invalid("", "the request body holds more than one JSON value")
	}
	if req.Model == nil || *req.Model == "" {
		return nil, info, invalid("model", "model: field required (a non-empty string)")
	}
	if req.MaxTokens == nil {
		return nil, info, invalid("max_tokens", "max_tokens: field required")
	}
	if *req.MaxTokens < 1 {
		return nil, info, invalid("max_tokens", "max_tokens: must be at least 1")
	}
	if len(req.Messages) == 0 {
		return nil, info, invalid("messages", "messages: at least one message is required")
	}
	if err := ignoredFields(body, &info); err != nil {
		return nil, info, err
	}
	out := chatRequest{Model: *req.Model, MaxTokens: *req.MaxTokens}
	info.Model, info.MaxTokens = out.Model, out.MaxTokens
	if req.Stream != nil && *req.Stream {
		out.Stream, info.Stream = true, true
		out.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	if t := req.Temperature; t != nil {
		if *t < 0 || *t > 1 {
			return nil, info, invalid("temperature", "temperature: must be between 0 and 1")
		}
		out.Temperature = t
	}
	if p := req.TopP; p != nil {
		if *p < 0 || *p > 1 {
			return nil, info, invalid("top_p", "top_p: must be between 0 and 1")
		}
		out.TopP = p
	}
	if req.TopK != nil {
		if *req.TopK < 0 {
			return nil, info, invalid("top_k", "top_k: must not be negative")
		}
		info.Ignored = append(info.Ignored, "top_k")
	}
	for i, s := range req.StopSequences {
		if s == "" {
			return nil, info, invalid(fmt.Sprintf("stop_sequences.%d", i), "stop_sequences: each sequence must be non-empty")
		}
	}
	out.Stop = req.StopSequences
	if req.Metadata != nil && req.Metadata.UserID != nil {
		out.User = *req.Metadata.UserID
	}
	if th := req.Thinking; th != nil {
		switch th.Type {
		case "enabled":
			if th.BudgetTokens < 1024 {
				return nil, info, invalid("thinking.budget_tokens", "thinking.budget_tokens: must be at least 1024")
			}
			if th.BudgetTokens >= *req.MaxTokens {
				return nil, info, invalid("thinking.budget_tokens", "thinking.budget_tokens: must be less than max_tokens")
			}
			out.ReasoningEffort = effort(th.BudgetTokens)
		case "disabled":
		default:
			return nil, info, invalid("thinking.type", "thinking.type: must be \"enabled\" or \"disabled\"")
		}
	}
	t := &translator{info: &info}
	sys, err := t.system(req.System)
	if err != nil {
		return nil, info, err
	}
	if sys != "" {
		out.Messages = append(out.Messages, chatMessage{Role: "system", Content: sys})
	}
	for i, m := range req.Messages {
		msgs, err := t.message(i, m)
		if err != nil {
			return nil, info, err
		}
		out.Messages = append(out.Messages, msgs...)
	}
	if err := t.tools(&out, req.Tools, req.ToolChoice); err != nil {
		return nil, info, err
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, info, fmt.Errorf("messages: encode the chat request: %w", err)
	}
	return b, info, nil
}

// unmapped are top-level Messages API fields that chat completions has no
// equivalent for; the translation drops them and says so in Info.Ignored.
var unmapped = []string{"service_tier", "container", "mcp_servers", "context_management"}

// ignoredFields notes the unmapped fields body sets.
func ignoredFields(body []byte, info *Info) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return invalid("", "the request body is not a valid Messages request: %v", err)
	}
	for _, f := range unmapped {
		if v, ok := top[f]; ok && string(v) != "null" {
			info.Ignored = append(info.Ignored, f)
		}
	}
	return nil
}

// effort maps a thinking budget onto chat's reasoning_effort: under 4096
// tokens "low", under 16384 "medium", else "high".
func effort(budget int64) string {
	switch {
	case budget < 4096:
		return "low"
	case budget < 16384:
		return "medium"
	}
	return "high"
}

func invalid(param, format string, args ...any) error {
	return openai.InvalidRequest(param, fmt.Sprintf(format, args...))
}

// translator carries what one Request learns on the way.
type translator struct {
	info *Info
}

// ignore notes a field the translation dropped, once.
func (t *translator) ignore(field string) {
	for _, f := range t.info.Ignored {
		if f == field {
			return
		}
	}
	t.info.Ignored = append(t.info.Ignored, field)
}

// blocks reads content that is a string or an array of blocks; a string
// comes back as one text block.
func blocks(raw json.RawMessage, param string) ([]block, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == 'n' {
		return nil, invalid(param, "%s: field required", param)
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, invalid(param, "%s: %v", param, err)
		}
		return []block{{Type: "text", Text: s}}, nil
	}
	var bs []block
	if err := json.Unmarshal(raw, &bs); err != nil {
		return nil, invalid(param, "%s: must be a string or an array of content blocks", param)
	}
	return bs, nil
}

// system reads the top-level system prompt: a string or text blocks,
// joined by blank lines.
func (t *translator) system(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	bs, err := blocks(raw, "system")
	if err != nil {
		return "", err
	}
	var texts []string
	for i, b := range bs {
		if b.Type != "text" {
			return "", invalid(fmt.Sprintf("system.%d.type", i), "system.%d: only text blocks are allowed in system, not %q", i, b.Type)
		}
		if len(b.CacheControl) > 0 {
			t.ignore("cache_control")
		}
		texts = append(texts, b.Text)
	}
	return strings.Join(texts, "\n\n"), nil
}

// message translates one Messages API message into one or more chat
// messages: a user message's tool results become tool messages first,
// the rest of it a user message after them.
func (t *translator) message(i int, m message) ([]chatMessage, error) {
	param := fmt.Sprintf("messages.%d", i)
	bs, err := blocks(m.Content, param+".content")
	if err != nil {
		return nil, err
	}
	switch m.Role {
	case "user":
		return t.user(param, bs)
	case "assistant":
		msg, err := t.assistant(param, bs)
		if err != nil {
			return nil, err
		}
		return []chatMessage{msg}, nil
	}
	return nil, invalid(param+".role", "%s.role: must be \"user\" or \"assistant\", not %q", param, m.Role)
}

func (t *translator) user(param string, bs []block) ([]chatMessage, error) {
	var (
		out   []chatMessage
		parts []chatPart
	)
	for j, b := range bs {
		bp := fmt.Sprintf("%s.content.%d", param, j)
		if len(b.CacheControl) > 0 {
			t.ignore("cache_control")
		}
		if b.Type == "tool_result" {
			msg, extra, err := t.toolResult(bp, b)
			if err != nil {
				return nil, err
			}
			out = append(out, msg)
			parts = append(parts, extra...)
			continue
		}
		p, err := t.part(bp, b)
		if err != nil {
			return nil, err
		}
		parts = append(parts, p...)
	}
	if len(parts) > 0 {
		out = append(out, chatMessage{Role: "user", Content: simplify(parts)})
	}
	if len(out) == 0 {
		return nil, invalid(param+".content", "%s.content: a user message needs at least one content block", param)
	}
	return out, nil
}

// simplify writes parts that are all text as one string, which every
// provider takes, and keeps parts otherwise.
func simplify(parts []chatPart) any {
	if len(parts) == 1 && parts[0].Type == "text" {
		return parts[0].Text
	}
	return parts
}

// part translates a user content block other than a tool result.
func (t *translator) part(bp string, b block) ([]chatPart, error) {
	switch b.Type {
	case "text":
		return []chatPart{{Type: "text", Text: b.Text}}, nil
	case "image":
		img, err := image(bp, b.Source)
		if err != nil {
			return nil, err
		}
		return []chatPart{{Type: "image_url", ImageURL: img}}, nil
	case "document":
		return t.document(bp, b)
	case "tool_use", "thinking", "redacted_thinking":
		return nil, invalid(bp+".type", "%s: a %s block belongs in an assistant message", bp, b.Type)
	}
	return nil, invalid(bp+".type", "%s: unsupported content block type %q", bp, b.Type)
}

func image(bp string, s *source) (*chatImage, error) {
	if s == nil {
		return nil, invalid(bp+".source", "%s.source: field required", bp)
	}
	switch s.Type {
	case "base64":
		if !imageTypes[s.MediaType] {
			return nil, invalid(bp+".source.media_type", "%s.source.media_type: must be one of image/jpeg, image/png, image/gif, image/webp", bp)
		}
		if _, err := base64.StdEncoding.DecodeString(s.Data); err != nil {
			return nil, invalid(bp+".source.data", "%s.source.data: not valid base64", bp)
		}
		return &chatImage{URL: "data:" + s.MediaType + ";base64," + s.Data}, nil
	case "url":
		if !strings.HasPrefix(s.URL, "https://") && !strings.HasPrefix(s.URL, "http://") {
			return nil, invalid(bp+".source.url", "%s.source.url: must be an http(s) URL", bp)
		}
		return &chatImage{URL: s.URL}, nil
	}
	return nil, invalid(bp+".source.type", "%s.source.type: must be \"base64\" or \"url\" for an image", bp)
}

// document translates a document block into the gateway's chat document
// parts: base64 and plain-text sources become file parts (data: URLs),
// URL sources document parts the gateway fetches, content sources their
// text.
func (t *translator) document(bp string, b block) ([]chatPart, error) {
	s := b.Source
	if s == nil {
		return nil, invalid(bp+".source", "%s.source: field required", bp)
	}
	name := b.Title
	switch s.Type {
	case "base64":
		if s.MediaType == "" {
			return nil, invalid(bp+".source.media_type", "%s.source.media_type: field required", bp)
		}
		if _, err := base64.StdEncoding.DecodeString(s.Data); err != nil {
			return nil, invalid(bp+".source.data", "%s.source.data: not valid base64", bp)
		}
		if name == "" {
			name = "document" + extension(s.MediaType)
		}
		return []chatPart{{Type: "file", File: &chatFile{Filename: name, FileData: "data:" + s.MediaType + ";base64," + s.Data}}}, nil
	case "text":
		mt := s.MediaType
		if mt == "" {
			mt = "text/plain"
		}
		if name == "" {
			name = "document.txt"
		}
		return []chatPart{{Type: "file", File: &chatFile{Filename: name,
			FileData: "data:" + mt + ";base64," + base64.StdEncoding.EncodeToString([]byte(s.Data))}}}, nil
	case "url":
		if !strings.HasPrefix(s.URL, "https://") && !strings.HasPrefix(s.URL, "http://") {
			return nil, invalid(bp+".source.url", "%s.source.url: must be an http(s) URL", bp)
		}
		return []chatPart{{Type: "document", Source: &chatDocSource{Type: "url", URL: s.URL, Name: b.Title}}}, nil
	case "content":
		inner, err := blocks(s.Content, bp+".source.content")
		if err != nil {
			return nil, err
		}
		var parts []chatPart
		for k, ib := range inner {
			ip := fmt.Sprintf("%s.source.content.%d", bp, k)
			switch ib.Type {
			case "text":
				parts = append(parts, chatPart{Type: "text", Text: ib.Text})
			case "image":
				img, err := image(ip, ib.Source)
				if err != nil {
					return nil, err
				}
				parts = append(parts, chatPart{Type: "image_url", ImageURL: img})
			default:
				return nil, invalid(ip+".type", "%s: only text and image blocks may make up a document", ip)
			}
		}
		return parts, nil
	}
	return nil, invalid(bp+".source.type", "%s.source.type: must be \"base64\", \"text\", \"url\" or \"content\" for a document", bp)
}

func extension(mediaType string) string {
	switch mediaType {
	case "application/pdf":
		return ".pdf"
	case "text/plain":
		return ".txt"
	case "text/markdown":
		return ".md"
	case "text/html":
		return ".html"
	case "text/csv":
		return ".csv"
	case "application/json":
		return ".json"
	}
	return ""
}

// toolResult translates a tool_result block into a chat tool message.
// Chat tool messages hold text only: text blocks are joined, and images
// or documents in the result come back as parts of the user message that
// follows the tool messages. A result with is_error set is prefixed with
// "Error: ", chat having no flag for it.
func (t *translator) toolResult(bp string, b block) (chatMessage, []chatPart, error) {
	if b.ToolUseID == "" {
		return chatMessage{}, nil, invalid(bp+".tool_use_id", "%s.tool_use_id: field required", bp)
	}
	var (
		texts []string
		extra []chatPart
	)
	raw := bytes.TrimSpace(b.Content)
	if len(raw) > 0 && string(raw) != "null" {
		inner, err := blocks(raw, bp+".content")
		if err != nil {
			return chatMessage{}, nil, err
		}
		for k, ib := range inner {
			ip := fmt.Sprintf("%s.content.%d", bp, k)
			switch ib.Type {
			case "text":
				texts = append(texts, ib.Text)
			case "image", "document":
				p, err := t.part(ip, ib)
				if err != nil {
					return chatMessage{}, nil, err
				}
				extra = append(extra, p...)
			default:
				return chatMessage{}, nil, invalid(ip+".type", "%s: a tool result holds text, image and document blocks, not %q", ip, ib.Type)
			}
		}
	}
	text := strings.Join(texts, "\n")
	if b.IsError {
		text = "Error: " + text
	}
	return chatMessage{Role: "tool", ToolCallID: ChatToolID(b.ToolUseID), Content: text}, extra, nil
}

// assistant translates an assistant message: text blocks make its
// content, tool_use blocks its tool calls; thinking blocks are dropped
// (chat has no way to send them back).
func (t *translator) assistant(param string, bs []block) (chatMessage, error) {
	msg := chatMessage{Role: "assistant"}
	var texts []string
	for j, b := range bs {
		bp := fmt.Sprintf("%s.content.%d", param, j)
		if len(b.CacheControl) > 0 {
			t.ignore("cache_control")
		}
		switch b.Type {
		case "text":
			texts = append(texts, b.Text)
		case "tool_use":
			if b.ID == "" || b.Name == "" {
				return msg, invalid(bp, "%s: a tool_use block needs id and name", bp)
			}
			args := bytes.TrimSpace(b.Input)
			if len(args) == 0 || args[0] != '{' {
				return msg, invalid(bp+".input", "%s.input: must be an object", bp)
			}
			var c bytes.Buffer
			if err := json.Compact(&c, args); err != nil {
				return msg, invalid(bp+".input", "%s.input: %v", bp, err)
			}
			msg.ToolCalls = append(msg.ToolCalls, chatToolCall{ID: ChatToolID(b.ID), Type: "function",
				Function: chatFunction{Name: b.Name, Arguments: c.String()}})
		case "thinking", "redacted_thinking":
			t.ignore("thinking blocks")
		default:
			return msg, invalid(bp+".type", "%s: unsupported content block type %q in an assistant message", bp, b.Type)
		}
	}
	if len(texts) > 0 {
		msg.Content = strings.Join(texts, "")
	} else if len(msg.ToolCalls) == 0 {
		msg.Content = ""
	}
	return msg, nil
}

// tools translates the tool definitions and tool_choice.
func (t *translator) tools(out *chatRequest, tools []tool, choice *toolChoice) error {
	for i, tl := range tools {
		p := fmt.Sprintf("tools.%d", i)
		if tl.Type != "" && tl.Type != "custom" {
			return invalid(p+".type", "%s: server tool %q is not available through this gateway; define client tools (name, input_schema)", p, tl.Type)
		}
		if !toolName.MatchString(tl.Name) {
			return invalid(p+".name", "%s.name: must match ^[a-zA-Z0-9_-]{1,128}$", p)
		}
		schema := bytes.TrimSpace(tl.InputSchema)
		if len(schema) == 0 || schema[0] != '{' {
			return invalid(p+".input_schema", "%s.input_schema: field required (a JSON Schema object)", p)
		}
		if len(tl.CacheControl) > 0 {
			t.ignore("cache_control")
		}
		out.Tools = append(out.Tools, chatTool{Type: "function", Function: chatFuncDecl{Name: tl.Name, Description: tl.Description, Parameters: schema}})
	}
	if choice == nil {
		return nil
	}
	switch choice.Type {
	case "auto":
		out.ToolChoice = "auto"
	case "any":
		out.ToolChoice = "required"
	case "none":
		out.ToolChoice = "none"
	case "tool":
		if choice.Name == "" {
			return invalid("tool_choice.name", "tool_choice.name: field required for type \"tool\"")
		}
		found := false
		for _, tl := range tools {
			found = found || tl.Name == choice.Name
		}
		if !found {
			return invalid("tool_choice.name", "tool_choice.name: no tool named %q is defined", choice.Name)
		}
		var c chatNamedChoice
		c.Type = "function"
		c.Function.Name = choice.Name
		out.ToolChoice = c
	default:
		return invalid("tool_choice.type", "tool_choice.type: must be one of auto, any, tool, none")
	}
	if len(tools) == 0 {
		// Chat refuses tool_choice without tools.
		out.ToolChoice = nil
		return nil
	}
	if choice.DisableParallelToolUse && choice.Type != "none" {
		f := false
		out.ParallelToolCalls = &f
	}
	return nil
}
