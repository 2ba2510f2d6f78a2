package messages

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Stream converts the chat.completion.chunk objects of one streamed
// answer into Messages API events. The first chunk opens the message
// (message_start, then a ping); reasoning, text and each tool call open
// a content block of their own (thinking, text, tool_use), closed when
// the next one opens or the answer finishes; End sends message_delta
// with the stop reason and the usage, then message_stop. A Stream is
// used by one stream at a time.
type Stream struct {
	started bool
	// next is the index of the next content block; open the index of
	// the open one, -1 for none, and kind its type.
	next, open int
	kind       string
	// tools maps a chat tool-call index to its block index; tool is the
	// chat index of the open tool_use block.
	tools   map[int]int
	tool    int
	finish  string
	refused bool
	usage   Usage
	// buf is reused to encode event payloads.
	buf []byte
}

// NewStream returns a Stream for one answer.
func NewStream() *Stream { return &Stream{open: -1, tools: map[int]int{}} }

// chatChunk is a chat.completion.chunk as far as Events reads it.
type chatChunk struct {
	ID      string       `json:"id"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *chatUsage   `json:"usage"`
}

// Events appends to dst the events one chat chunk makes: none, one or
// several, each framed as "event: <type>\ndata: <json>\n\n".
func (s *Stream) Events(dst, chunk []byte) ([]byte, error) {
	var c chatChunk
	if err := json.Unmarshal(chunk, &c); err != nil {
		return dst, fmt.Errorf("messages: the provider sent a chunk that is not a chat completion chunk: %w", err)
	}
	if !s.started {
		dst = s.start(dst, c.ID, c.Model)
	}
	if c.Usage != nil {
		s.usage = usage(c.Usage)
	}
	for _, ch := range c.Choices {
		if ch.Index != 0 {
			continue
		}
		d := ch.Delta
		if r := reasoning(d); r != "" {
			dst = s.ensure(dst, "thinking")
			dst = s.delta(dst, `{"type":"thinking_delta","thinking":`, r)
		}
		if d.Content != nil && *d.Content != "" {
			dst = s.ensure(dst, "text")
			dst = s.delta(dst, `{"type":"text_delta","text":`, *d.Content)
		}
		if d.Refusal != nil && *d.Refusal != "" {
			s.refused = true
			dst = s.ensure(dst, "text")
			dst = s.delta(dst, `{"type":"text_delta","text":`, *d.Refusal)
		}
		for _, td := range d.ToolCalls {
			var err error
			if dst, err = s.toolDelta(dst, td); err != nil {
				return dst, err
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			s.finish = *ch.FinishReason
			dst = s.close(dst)
		}
	}
	return dst, nil
}

// start writes message_start and a ping.
func (s *Stream) start(dst []byte, id, model string) []byte {
	s.started = true
	msg := messageOut{ID: MessageID(id), Type: "message", Role: "assistant", Model: model, Content: []any{}}
	b, _ := json.Marshal(msg)
	dst = event(dst, "message_start", `{"type":"message_start","message":`, b, "}")
	return event(dst, "ping", `{"type":"ping"}`, nil, "")
}

// ensure opens a block of kind unless one is open.
func (s *Stream) ensure(dst []byte, kind string) []byte {
	if s.open >= 0 && s.kind == kind {
		return dst
	}
	dst = s.close(dst)
	var cb string
	switch kind {
	case "thinking":
		cb = `{"type":"thinking","thinking":"","signature":""}`
	default:
		cb = `{"type":"text","text":""}`
	}
	return s.openBlock(dst, kind, cb)
}

func (s *Stream) openBlock(dst []byte, kind, contentBlock string) []byte {
	s.open, s.kind = s.next, kind
	s.next++
	return event(dst, "content_block_start",
		`{"type":"content_block_start","index":`+strconv.Itoa(s.open)+`,"content_block":`, []byte(contentBlock), "}")
}

// close closes the open block, if any.
func (s *Stream) close(dst []byte) []byte {
	if s.open < 0 {
		return dst
	}
	dst = event(dst, "content_block_stop", `{"type":"content_block_stop","index":`+strconv.Itoa(s.open)+`}`, nil, "")
	s.open, s.kind = -1, ""
	return dst
}

// delta writes a content_block_delta for the open block whose delta is
// prefix followed by text as a JSON string.
func (s *Stream) delta(dst []byte, prefix, text string) []byte {
	q, _ := json.Marshal(text)
	s.buf = append(s.buf[:0], prefix...)
	s.buf = append(s.buf, q...)
	s.buf = append(s.buf, '}')
	return event(dst, "content_block_delta",
		`{"type":"content_block_delta","index":`+strconv.Itoa(s.open)+`,"delta":`, s.buf, "}")
}

// toolDelta handles one tool-call fragment: the first fragment of a call
// opens its tool_use block, arguments become input_json_delta events.
// Anthropic streams blocks one after the other, so a fragment for a call
// whose block was already closed cannot be sent and fails the stream.
func (s *Stream) toolDelta(dst []byte, td chatToolDelta) ([]byte, error) {
	idx := 0
	switch {
	case td.Index != nil:
		idx = *td.Index
	case td.ID != "":
		idx = len(s.tools)
	case s.kind == "tool_use":
		idx = s.tool
	}
	block, known := s.tools[idx]
	if !known {
		id := td.ID
		if id == "" {
			id = "call_" + strconv.Itoa(s.next)
		}
		dst = s.close(dst)
		cb := toolUseBlock{Type: "tool_use", ID: ToolID(id), Name: td.Function.Name, Input: json.RawMessage(`{}`)}
		b, _ := json.Marshal(cb)
		block = s.next
		s.tools[idx] = block
		s.tool = idx
		dst = s.openBlock(dst, "tool_use", string(b))
	} else if s.open != block {
		return dst, fmt.Errorf("messages: the provider interleaved the arguments of parallel tool calls (call %d after its block closed)", idx)
	}
	if a := td.Function.Arguments; a != nil && *a != "" {
		dst = s.delta(dst, `{"type":"input_json_delta","partial_json":`, *a)
	}
	return dst, nil
}

// End appends the events that close a stream that ended well: the open
// block's content_block_stop, message_delta with the stop reason and the
// usage (every count, the input ones too: they are known only now), and
// message_stop.
func (s *Stream) End(dst []byte) []byte {
	if !s.started {
		dst = s.start(dst, "", "")
	}
	dst = s.close(dst)
	stop := StopReason(s.finish)
	switch {
	case s.refused:
		stop = "refusal"
	case s.finish == "" && len(s.tools) > 0:
		stop = "tool_use"
	}
	u, _ := json.Marshal(s.usage)
	dst = event(dst, "message_delta", `{"type":"message_delta","delta":{"stop_reason":"`+stop+`","stop_sequence":null},"usage":`, u, "}")
	return event(dst, "message_stop", `{"type":"message_stop"}`, nil, "")
}

// event appends one SSE event whose data is prefix, body and suffix.
func event(dst []byte, name, prefix string, body []byte, suffix string) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, name...)
	dst = append(dst, "\ndata: "...)
	dst = append(dst, prefix...)
	dst = append(dst, body...)
	dst = append(dst, suffix...)
	return append(dst, "\n\n"...)
}
