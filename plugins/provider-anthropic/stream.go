package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// maxEventSize bounds one SSE event, so a broken upstream cannot make the
// plugin buffer without limit.
const maxEventSize = 16 << 20

// sseEvent is one server-sent event.
type sseEvent struct {
	name string
	data []byte
}

// eventReader parses server-sent events from a byte stream, however the
// stream is split into reads.
type eventReader struct {
	r *bufio.Reader
}

func newEventReader(r io.Reader) *eventReader {
	return &eventReader{r: bufio.NewReaderSize(r, 32<<10)}
}

// next returns the next event. It returns io.EOF at a clean end and
// io.ErrUnexpectedEOF when the stream ends inside an event.
func (er *eventReader) next() (sseEvent, error) {
	var ev sseEvent
	var data bytes.Buffer
	hasData, pending := false, false
	for {
		line, err := er.line()
		if err != nil {
			if errors.Is(err, io.EOF) && (pending || len(line) > 0) {
				return sseEvent{}, io.ErrUnexpectedEOF
			}
			return sseEvent{}, err
		}
		if len(line) == 0 {
			if !pending {
				continue
			}
			ev.data = data.Bytes()
			return ev, nil
		}
		if line[0] == ':' {
			continue
		}
		pending = true
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			ev.name = string(value)
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			hasData = true
			data.Write(value)
			if data.Len() > maxEventSize {
				return sseEvent{}, fmt.Errorf("sse event larger than %d bytes", maxEventSize)
			}
		}
	}
}

// line reads one line without its line ending.
func (er *eventReader) line() ([]byte, error) {
	var buf []byte
	for {
		chunk, err := er.r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxEventSize {
			return nil, fmt.Errorf("sse line longer than %d bytes", maxEventSize)
		}
		switch {
		case err == nil:
			buf = bytes.TrimSuffix(buf[:len(buf)-1], []byte("\r"))
			return buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return buf, err
		}
	}
}

// blockKind says what a content block of the stream becomes.
type blockKind int

const (
	kindIgnored blockKind = iota // thinking and other blocks OpenAI has no place for
	kindText
	kindTool
	kindJSON // the JSON-mode tool, streamed as content
)

type blockState struct {
	kind blockKind
	// tool is the OpenAI tool-call index of a kindTool block.
	tool int
	// wrote records that some argument text was emitted.
	wrote bool
	comp  openai.JSONCompactor
}

// streamEvent is the data of any Messages API stream event.
type streamEvent struct {
	Type         string            `json:"type"`
	Message      *messagesResponse `json:"message"`
	Index        *int              `json:"index"`
	ContentBlock *block            `json:"content_block"`
	Delta        *struct {
		Type        string `json:"type"`
		Text        string `json:"text"`
		PartialJSON string `json:"partial_json"`
		StopReason  string `json:"stop_reason"`
	} `json:"delta"`
	Usage *usage `json:"usage"`
	Error *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// streamer turns Messages API stream events into chat.completion.chunk
// objects.
type streamer struct {
	w            provider.ChunkWriter
	jsonTool     bool
	includeUsage bool
	created      int64

	id, model  string
	started    bool
	usage      usage
	stopReason string
	blocks     map[int]*blockState
	tools      int
}

// protocolError is the error for an upstream stream that breaks the
// Messages API's rules.
func protocolError(format string, args ...any) *openai.Error {
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "invalid_upstream_stream",
		"anthropic: "+fmt.Sprintf(format, args...))
}

// run reads events until message_stop and writes the chunks.
func (s *streamer) run(er *eventReader) error {
	s.blocks = map[int]*blockState{}
	for {
		ev, err := er.next()
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "stream_cut_off",
				"anthropic: the stream ended before message_stop")
		case err != nil:
			return fmt.Errorf("anthropic: read stream: %w", err)
		}
		var se streamEvent
		if err := json.Unmarshal(ev.data, &se); err != nil {
			return protocolError("stream event %q is not JSON: %v", ev.name, err)
		}
		name := ev.name
		if name == "" {
			name = se.Type
		}
		done, err := s.handle(name, &se)
		if err != nil || done {
			return err
		}
	}
}

// handle processes one event and reports whether the stream is complete.
func (s *streamer) handle(name string, se *streamEvent) (bool, error) {
	if name == "error" {
		typ, msg := "api_error", "stream error"
		if se.Error != nil {
			typ, msg = se.Error.Type, se.Error.Message
		}
		return false, errorFor(0, typ, "anthropic: "+msg)
	}
	if name == "ping" {
		return false, nil
	}
	if name != "message_start" && !s.started {
		return false, protocolError("event %q before message_start", name)
	}
	switch name {
	case "message_start":
		if s.started || se.Message == nil {
			return false, protocolError("unexpected message_start")
		}
		s.started = true
		s.id, s.model = se.Message.ID, se.Message.Model
		s.usage = se.Message.Usage
		return false, s.emit(openai.Delta{Role: openai.RoleAssistant}, nil)
	case "content_block_start":
		return false, s.blockStart(se)
	case "content_block_delta":
		return false, s.blockDelta(se)
	case "content_block_stop":
		return false, s.blockStop(se)
	case "message_delta":
		if se.Delta != nil && se.Delta.StopReason != "" {
			s.stopReason = se.Delta.StopReason
		}
		if se.Usage != nil {
			s.usage.merge(*se.Usage)
		}
		return false, nil
	case "message_stop":
		return true, s.finish()
	}
	// Anthropic may add event types; unknown ones are skipped.
	return false, nil
}

func (s *streamer) blockStart(se *streamEvent) error {
	if se.Index == nil || se.ContentBlock == nil {
		return protocolError("content_block_start without index or content_block")
	}
	if _, dup := s.blocks[*se.Index]; dup {
		return protocolError("content block %d started twice", *se.Index)
	}
	b := se.ContentBlock
	st := &blockState{}
	s.blocks[*se.Index] = st
	switch {
	case b.Type == blockText:
		st.kind = kindText
		if b.Text != "" {
			return s.text(b.Text)
		}
	case b.Type == blockToolUse && s.jsonTool && b.Name == jsonToolName:
		st.kind = kindJSON
	case b.Type == blockToolUse:
		st.kind, st.tool = kindTool, s.tools
		s.tools++
		i := st.tool
		return s.emit(openai.Delta{ToolCalls: []openai.ToolCall{{Index: &i, ID: b.ID, Type: "function",
			Function: openai.FunctionCall{Name: b.Name, Arguments: ""}}}}, nil)
	}
	return nil
}

func (s *streamer) block(se *streamEvent) (*blockState, error) {
	if se.Index == nil {
		return nil, protocolError("content block event without index")
	}
	st, ok := s.blocks[*se.Index]
	if !ok {
		return nil, protocolError("event for content block %d that never started", *se.Index)
	}
	return st, nil
}

func (s *streamer) blockDelta(se *streamEvent) error {
	st, err := s.block(se)
	if err != nil || se.Delta == nil {
		if err == nil {
			err = protocolError("content_block_delta without delta")
		}
		return err
	}
	switch se.Delta.Type {
	case "text_delta":
		if st.kind == kindText && se.Delta.Text != "" {
			return s.text(se.Delta.Text)
		}
	case "input_json_delta":
		return s.arguments(st, st.comp.Compact(se.Delta.PartialJSON))
	}
	// thinking_delta, signature_delta, citations_delta: not part of the
	// OpenAI message.
	return nil
}

func (s *streamer) blockStop(se *streamEvent) error {
	st, err := s.block(se)
	if err != nil {
		return err
	}
	if !st.wrote && (st.kind == kindTool || st.kind == kindJSON) {
		return s.arguments(st, "{}") // an input without deltas is {}
	}
	return nil
}

// arguments emits a piece of a tool input: tool-call arguments, or content
// for the JSON-mode tool.
func (s *streamer) arguments(st *blockState, frag string) error {
	if frag == "" {
		return nil
	}
	st.wrote = true
	switch st.kind {
	case kindTool:
		i := st.tool
		return s.emit(openai.Delta{ToolCalls: []openai.ToolCall{{Index: &i, Function: openai.FunctionCall{Arguments: frag}}}}, nil)
	case kindJSON:
		return s.text(frag)
	}
	return nil
}

func (s *streamer) text(t string) error {
	return s.emit(openai.Delta{Content: &t}, nil)
}

func (s *streamer) finish() error {
	reason := finishReason(s.stopReason, s.tools)
	if err := s.emit(openai.Delta{}, &reason); err != nil {
		return err
	}
	if !s.includeUsage {
		return nil
	}
	u := openAIUsage(s.usage)
	return s.write(&openai.ChatChunk{ID: s.id, Object: openai.ObjectChatChunk, Created: s.created, Model: s.model,
		Choices: []openai.ChunkChoice{}, Usage: &u})
}

func (s *streamer) emit(d openai.Delta, finish *string) error {
	return s.write(&openai.ChatChunk{ID: s.id, Object: openai.ObjectChatChunk, Created: s.created, Model: s.model,
		Choices: []openai.ChunkChoice{{Delta: d, FinishReason: finish}}})
}

func (s *streamer) write(c *openai.ChatChunk) error {
	if err := provider.WriteChunk(s.w, c); err != nil {
		return fmt.Errorf("anthropic: write chunk: %w", err)
	}
	return nil
}
