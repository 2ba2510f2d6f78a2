package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// maxEventSize bounds one stream event line.
const maxEventSize = 16 << 20

// eventReader splits an OCI chat stream into event payloads. OCI sends
// data-only SSE: one "data: <json>" line per event, separated by a blank
// line or, at times, by a single "\n"; there is no [DONE]. Every data line
// is therefore one event; other SSE lines are skipped.
type eventReader struct {
	r *bufio.Reader
}

func newEventReader(r io.Reader) *eventReader {
	return &eventReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the payload of the next data line, or io.EOF at the end
// of the body.
func (er *eventReader) next() ([]byte, error) {
	var line []byte
	for {
		frag, err := er.r.ReadSlice('\n')
		if len(line)+len(frag) > maxEventSize {
			return nil, fmt.Errorf("oci: stream event longer than %d bytes", maxEventSize)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			line = append(line, frag...)
			continue
		}
		line = append(line, frag...)
		if err != nil && !(errors.Is(err, io.EOF) && len(bytes.TrimSpace(line)) > 0) {
			if errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			return nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		payload, ok := bytes.CutPrefix(line, []byte("data:"))
		if ok {
			payload = bytes.TrimSpace(payload)
			if err != nil && !json.Valid(payload) {
				// The body ended inside an event.
				return nil, errCut
			}
			if len(payload) > 0 && !bytes.Equal(payload, []byte("[DONE]")) {
				return payload, nil
			}
		}
		if err != nil {
			return nil, io.EOF
		}
		line = line[:0]
	}
}

// errCut reports a body that ended in the middle of an event.
var errCut = errors.New("oci: the stream was cut off inside an event")

// readResult is one event or the error that ended the body.
type readResult struct {
	data []byte
	err  error
}

// streamer turns an OCI chat stream into chat.completion.chunk objects.
type streamer struct {
	w            provider.ChunkWriter
	format       string
	meta         responseMeta
	includeUsage bool
	// choices is how many choices must finish before the stream is done.
	choices   int
	usageWait time.Duration

	usage    *openai.Usage
	begun    map[int]bool
	finished map[int]bool
	// calls holds per choice the tool calls emitted so far.
	calls map[int]*callState
	// text is the text emitted so far (COHERE restates it at the end).
	text string
}

// callState tracks the tool calls of one choice.
type callState struct {
	// ids of the calls started, by OpenAI index.
	ids []string
	// pendingID and pendingArgs hold fragments that came before any
	// fragment named the call.
	pendingID   string
	pendingArgs string
}

// run reads the stream from body until every choice has finished (and
// the usage event has come, or usageWait has passed), the body ends or
// ctx is done. The connection may stay open after the last event, so the
// end is decided by the events, not by EOF.
func (st *streamer) run(ctx context.Context, body io.Reader) error {
	if st.choices < 1 {
		st.choices = 1
	}
	st.begun, st.finished = map[int]bool{}, map[int]bool{}
	st.calls = map[int]*callState{}
	events := make(chan readResult)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		er := newEventReader(body)
		for {
			data, err := er.next()
			select {
			case events <- readResult{data: data, err: err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()

	var wait <-chan time.Time
	for {
		var ev readResult
		select {
		case ev = <-events:
		case <-wait:
			return st.end()
		case <-ctx.Done():
			return ctx.Err()
		}
		if ev.err != nil {
			if errors.Is(ev.err, io.EOF) || errors.Is(ev.err, errCut) {
				if st.done() {
					return st.end()
				}
				return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_stream_cut",
					"oci: the stream ended before its finish event")
			}
			return ev.err
		}
		if err := st.event(ev.data); err != nil {
			return err
		}
		if st.done() {
			if !st.includeUsage || st.usage != nil {
				return st.end()
			}
			if wait == nil {
				timer := time.NewTimer(st.usageWait)
				defer timer.Stop()
				wait = timer.C
			}
		}
	}
}

// done reports whether every choice has finished.
func (st *streamer) done() bool { return len(st.finished) >= st.choices }

// end sends the usage chunk when the client asked for one.
func (st *streamer) end() error {
	if !st.includeUsage {
		return nil
	}
	u := st.usage
	if u == nil {
		u = &openai.Usage{}
		u.Normalize()
	}
	return st.write(&openai.ChatChunk{Choices: []openai.ChunkChoice{}, Usage: u})
}

// event handles one event payload.
func (st *streamer) event(data []byte) error {
	var probe struct {
		Code    string `json:"code"`
		Message any    `json:"message"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return badUpstream("stream event is not JSON", err)
	}
	if msg, ok := probe.Message.(string); ok && probe.Code != "" {
		provider.Logger().Warn("oci: error event in stream", "code", probe.Code, "message", msg, "id", st.meta.id)
		return errorFor(0, probe.Code, msg)
	}
	if st.format == formatCohere {
		return st.cohereEvent(data)
	}
	return st.genericEvent(data)
}

// genericEvent handles a GENERIC stream event: text and tool-call
// fragments, a finish, or usage.
func (st *streamer) genericEvent(data []byte) error {
	var ev genericEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		return badUpstream("GENERIC stream event does not parse", err)
	}
	if ev.Usage != nil {
		st.usage = mapUsage(ev.Usage)
	}
	idx := 0
	if ev.Index != nil {
		idx = *ev.Index
	}
	if idx < 0 || idx >= st.choices {
		return badUpstream(fmt.Sprintf("stream event for choice %d of %d", idx, st.choices), nil)
	}
	if ev.Message == nil && ev.FinishReason == "" {
		return nil
	}
	if st.finished[idx] {
		if ev.Message != nil && (len(ev.Message.Content) > 0 || len(ev.Message.ToolCalls) > 0) {
			return badUpstream(fmt.Sprintf("content after the finish of choice %d", idx), nil)
		}
		return nil
	}
	if err := st.start(idx); err != nil {
		return err
	}
	if m := ev.Message; m != nil {
		for _, c := range m.Content {
			if c.Type == contentText && c.Text != nil && *c.Text != "" {
				if err := st.content(idx, *c.Text); err != nil {
					return err
				}
			}
		}
		for _, tc := range m.ToolCalls {
			if err := st.toolFragment(idx, tc); err != nil {
				return err
			}
		}
	}
	if ev.FinishReason != "" {
		cs := st.callsOf(idx)
		if cs.pendingArgs != "" || cs.pendingID != "" {
			return badUpstream("a streamed tool call never named its function", nil)
		}
		return st.finish(idx, genericFinish(ev.FinishReason, len(cs.ids) > 0))
	}
	return nil
}

// toolFragment handles one GENERIC tool-call fragment. Fragments carry
// no index: one with a function name starts a new call (unless it only
// repeats the current call's id), one without continues the current
// call's arguments. Calls without an id get a stable generated one.
func (st *streamer) toolFragment(idx int, tc genericToolCall) error {
	cs := st.callsOf(idx)
	n := len(cs.ids)
	startsNew := tc.Name != "" && (n == 0 || tc.ID == "" || tc.ID != cs.ids[n-1])
	if !startsNew {
		if n == 0 {
			if tc.ID != "" {
				cs.pendingID = tc.ID
			}
			cs.pendingArgs += tc.Arguments
			return nil
		}
		return st.toolArgs(idx, n-1, tc.Arguments)
	}
	id := tc.ID
	if id == "" {
		id = cs.pendingID
	}
	if id == "" {
		id = callID(st.meta.seed, st.callCount())
	}
	args := cs.pendingArgs + tc.Arguments
	cs.pendingID, cs.pendingArgs = "", ""
	cs.ids = append(cs.ids, id)
	i := len(cs.ids) - 1
	if err := st.write(st.chunk(idx, openai.Delta{ToolCalls: []openai.ToolCall{{Index: &i, ID: id, Type: "function",
		Function: openai.FunctionCall{Name: tc.Name, Arguments: ""}}}}, nil)); err != nil {
		return err
	}
	return st.toolArgs(idx, i, args)
}

// cohereEvent handles a COHERE stream event. Text events carry new text;
// the final event (with finishReason) restates the whole text and every
// tool call, so only what was not sent yet is emitted.
func (st *streamer) cohereEvent(data []byte) error {
	var ev cohereResponse
	if err := json.Unmarshal(data, &ev); err != nil {
		return badUpstream("COHERE stream event does not parse", err)
	}
	if ev.Usage != nil {
		st.usage = mapUsage(ev.Usage)
	}
	if st.finished[0] {
		return nil
	}
	if ev.FinishReason == "" && (ev.Text == nil || *ev.Text == "") && len(ev.ToolCalls) == 0 {
		return nil
	}
	if err := st.start(0); err != nil {
		return err
	}
	cs := st.callsOf(0)
	if ev.FinishReason == "" {
		if ev.Text != nil && *ev.Text != "" {
			if err := st.content(0, *ev.Text); err != nil {
				return err
			}
		}
		return st.cohereCalls(cs, ev.ToolCalls)
	}
	finish, ferr := cohereFinish(ev.FinishReason, len(cs.ids) > 0 || len(ev.ToolCalls) > 0, ev.ErrorMessage)
	if ferr != nil {
		return ferr
	}
	if ev.Text != nil && len(*ev.Text) > len(st.text) && (*ev.Text)[:len(st.text)] == st.text {
		if err := st.content(0, (*ev.Text)[len(st.text):]); err != nil {
			return err
		}
	}
	if len(ev.ToolCalls) > len(cs.ids) {
		if err := st.cohereCalls(cs, ev.ToolCalls[len(cs.ids):]); err != nil {
			return err
		}
	}
	return st.finish(0, finish)
}

// cohereCalls emits complete Cohere tool calls as new OpenAI calls.
func (st *streamer) cohereCalls(cs *callState, calls []cohereToolCall) error {
	for _, tc := range calls {
		if tc.Name == "" {
			return badUpstream("a streamed COHERE tool call has no name", nil)
		}
		i := len(cs.ids)
		id := callID(st.meta.seed, i)
		cs.ids = append(cs.ids, id)
		if err := st.write(st.chunk(0, openai.Delta{ToolCalls: []openai.ToolCall{{Index: &i, ID: id, Type: "function",
			Function: openai.FunctionCall{Name: tc.Name, Arguments: ""}}}}, nil)); err != nil {
			return err
		}
		if err := st.toolArgs(0, i, cohereArgs(tc.Parameters)); err != nil {
			return err
		}
	}
	return nil
}

func (st *streamer) callsOf(idx int) *callState {
	cs := st.calls[idx]
	if cs == nil {
		cs = &callState{}
		st.calls[idx] = cs
	}
	return cs
}

// callCount is the number of calls started over all choices, so that
// generated ids are unique within the response.
func (st *streamer) callCount() int {
	n := 0
	for _, cs := range st.calls {
		n += len(cs.ids)
	}
	return n
}

// start sends the role chunk the first time a choice has something.
func (st *streamer) start(idx int) error {
	if st.begun[idx] {
		return nil
	}
	st.begun[idx] = true
	return st.write(st.chunk(idx, openai.Delta{Role: openai.RoleAssistant}, nil))
}

func (st *streamer) content(idx int, s string) error {
	if idx == 0 {
		st.text += s
	}
	return st.write(st.chunk(idx, openai.Delta{Content: &s}, nil))
}

func (st *streamer) toolArgs(idx, i int, args string) error {
	if args == "" {
		return nil
	}
	return st.write(st.chunk(idx, openai.Delta{ToolCalls: []openai.ToolCall{{Index: &i, Function: openai.FunctionCall{Arguments: args}}}}, nil))
}

func (st *streamer) finish(idx int, reason string) error {
	st.finished[idx] = true
	return st.write(st.chunk(idx, openai.Delta{}, &reason))
}

func (st *streamer) chunk(idx int, d openai.Delta, finish *string) *openai.ChatChunk {
	return &openai.ChatChunk{Choices: []openai.ChunkChoice{{Index: idx, Delta: d, FinishReason: finish}}}
}

// write stamps c with the response's id, model and time and sends it.
func (st *streamer) write(c *openai.ChatChunk) error {
	c.ID, c.Object, c.Created, c.Model = st.meta.id, openai.ObjectChatChunk, st.meta.created, st.meta.model
	return provider.WriteChunk(st.w, c)
}
