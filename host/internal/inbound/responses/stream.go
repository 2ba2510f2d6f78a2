package responses

import (
	"encoding/json"
	"net/http"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// chatChunk is the part of a chat.completion.chunk the translation reads.
type chatChunk struct {
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Content   *string           `json:"content"`
			Refusal   *string           `json:"refusal"`
			ToolCalls []openai.ToolCall `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *chatUsage `json:"usage"`
}

// Stream events. Every event carries its type and a sequence_number that
// starts at 0 and grows by one per event.
type (
	responseEvent struct {
		Type     string    `json:"type"`
		Sequence int64     `json:"sequence_number"`
		Response *Response `json:"response"`
	}
	itemEvent struct {
		Type        string `json:"type"`
		Sequence    int64  `json:"sequence_number"`
		OutputIndex int    `json:"output_index"`
		Item        Item   `json:"item"`
	}
	partEvent struct {
		Type         string `json:"type"`
		Sequence     int64  `json:"sequence_number"`
		ItemID       string `json:"item_id"`
		OutputIndex  int    `json:"output_index"`
		ContentIndex int    `json:"content_index"`
		Part         Part   `json:"part"`
	}
	textEvent struct {
		Type         string  `json:"type"`
		Sequence     int64   `json:"sequence_number"`
		ItemID       string  `json:"item_id"`
		OutputIndex  int     `json:"output_index"`
		ContentIndex int     `json:"content_index"`
		Delta        *string `json:"delta,omitempty"`
		Text         *string `json:"text,omitempty"`
		Refusal      *string `json:"refusal,omitempty"`
		Logprobs     *[]any  `json:"logprobs,omitempty"`
	}
	argumentsEvent struct {
		Type        string  `json:"type"`
		Sequence    int64   `json:"sequence_number"`
		ItemID      string  `json:"item_id"`
		OutputIndex int     `json:"output_index"`
		Delta       *string `json:"delta,omitempty"`
		Arguments   *string `json:"arguments,omitempty"`
		Name        string  `json:"name,omitempty"`
	}
	errorEvent struct {
		Type     string  `json:"type"`
		Sequence int64   `json:"sequence_number"`
		Code     string  `json:"code"`
		Message  string  `json:"message"`
		Param    *string `json:"param"`
	}
)

// emit appends one SSE event named typ.
func (c *Converter) emit(dst []byte, typ string, v any) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, typ...)
	dst = append(dst, "\ndata: "...)
	dst = append(dst, marshal(v)...)
	c.seq++
	return append(dst, "\n\n"...)
}

// snapshot returns a copy of the response as it stands, for the
// lifecycle events (later events must not change what was sent).
func (c *Converter) snapshot() *Response {
	r := *c.resp
	r.Output = make([]Item, len(c.resp.Output))
	copy(r.Output, c.resp.Output)
	for i, it := range r.Output {
		if it.Content != nil {
			r.Output[i].Content = make([]Part, len(it.Content))
			copy(r.Output[i].Content, it.Content)
		}
	}
	return &r
}

// start appends response.created and response.in_progress once.
func (c *Converter) start(dst []byte) []byte {
	if c.started {
		return dst
	}
	c.started = true
	dst = c.emit(dst, "response.created", responseEvent{Type: "response.created", Sequence: c.seq, Response: c.snapshot()})
	return c.emit(dst, "response.in_progress", responseEvent{Type: "response.in_progress", Sequence: c.seq, Response: c.snapshot()})
}

// Events appends the response.* events for one chat.completion.chunk.
func (c *Converter) Events(dst, chunk []byte) ([]byte, error) {
	var ch chatChunk
	if err := json.Unmarshal(chunk, &ch); err != nil {
		return dst, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_error",
			"a stream chunk from the provider could not be read: "+err.Error())
	}
	if c.done {
		return dst, nil
	}
	dst = c.start(dst)
	if ch.Model != "" {
		c.resp.Model = ch.Model
	}
	if ch.Usage != nil {
		c.resp.Usage = ch.Usage.usage()
	}
	for _, choice := range ch.Choices {
		if choice.Index != 0 {
			continue
		}
		d := choice.Delta
		if d.Content != nil && *d.Content != "" {
			dst = c.text(dst, "output_text", *d.Content)
		}
		if d.Refusal != nil && *d.Refusal != "" {
			dst = c.text(dst, "refusal", *d.Refusal)
		}
		for _, tc := range d.ToolCalls {
			dst = c.call(dst, tc)
		}
		if choice.FinishReason != nil && *choice.FinishReason != "" {
			c.finish = *choice.FinishReason
		}
	}
	return dst, nil
}

// text appends a text or refusal delta, opening the message item and the
// part first when needed.
func (c *Converter) text(dst []byte, kind, delta string) []byte {
	if c.msg < 0 {
		c.msg = len(c.resp.Output)
		c.resp.Output = append(c.resp.Output, Item{ID: c.newID("msg"), Type: "message", Status: StatusInProgress, Role: "assistant", Content: []Part{}})
		dst = c.emit(dst, "response.output_item.added", itemEvent{Type: "response.output_item.added", Sequence: c.seq,
			OutputIndex: c.msg, Item: c.resp.Output[c.msg]})
	}
	it := &c.resp.Output[c.msg]
	idx := &c.textPart
	if kind == "refusal" {
		idx = &c.refusalPart
	}
	if *idx < 0 {
		*idx = len(it.Content)
		it.Content = append(it.Content, Part{Type: kind})
		dst = c.emit(dst, "response.content_part.added", partEvent{Type: "response.content_part.added", Sequence: c.seq,
			ItemID: it.ID, OutputIndex: c.msg, ContentIndex: *idx, Part: Part{Type: kind}})
	}
	p := &it.Content[*idx]
	ev := textEvent{Sequence: c.seq, ItemID: it.ID, OutputIndex: c.msg, ContentIndex: *idx, Delta: &delta}
	if kind == "refusal" {
		p.Refusal += delta
		ev.Type = "response.refusal.delta"
	} else {
		p.Text += delta
		ev.Type = "response.output_text.delta"
		ev.Logprobs = &[]any{}
	}
	return c.emit(dst, ev.Type, ev)
}

// call appends a tool call fragment: the function_call item when the
// call is new, then its arguments delta.
func (c *Converter) call(dst []byte, tc openai.ToolCall) []byte {
	i := c.lastCall
	switch {
	case tc.Index != nil:
		i = *tc.Index
	case tc.ID != "" || i < 0:
		// A fragment without index starts a call when it has an id.
		i = c.lastCall + 1
	}
	c.lastCall = i
	out, ok := c.calls[i]
	if !ok {
		if c.msg >= 0 {
			// The model's text comes before its calls: the message is
			// complete when the first call starts.
			dst = c.close(dst, c.msg, StatusCompleted)
			c.msg, c.textPart, c.refusalPart = -1, -1, -1
		}
		out = len(c.resp.Output)
		c.calls[i] = out
		c.resp.Output = append(c.resp.Output, Item{ID: c.newID("fc"), Type: "function_call", Status: StatusInProgress,
			CallID: tc.ID, Name: tc.Function.Name})
		dst = c.emit(dst, "response.output_item.added", itemEvent{Type: "response.output_item.added", Sequence: c.seq,
			OutputIndex: out, Item: c.resp.Output[out]})
	}
	it := &c.resp.Output[out]
	if it.CallID == "" && tc.ID != "" {
		it.CallID = tc.ID
	}
	if it.Name == "" && tc.Function.Name != "" {
		it.Name = tc.Function.Name
	}
	if a := tc.Function.Arguments; a != "" {
		it.Arguments += a
		dst = c.emit(dst, "response.function_call_arguments.delta", argumentsEvent{Type: "response.function_call_arguments.delta",
			Sequence: c.seq, ItemID: it.ID, OutputIndex: out, Delta: &a})
	}
	return dst
}

// End appends the events that close the open items and the response:
// response.completed, or response.incomplete when the answer was cut by
// max_output_tokens or a content filter.
func (c *Converter) End(dst []byte) []byte {
	if c.done {
		return dst
	}
	dst = c.start(dst)
	status := StatusCompleted
	if c.finish == openai.FinishLength || c.finish == openai.FinishContentFilter {
		status = StatusIncomplete
	}
	for i := range c.resp.Output {
		dst = c.close(dst, i, status)
	}
	c.resp.finish(c.finish)
	c.done = true
	typ := "response.completed"
	if c.resp.Status == StatusIncomplete {
		typ = "response.incomplete"
	}
	return c.emit(dst, typ, responseEvent{Type: typ, Sequence: c.seq, Response: c.snapshot()})
}

// close appends the events that end output item i, when it is open,
// with status.
func (c *Converter) close(dst []byte, i int, status string) []byte {
	it := &c.resp.Output[i]
	if it.Status != StatusInProgress {
		return dst
	}
	switch it.Type {
	case "message":
		for j, p := range it.Content {
			ev := textEvent{Sequence: c.seq, ItemID: it.ID, OutputIndex: i, ContentIndex: j}
			if p.Type == "refusal" {
				ev.Type, ev.Refusal = "response.refusal.done", &p.Refusal
			} else {
				ev.Type, ev.Text, ev.Logprobs = "response.output_text.done", &p.Text, &[]any{}
			}
			dst = c.emit(dst, ev.Type, ev)
			dst = c.emit(dst, "response.content_part.done", partEvent{Type: "response.content_part.done", Sequence: c.seq,
				ItemID: it.ID, OutputIndex: i, ContentIndex: j, Part: p})
		}
	case "function_call":
		args := it.Arguments
		dst = c.emit(dst, "response.function_call_arguments.done", argumentsEvent{Type: "response.function_call_arguments.done",
			Sequence: c.seq, ItemID: it.ID, OutputIndex: i, Arguments: &args, Name: it.Name})
	}
	it.Status = status
	return c.emit(dst, "response.output_item.done", itemEvent{Type: "response.output_item.done", Sequence: c.seq,
		OutputIndex: i, Item: *it})
}

// StreamError appends an error event for e, then response.failed with
// the response as it stood.
func (c *Converter) StreamError(dst []byte, e *openai.Error) []byte {
	if c.done {
		return dst
	}
	dst = c.start(dst)
	code := e.Code
	if code == "" {
		code = e.Type
	}
	ev := errorEvent{Type: "error", Sequence: c.seq, Code: code, Message: e.Message}
	if e.Param != "" {
		p := e.Param
		ev.Param = &p
	}
	dst = c.emit(dst, "error", ev)
	c.resp.Status = StatusFailed
	c.resp.Error = &ResponseError{Code: code, Message: e.Message}
	c.done = true
	return c.emit(dst, "response.failed", responseEvent{Type: "response.failed", Sequence: c.seq, Response: c.snapshot()})
}
