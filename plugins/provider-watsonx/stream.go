package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// idleTimeout ends a stream on which watsonx.ai has sent nothing for that
// long; streams have been seen to stall silently.
var idleTimeout = 2 * time.Minute

// ChatCompletionStream implements provider.Provider.
func (w *Watsonx) ChatCompletionStream(ctx context.Context, req *provider.Request, cw provider.ChunkWriter) error {
	s, err := w.settings()
	if err != nil {
		return err
	}
	chat, t, body, err := prepareChat(s, req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	resp, err := w.send(ctx, s, http.MethodPost, t.chatPath(true), nil, body, true)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "invalid_upstream_response",
			fmt.Sprintf("watsonx: a stream request was answered with content type %q", ct))
	}
	if err := provider.StreamHeader(cw, relayHeaders(resp.Header)); err != nil {
		return err
	}
	st := newStreamer(cw, chat.Model, chat.IncludeUsage(), w.clock())
	idle := &idleReader{r: resp.Body, timeout: idleTimeout, cancel: cancel}
	defer idle.stop()
	err = st.run(newEventReader(idle))
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errIdle) {
			return streamBroken(fmt.Sprintf("no data for %s", idleTimeout))
		}
		return transportError(ctx, err)
	}
	return nil
}

// errIdle is the cancellation cause of a stalled stream.
var errIdle = errors.New("watsonx stream idle")

// idleReader cancels the request when a read waits longer than timeout.
type idleReader struct {
	r       io.Reader
	timeout time.Duration
	cancel  context.CancelCauseFunc
	once    sync.Once
	timer   *time.Timer
}

func (ir *idleReader) Read(p []byte) (int, error) {
	ir.once.Do(func() { ir.timer = time.AfterFunc(ir.timeout, func() { ir.cancel(errIdle) }) })
	ir.timer.Reset(ir.timeout)
	n, err := ir.r.Read(p)
	if err != nil {
		ir.timer.Stop()
	}
	return n, err
}

// stop disarms the timer once the stream is over.
func (ir *idleReader) stop() {
	if ir.timer != nil {
		ir.timer.Stop()
	}
}

// choiceState is what a streamer remembers about one choice.
type choiceState struct {
	started bool
	// content says whether any text was relayed.
	content bool
	// calls maps the upstream tool-call key to the dense index relayed.
	calls map[string]int
	// lastCall is the key of the most recent call, for fragments without
	// an index or id.
	lastCall string
	finish   string
}

// streamer turns watsonx.ai chat_stream events into OpenAI chunks: one
// id, created and model throughout; a role chunk first; text and
// tool-call fragments as they arrive, tool calls grouped by index with
// the id and name on the first fragment; then one finishing chunk per
// choice with an empty delta, and the usage chunk when the client asked
// for one. The stream ends at [DONE], at the end of the body, or as soon
// as every choice has finished and usage has arrived.
type streamer struct {
	w            provider.ChunkWriter
	model        string
	includeUsage bool
	now          time.Time

	started bool
	id      string
	created int64
	choices map[int]*choiceState
	// index maps watsonx.ai's choice index to the one relayed.
	index map[int]int
	usage *usage
	// writeErr is the host's error from WriteChunk, returned unchanged.
	writeErr error
}

func newStreamer(w provider.ChunkWriter, model string, includeUsage bool, now time.Time) *streamer {
	return &streamer{w: w, model: model, includeUsage: includeUsage, now: now, choices: map[int]*choiceState{}, index: map[int]int{}}
}

// errDone ends the event loop early.
var errDone = errors.New("stream done")

// run relays the events of er until the stream is complete.
func (st *streamer) run(er *eventReader) error {
	for {
		ev, err := er.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if st.writeErr != nil {
				return st.writeErr
			}
			var oe *openai.Error
			if errors.As(err, &oe) {
				return err
			}
			return streamBroken(fmt.Sprintf("the stream broke off: %v", err))
		}
		err = st.event(ev)
		if errors.Is(err, errDone) {
			break
		}
		if err != nil {
			if st.writeErr != nil {
				return st.writeErr
			}
			return err
		}
	}
	return st.finish()
}

// event handles one server-sent event.
func (st *streamer) event(ev event) error {
	data := bytes.TrimSpace(ev.data)
	if len(data) == 0 {
		if ev.name == "error" {
			return errorFor(upstreamError{msg: "the stream ended with an error event"})
		}
		return nil
	}
	if string(data) == "[DONE]" {
		return errDone
	}
	var ch chatChunk
	if err := json.Unmarshal(data, &ch); err != nil {
		if ev.partial {
			return streamBroken("the stream ended in the middle of an event")
		}
		return streamBroken("an event is not JSON: " + err.Error())
	}
	if ev.name == "error" || len(ch.Errors) > 0 {
		ue := upstreamError{status: ch.StatusCode, msg: "the stream ended with an error event"}
		if len(ch.Errors) > 0 {
			ue.code, ue.msg = ch.Errors[0].Code, ch.Errors[0].Message
		}
		if ue.status >= 400 && ue.status < 500 && ue.status != http.StatusTooManyRequests {
			// A request error after the stream started is the
			// upstream's failure, not the client's.
			ue.status = http.StatusBadGateway
		}
		return errorFor(ue)
	}
	if !st.started {
		st.started = true
		st.id = responseID(ch.ID, st.now)
		st.created = ch.Created
		if st.created == 0 {
			st.created = st.now.Unix()
		}
		st.model = responseModel(ch.Model, ch.ModelID, st.model)
	}
	if ch.Usage != nil {
		u := *ch.Usage
		st.usage = &u
	}
	for _, c := range ch.Choices {
		// Choices are numbered densely in order of first appearance.
		idx, ok := st.index[c.Index]
		if !ok {
			if len(st.index) >= maxChoices {
				return streamBroken(fmt.Sprintf("the stream has more than %d choices", maxChoices))
			}
			idx = len(st.index)
			st.index[c.Index] = idx
			st.choices[idx] = &choiceState{calls: map[string]int{}}
		}
		cs := st.choices[idx]
		if cs.finish != "" {
			continue
		}
		if !cs.started {
			cs.started = true
			if err := st.write(idx, openai.Delta{Role: openai.RoleAssistant}, nil); err != nil {
				return err
			}
		}
		d := c.Delta
		if d.Content != nil && *d.Content != "" {
			cs.content = true
			if err := st.writeLogprobs(idx, openai.Delta{Content: d.Content}, c.Logprobs); err != nil {
				return err
			}
		}
		if d.Refusal != nil && *d.Refusal != "" {
			if err := st.write(idx, openai.Delta{Refusal: d.Refusal}, nil); err != nil {
				return err
			}
		}
		if len(d.ToolCalls) > 0 {
			calls, err := st.toolFragments(idx, cs, d.ToolCalls)
			if err != nil {
				return err
			}
			if len(calls) > 0 {
				if err := st.write(idx, openai.Delta{ToolCalls: calls}, nil); err != nil {
					return err
				}
			}
		}
		if c.FinishReason != nil && *c.FinishReason != "" {
			cs.finish = *c.FinishReason
		}
	}
	if st.usage != nil && st.allFinished() {
		return errDone
	}
	return nil
}

// toolFragments maps the tool-call fragments of one delta. Calls are
// keyed by watsonx.ai's index (by id, or the previous call, when a model
// leaves the index out) and renumbered densely from 0 in order of first
// appearance; a call's first fragment carries its id (made up when the
// model gave none), type and name, later ones only arguments.
func (st *streamer) toolFragments(choice int, cs *choiceState, frags []toolCall) ([]openai.ToolCall, error) {
	var out []openai.ToolCall
	for _, f := range frags {
		key := ""
		switch {
		case f.Index != nil:
			key = fmt.Sprintf("i%d", *f.Index)
		case f.ID != "":
			key = "id:" + f.ID
		case f.Function.Name == "":
			// An arguments-only fragment continues the current call; a
			// named one without index or id starts the next.
			key = cs.lastCall
		}
		if key == "" {
			key = fmt.Sprintf("n%d", len(cs.calls))
		}
		idx, known := cs.calls[key]
		if !known {
			if f.Function.Name == "" {
				return nil, streamBroken("a tool call starts without a function name")
			}
			idx = len(cs.calls)
			cs.calls[key] = idx
			cs.lastCall = key
			i := idx
			out = append(out, openai.ToolCall{Index: &i, ID: callID(f.ID, st.id, choice, idx), Type: "function",
				Function: openai.FunctionCall{Name: f.Function.Name, Arguments: f.Function.Arguments}})
			continue
		}
		cs.lastCall = key
		if f.Function.Arguments == "" {
			continue
		}
		i := idx
		out = append(out, openai.ToolCall{Index: &i, Function: openai.FunctionCall{Arguments: f.Function.Arguments}})
	}
	return out, nil
}

func (st *streamer) allFinished() bool {
	if len(st.choices) == 0 {
		return false
	}
	for _, cs := range st.choices {
		if cs.finish == "" {
			return false
		}
	}
	return true
}

// finish writes the finishing chunks once the upstream stream is over.
func (st *streamer) finish() error {
	if !st.allFinished() {
		return streamBroken("the stream ended before a finish_reason")
	}
	idx := make([]int, 0, len(st.choices))
	for i := range st.choices {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		cs := st.choices[i]
		if !cs.content && len(cs.calls) == 0 {
			empty := ""
			if err := st.write(i, openai.Delta{Content: &empty}, nil); err != nil {
				return err
			}
		}
		reason := finishReason(cs.finish, len(cs.calls) > 0)
		if err := st.write(i, openai.Delta{}, &reason); err != nil {
			return err
		}
	}
	if st.includeUsage && st.usage != nil {
		c := openai.ChatChunk{ID: st.id, Object: openai.ObjectChatChunk, Created: st.created, Model: st.model,
			Choices: []openai.ChunkChoice{}, Usage: openaiUsage(st.usage)}
		if err := st.send(&c); err != nil {
			return err
		}
	}
	return nil
}

// writeLogprobs sends a content chunk with the token log probabilities
// that came with it, when the client asked for them.
func (st *streamer) writeLogprobs(choice int, d openai.Delta, logprobs json.RawMessage) error {
	c := openai.ChatChunk{ID: st.id, Object: openai.ObjectChatChunk, Created: st.created, Model: st.model,
		Choices: []openai.ChunkChoice{{Index: choice, Delta: d}}}
	if len(logprobs) > 0 && string(logprobs) != "null" {
		c.Choices[0].Logprobs = logprobs
	}
	return st.send(&c)
}

// write sends one chunk with one choice.
func (st *streamer) write(choice int, d openai.Delta, finish *string) error {
	c := openai.ChatChunk{ID: st.id, Object: openai.ObjectChatChunk, Created: st.created, Model: st.model,
		Choices: []openai.ChunkChoice{{Index: choice, Delta: d, FinishReason: finish}}}
	return st.send(&c)
}

func (st *streamer) send(c *openai.ChatChunk) error {
	b, err := marshal(c)
	if err != nil {
		return fmt.Errorf("watsonx: encode chunk: %w", err)
	}
	if err := st.w.WriteChunk(b); err != nil {
		st.writeErr = err
		return err
	}
	return nil
}
