package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// maxEventSize bounds one SSE event (and a trailing raw JSON body), so a
// broken upstream cannot make the plugin buffer without limit.
const maxEventSize = 16 << 20

// sseReader parses the data-only server-sent events of
// :streamGenerateContent?alt=sse, however the bytes are split into reads
// and whether lines end in \n or \r\n. Lines that are not SSE fields are
// collected as raw JSON: a stream can end with a bare error object.
type sseReader struct {
	r   *bufio.Reader
	raw bytes.Buffer
}

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 32<<10)}
}

// next returns the data of the next event. At the end of the body it
// returns io.EOF, or io.ErrUnexpectedEOF when the body ends inside an
// event (an event is complete at its blank line; a final data line
// without one is accepted when it is whole JSON).
func (sr *sseReader) next() ([]byte, error) {
	var data bytes.Buffer
	pending := false
	for {
		line, err := sr.line()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if len(line) > 0 {
					if !sr.field(line, &data, &pending) {
						sr.addRaw(line)
					}
				}
				if pending {
					if json.Valid(data.Bytes()) {
						return data.Bytes(), nil
					}
					return nil, io.ErrUnexpectedEOF
				}
			}
			return nil, err
		}
		if len(line) == 0 {
			if pending {
				return data.Bytes(), nil
			}
			continue
		}
		if !sr.field(line, &data, &pending) {
			sr.addRaw(line)
			if sr.raw.Len() > maxEventSize {
				return nil, fmt.Errorf("stream body larger than %d bytes outside events", maxEventSize)
			}
		}
		if data.Len() > maxEventSize {
			return nil, fmt.Errorf("sse event larger than %d bytes", maxEventSize)
		}
	}
}

// field handles an SSE field line and reports whether line was one.
func (sr *sseReader) field(line []byte, data *bytes.Buffer, pending *bool) bool {
	if line[0] == ':' {
		return true
	}
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		return false
	}
	switch string(name) {
	case "data":
		value = bytes.TrimPrefix(value, []byte(" "))
		if *pending {
			data.WriteByte('\n')
		}
		*pending = true
		data.Write(value)
		return true
	case "event", "id", "retry":
		return true
	}
	return false
}

func (sr *sseReader) addRaw(line []byte) {
	sr.raw.Write(line)
	sr.raw.WriteByte('\n')
}

// rawTail is what the body carried outside SSE events.
func (sr *sseReader) rawTail() []byte { return bytes.TrimSpace(sr.raw.Bytes()) }

// line reads one line without its line ending.
func (sr *sseReader) line() ([]byte, error) {
	var buf []byte
	for {
		chunk, err := sr.r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxEventSize {
			return nil, fmt.Errorf("sse line longer than %d bytes", maxEventSize)
		}
		switch {
		case err == nil:
			return bytes.TrimSuffix(buf[:len(buf)-1], []byte("\r")), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return bytes.TrimSuffix(buf, []byte("\r")), err
		}
	}
}

// choiceState is the progress of one candidate in a stream.
type choiceState struct {
	started bool
	calls   int
	finish  string
}

// streamer turns stream events into chat.completion.chunk objects.
type streamer struct {
	w            provider.ChunkWriter
	includeUsage bool
	created      int64
	newID        func() string

	id, model string
	begun     bool
	choices   map[int]*choiceState
	usage     *usageMetadata
	blocked   string
}

// protocolError is the error for an upstream stream that breaks the API's
// rules.
func protocolError(format string, args ...any) *openai.Error {
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "invalid_upstream_stream",
		"vertex: "+fmt.Sprintf(format, args...))
}

// run reads events until the body ends and writes the chunks.
func (s *streamer) run(sr *sseReader) error {
	s.choices = map[int]*choiceState{}
	for {
		data, err := sr.next()
		switch {
		case errors.Is(err, io.EOF):
			if tail := sr.rawTail(); len(tail) > 0 {
				if st := parseStatus(tail); st != nil {
					return rpcError(0, st)
				}
				return protocolError("stream ended with data that is not an event")
			}
			return s.finish()
		case errors.Is(err, io.ErrUnexpectedEOF):
			return cutOff()
		case err != nil:
			return fmt.Errorf("vertex: read stream: %w", err)
		}
		if len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		if bytes.HasPrefix(bytes.TrimSpace(data), []byte("[")) {
			if st := parseStatus(data); st != nil {
				return rpcError(0, st)
			}
			return protocolError("stream event is an array, not a GenerateContentResponse")
		}
		var gr generateResponse
		if err := json.Unmarshal(data, &gr); err != nil {
			return protocolError("stream event is not a GenerateContentResponse: %v", err)
		}
		if gr.Error != nil {
			return rpcError(0, gr.Error)
		}
		if err := s.handle(&gr); err != nil {
			return err
		}
	}
}

func cutOff() error {
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "stream_cut_off",
		"vertex: the stream ended before the final event")
}

// handle processes one event.
func (s *streamer) handle(gr *generateResponse) error {
	if !s.begun {
		s.begun = true
		s.id = completionID(gr.ResponseID, s.newID)
		if gr.ModelVersion != "" {
			s.model = gr.ModelVersion
		}
	}
	if gr.UsageMetadata != nil {
		// Cumulative: the last one is the total.
		u := *gr.UsageMetadata
		s.usage = &u
	}
	if gr.PromptFeedback != nil && gr.PromptFeedback.BlockReason != "" && len(gr.Candidates) == 0 {
		s.blocked = gr.PromptFeedback.BlockReason
	}
	for pos := range gr.Candidates {
		c := &gr.Candidates[pos]
		idx := candidateIndex(c, pos)
		st, err := s.choice(idx)
		if err != nil {
			return err
		}
		if st.finish != "" {
			return protocolError("candidate %d continued after its finishReason", idx)
		}
		if c.Content != nil {
			for _, p := range c.Content.Parts {
				if err := s.part(idx, st, &p); err != nil {
					return err
				}
			}
		}
		if c.FinishReason != "" {
			st.finish = c.FinishReason
		}
	}
	return nil
}

// choice returns the state of candidate idx, starting it with a role
// chunk on first sight.
func (s *streamer) choice(idx int) (*choiceState, error) {
	st := s.choices[idx]
	if st == nil {
		st = &choiceState{}
		s.choices[idx] = st
	}
	if !st.started {
		st.started = true
		if err := s.emit(idx, openai.Delta{Role: openai.RoleAssistant}, nil); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func (s *streamer) part(idx int, st *choiceState, p *part) error {
	switch {
	case p.Thought:
		return nil
	case p.FunctionCall != nil:
		if p.FunctionCall.Name == "" {
			return protocolError("function call without a name")
		}
		args, err := compactArgs(p.FunctionCall.Args)
		if err != nil {
			return protocolError("function call args are not JSON")
		}
		i := st.calls
		st.calls++
		// Gemini sends each call whole: one fragment with id, name and
		// the complete arguments.
		return s.emit(idx, openai.Delta{ToolCalls: []openai.ToolCall{{Index: &i, ID: withSignature(s.newID(), p.ThoughtSignature),
			Type: "function", Function: openai.FunctionCall{Name: p.FunctionCall.Name, Arguments: args}}}}, nil)
	case p.Text != "":
		t := p.Text
		return s.emit(idx, openai.Delta{Content: &t}, nil)
	}
	return nil
}

// finish ends the stream at the end of the body: a finish chunk per
// candidate and the usage chunk, or a cut-off error when no final event
// came.
func (s *streamer) finish() error {
	if len(s.choices) == 0 {
		if s.blocked == "" {
			return cutOff()
		}
		if !s.begun {
			return cutOff()
		}
		if _, err := s.choice(0); err != nil {
			return err
		}
		reason := openai.FinishContentFilter
		if err := s.emit(0, openai.Delta{}, &reason); err != nil {
			return err
		}
		return s.writeUsage()
	}
	idxs := make([]int, 0, len(s.choices))
	for i, st := range s.choices {
		if st.finish == "" {
			return cutOff()
		}
		idxs = append(idxs, i)
	}
	sort.Ints(idxs)
	if idxs[len(idxs)-1] != len(idxs)-1 {
		return protocolError("candidate indexes %v leave gaps", idxs)
	}
	for _, i := range idxs {
		st := s.choices[i]
		reason := finishReason(st.finish, st.calls > 0)
		if err := s.emit(i, openai.Delta{}, &reason); err != nil {
			return err
		}
	}
	return s.writeUsage()
}

func (s *streamer) writeUsage() error {
	if !s.includeUsage {
		return nil
	}
	u := openAIUsage(s.usage)
	return s.write(&openai.ChatChunk{ID: s.id, Object: openai.ObjectChatChunk, Created: s.created, Model: s.model,
		Choices: []openai.ChunkChoice{}, Usage: &u})
}

func (s *streamer) emit(idx int, d openai.Delta, finish *string) error {
	return s.write(&openai.ChatChunk{ID: s.id, Object: openai.ObjectChatChunk, Created: s.created, Model: s.model,
		Choices: []openai.ChunkChoice{{Index: idx, Delta: d, FinishReason: finish}}})
}

func (s *streamer) write(c *openai.ChatChunk) error {
	if err := provider.WriteChunk(s.w, c); err != nil {
		return fmt.Errorf("vertex: write chunk: %w", err)
	}
	return nil
}
