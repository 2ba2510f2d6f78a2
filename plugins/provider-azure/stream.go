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
	"strings"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// maxEvent caps one SSE event from Azure.
const maxEvent = 16 << 20

// ChatCompletionStream implements provider.Provider.
func (a *Azure) ChatCompletionStream(ctx context.Context, req *provider.Request, w provider.ChunkWriter) error {
	in, err := a.instance()
	if err != nil {
		return err
	}
	chat, err := req.Chat()
	if err != nil {
		return err
	}
	body, err := upstreamChatBody(req, chat, in.documents, true)
	if err != nil {
		return err
	}
	resp, err := in.send(ctx, http.MethodPost, in.deploymentURL(chat.Model, "chat/completions"), body, true)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "bad_upstream_response",
			fmt.Sprintf("azure answered a stream request with content type %q", ct))
	}
	r := &chunkRelay{w: w, includeUsage: chat.IncludeUsage(), finished: map[int]bool{}}
	if err := r.run(resp.Body); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return nil
}

// chunkRelay turns Azure's SSE events into OpenAI chunks: it drops the
// filter-only chunks (empty choices without usage, choices without a
// delta), strips filter annotations, keeps id/created/model identical in
// every chunk, forwards the usage chunk only when the client asked for it,
// and turns an error event or a stream that stops before [DONE] into an
// *openai.Error.
type chunkRelay struct {
	w            provider.ChunkWriter
	includeUsage bool

	started  bool
	id       json.RawMessage
	created  json.RawMessage
	model    json.RawMessage
	finished map[int]bool
	// writeErr is the host's error from WriteChunk, returned unchanged.
	writeErr error
}

// errStreamDone ends the event loop at [DONE].
var errStreamDone = errors.New("stream done")

func (r *chunkRelay) run(body io.Reader) error {
	err := readEvents(body, r.event)
	switch {
	case r.writeErr != nil:
		return r.writeErr
	case errors.Is(err, errStreamDone):
	case err == nil:
		return streamBroken("azure stream ended before [DONE]")
	default:
		var oe *openai.Error
		if errors.As(err, &oe) {
			return err
		}
		return streamBroken(fmt.Sprintf("azure stream broke off: %v", transportCause(err)))
	}
	if len(r.finished) == 0 {
		return streamBroken("azure stream ended without a finish_reason")
	}
	return nil
}

func streamBroken(msg string) *openai.Error {
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "stream_interrupted", msg)
}

// chunkView is the part of a chunk the relay decides on.
type chunkView struct {
	Choices []struct {
		Index        int             `json:"index"`
		FinishReason *string         `json:"finish_reason"`
		Delta        json.RawMessage `json:"delta"`
	} `json:"choices"`
	Usage json.RawMessage `json:"usage"`
}

// event handles the data of one SSE event.
func (r *chunkRelay) event(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil
	}
	if string(data) == "[DONE]" {
		return errStreamDone
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return streamBroken("azure sent a stream event that is not JSON: " + err.Error())
	}
	if e, ok := top["error"]; ok && string(e) != "null" {
		oe := upstreamError(http.StatusBadGateway, nil, data)
		if oe.Type == openai.TypeInvalidRequest && oe.Code != CodeContentFilter {
			oe.Type = openai.TypeUpstream
		}
		return oe
	}
	var view chunkView
	if err := json.Unmarshal(data, &view); err != nil {
		return streamBroken("azure sent a malformed chunk: " + err.Error())
	}
	hasUsage := len(view.Usage) > 0 && string(view.Usage) != "null"
	choices, err := cleanChoices(top["choices"], true)
	if err != nil {
		return err
	}
	empty := string(choices) == "[]"
	switch {
	case empty && !hasUsage:
		// prompt_filter_results or annotation-only chunk.
		return nil
	case empty && hasUsage && !r.includeUsage:
		return nil
	}
	for _, c := range view.Choices {
		if len(c.Delta) > 0 && string(c.Delta) != "null" && c.FinishReason != nil && *c.FinishReason != "" {
			r.finished[c.Index] = true
		}
	}
	for _, k := range topFilterKeys {
		delete(top, k)
	}
	if !r.includeUsage {
		delete(top, "usage")
	}
	top["choices"] = choices
	top["object"], _ = json.Marshal(openai.ObjectChatChunk)
	if !r.started {
		r.started = true
		r.id, r.created, r.model = top["id"], top["created"], top["model"]
	} else {
		top["id"], top["created"], top["model"] = r.id, r.created, r.model
	}
	out, err := marshal(top)
	if err != nil {
		return err
	}
	if err := r.w.WriteChunk(out); err != nil {
		r.writeErr = err
		return err
	}
	return nil
}

// readEvents reads server-sent events from body and calls fn with the data
// of each one (data lines joined by "\n"). It stops at the first error fn
// returns, and returns nil at the end of body.
func readEvents(body io.Reader, fn func([]byte) error) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), maxEvent)
	var data []byte
	has := false
	for sc.Scan() {
		line := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
		if len(line) == 0 {
			if has {
				if err := fn(data); err != nil {
					return err
				}
			}
			data, has = data[:0], false
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		if string(field) != "data" {
			continue
		}
		value = bytes.TrimPrefix(value, []byte(" "))
		if has {
			data = append(data, '\n')
		}
		data = append(data, value...)
		has = true
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return streamBroken(fmt.Sprintf("azure sent a stream event over %d bytes", maxEvent))
		}
		return err
	}
	if has {
		// A final event without its blank line still counts ([DONE] is
		// sometimes the last bytes of the body).
		return fn(data)
	}
	return nil
}
