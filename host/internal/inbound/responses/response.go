package responses

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// Response is a Response object, the answer of POST /v1/responses and of
// GET /v1/responses/{id}.
type Response struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	CreatedAt          int64             `json:"created_at"`
	Status             string            `json:"status"`
	Error              *ResponseError    `json:"error"`
	IncompleteDetails  *Incomplete       `json:"incomplete_details"`
	Instructions       *string           `json:"instructions"`
	MaxOutputTokens    *int64            `json:"max_output_tokens"`
	Model              string            `json:"model"`
	Output             []Item            `json:"output"`
	ParallelToolCalls  bool              `json:"parallel_tool_calls"`
	PreviousResponseID *string           `json:"previous_response_id"`
	Reasoning          Reasoning         `json:"reasoning"`
	Store              bool              `json:"store"`
	Temperature        *float64          `json:"temperature"`
	Text               TextConfig        `json:"text"`
	ToolChoice         json.RawMessage   `json:"tool_choice"`
	Tools              []json.RawMessage `json:"tools"`
	TopP               *float64          `json:"top_p"`
	Truncation         string            `json:"truncation"`
	Usage              *Usage            `json:"usage"`
	User               *string           `json:"user"`
	Metadata           map[string]string `json:"metadata"`
}

// Encode returns the response's JSON.
func (r *Response) Encode() []byte { return marshal(r) }

// Response statuses.
const (
	StatusInProgress = "in_progress"
	StatusCompleted  = "completed"
	StatusIncomplete = "incomplete"
	StatusFailed     = "failed"
)

// ResponseError is a failed response's error.
type ResponseError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Incomplete says why a response stopped early: max_output_tokens or
// content_filter.
type Incomplete struct {
	Reason string `json:"reason"`
}

// Item is one output item: a message or a function call. The same shapes
// are valid input items, which is how a stored response is replayed.
type Item struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Status string `json:"status"`
	// message
	Role    string `json:"role,omitempty"`
	Content []Part `json:"content,omitempty"`
	// function_call
	CallID    string `json:"call_id,omitempty"`
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments,omitempty"`
}

// MarshalJSON writes each item type with exactly its fields; a message's
// content and a call's arguments are present even when empty, as the
// SDKs append stream deltas to them.
func (it Item) MarshalJSON() ([]byte, error) {
	switch it.Type {
	case "message":
		content := it.Content
		if content == nil {
			content = []Part{}
		}
		return json.Marshal(struct {
			ID      string `json:"id"`
			Type    string `json:"type"`
			Status  string `json:"status"`
			Role    string `json:"role"`
			Content []Part `json:"content"`
		}{it.ID, it.Type, it.Status, it.Role, content})
	case "function_call":
		return json.Marshal(struct {
			ID        string `json:"id"`
			Type      string `json:"type"`
			Status    string `json:"status"`
			CallID    string `json:"call_id"`
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		}{it.ID, it.Type, it.Status, it.CallID, it.Name, it.Arguments})
	}
	type plain Item
	return json.Marshal(plain(it))
}

// Part is one content part of an output message: output_text or refusal.
type Part struct {
	Type    string
	Text    string
	Refusal string
}

// MarshalJSON writes output_text with its (empty) annotations and
// logprobs, and refusal with its refusal text.
func (p Part) MarshalJSON() ([]byte, error) {
	if p.Type == "refusal" {
		return json.Marshal(struct {
			Type    string `json:"type"`
			Refusal string `json:"refusal"`
		}{p.Type, p.Refusal})
	}
	return json.Marshal(struct {
		Type        string `json:"type"`
		Text        string `json:"text"`
		Annotations []any  `json:"annotations"`
		Logprobs    []any  `json:"logprobs"`
	}{p.Type, p.Text, []any{}, []any{}})
}

// UnmarshalJSON reads either part type.
func (p *Part) UnmarshalJSON(b []byte) error {
	var w struct {
		Type    string `json:"type"`
		Text    string `json:"text"`
		Refusal string `json:"refusal"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*p = Part{Type: w.Type, Text: w.Text, Refusal: w.Refusal}
	return nil
}

// Usage is a response's token accounting.
type Usage struct {
	InputTokens         int64         `json:"input_tokens"`
	InputTokensDetails  InputDetails  `json:"input_tokens_details"`
	OutputTokens        int64         `json:"output_tokens"`
	OutputTokensDetails OutputDetails `json:"output_tokens_details"`
	TotalTokens         int64         `json:"total_tokens"`
}

// InputDetails breaks down input tokens. CacheWriteTokens, tokens written
// to a provider's prompt cache, is llmproxy's extension; it is left out
// when zero.
type InputDetails struct {
	CachedTokens     int64 `json:"cached_tokens"`
	CacheWriteTokens int64 `json:"cache_write_tokens,omitempty"`
}

// OutputDetails breaks down output tokens.
type OutputDetails struct {
	ReasoningTokens int64 `json:"reasoning_tokens"`
}

// chatUsage is the usage object of a chat answer, with the normalised
// detail fields every provider reports.
type chatUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	PromptTokensDetails *struct {
		CachedTokens        int64 `json:"cached_tokens"`
		CacheWriteTokens    int64 `json:"cache_write_tokens"`
		CacheCreationTokens int64 `json:"cache_creation_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

// usage translates chat usage.
func (u *chatUsage) usage() *Usage {
	if u == nil {
		return nil
	}
	out := &Usage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
	if out.TotalTokens == 0 {
		out.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	if d := u.PromptTokensDetails; d != nil {
		out.InputTokensDetails.CachedTokens = d.CachedTokens
		out.InputTokensDetails.CacheWriteTokens = d.CacheWriteTokens
		if d.CacheWriteTokens == 0 {
			out.InputTokensDetails.CacheWriteTokens = d.CacheCreationTokens
		}
	}
	if d := u.CompletionTokensDetails; d != nil {
		out.OutputTokensDetails.ReasoningTokens = d.ReasoningTokens
	}
	return out
}

// NewID returns a new identifier with prefix ("resp", "msg", "fc").
func NewID(prefix string) string {
	var b [16]byte
	rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

// skeleton returns the response object for r before any output: the
// request's parameters echoed, status in_progress.
func skeleton(r *Request, id string, created time.Time, store bool) *Response {
	out := &Response{
		ID: id, Object: "response", CreatedAt: created.Unix(), Status: StatusInProgress,
		Instructions: r.Instructions, MaxOutputTokens: r.MaxOutputTokens, Model: r.Model, Output: []Item{},
		ParallelToolCalls: r.ParallelToolCalls == nil || *r.ParallelToolCalls,
		Store:             store, Temperature: r.Temperature, TopP: r.TopP, Truncation: "disabled",
		Tools: r.Tools, ToolChoice: r.ToolChoice, Metadata: r.Metadata,
		Text: TextConfig{Format: &Format{Type: "text"}},
	}
	if r.Truncation != "" {
		out.Truncation = r.Truncation
	}
	if out.Tools == nil {
		out.Tools = []json.RawMessage{}
	}
	if len(out.ToolChoice) == 0 {
		out.ToolChoice = json.RawMessage(`"auto"`)
	}
	if out.Metadata == nil {
		out.Metadata = map[string]string{}
	}
	if r.Text != nil && r.Text.Format != nil {
		out.Text = *r.Text
	}
	if r.Reasoning != nil {
		out.Reasoning = *r.Reasoning
	}
	if r.PreviousResponseID != "" {
		p := r.PreviousResponseID
		out.PreviousResponseID = &p
	}
	if r.User != "" {
		u := r.User
		out.User = &u
	}
	return out
}

// finish sets the response's status from the chat finish reason.
func (r *Response) finish(reason string) {
	switch reason {
	case openai.FinishLength:
		r.Status = StatusIncomplete
		r.IncompleteDetails = &Incomplete{Reason: "max_output_tokens"}
	case openai.FinishContentFilter:
		r.Status = StatusIncomplete
		r.IncompleteDetails = &Incomplete{Reason: "content_filter"}
	default:
		r.Status = StatusCompleted
	}
}

// chatCompletion is the part of a chat.completion the translation reads.
type chatCompletion struct {
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content   *string           `json:"content"`
			Refusal   *string           `json:"refusal"`
			ToolCalls []openai.ToolCall `json:"tool_calls"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *chatUsage `json:"usage"`
}

// Converter turns the chat answer to one Responses request into the
// Responses API: a Response object for a chat.completion, typed events
// for a stream's chunks. It has the methods of the host's dialect hook.
// A Converter serves one request.
type Converter struct {
	req     *Request
	resp    *Response
	done    bool
	created time.Time
	// newID names output items (NewID; fixed in tests).
	newID func(prefix string) string

	// Stream state.
	seq     int64
	started bool
	finish  string
	// msg is the output index of the open message item, -1 if none; its
	// text and refusal parts are at textPart and refusalPart (-1: none).
	msg, textPart, refusalPart int
	// calls maps a chat tool call index to its output index.
	calls map[int]int
	// lastCall is the chat index of the last tool call seen.
	lastCall int
}

// NewConverter returns the Converter for r; id is the response's id and
// store says whether it will be kept (echoed as the response's store).
func NewConverter(r *Request, id string, created time.Time, store bool) *Converter {
	return &Converter{req: r, resp: skeleton(r, id, created, store), created: created, newID: NewID,
		msg: -1, textPart: -1, refusalPart: -1, calls: map[int]int{}, lastCall: -1}
}

// Final returns the finished response (completed, incomplete or failed),
// or nil while it is not finished.
func (c *Converter) Final() *Response {
	if !c.done {
		return nil
	}
	return c.resp
}

// Response converts a chat.completion body into a Response object.
func (c *Converter) Response(body []byte) ([]byte, error) {
	var cc chatCompletion
	if err := json.Unmarshal(body, &cc); err != nil {
		return nil, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_error",
			"the provider's answer could not be read: "+err.Error())
	}
	if cc.Model != "" {
		c.resp.Model = cc.Model
	}
	if len(cc.Choices) > 0 {
		ch := cc.Choices[0]
		c.resp.finish(ch.FinishReason)
		// Items cut short share the response's status.
		status := StatusCompleted
		if c.resp.Status == StatusIncomplete {
			status = StatusIncomplete
		}
		var parts []Part
		if m := ch.Message.Content; m != nil && *m != "" {
			parts = append(parts, Part{Type: "output_text", Text: *m})
		}
		if m := ch.Message.Refusal; m != nil && *m != "" {
			parts = append(parts, Part{Type: "refusal", Refusal: *m})
		}
		if len(parts) > 0 {
			c.resp.Output = append(c.resp.Output, Item{ID: c.newID("msg"), Type: "message", Status: status, Role: "assistant", Content: parts})
		}
		for _, tc := range ch.Message.ToolCalls {
			c.resp.Output = append(c.resp.Output, Item{ID: c.newID("fc"), Type: "function_call", Status: status,
				CallID: tc.ID, Name: tc.Function.Name, Arguments: tc.Function.Arguments})
		}
	} else {
		c.resp.finish("")
	}
	c.resp.Usage = cc.Usage.usage()
	c.done = true
	return marshal(c.resp), nil
}

// Error returns the body of an error answer: the OpenAI error shape, as
// OpenAI's Responses API answers errors before a response exists.
func (c *Converter) Error(e *openai.Error) []byte { return e.JSON() }

// marshal encodes v without HTML escaping.
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("responses: encode %T: %v", v, err))
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}
