package server

import (
	"bufio"
	"context"
	"io"

	"github.com/llmproxy/llmproxy/host/internal/router"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

var (
	sseData = []byte("data: ")
	sseEnd  = []byte("\n\n")
	sseDone = []byte("data: [DONE]\n\n")
)

// stream runs a streamed chat request. Failover is possible until the first
// chunk arrives; after that the response has started and an error ends it
// with an SSE error event.
func (r *call) stream(ctx context.Context, cancel context.CancelFunc, rt *router.Route, model string, body []byte, docs []provider.Document) {
	var st *provider.ChunkStream
	var first []byte
	stop := r.watchClient(cancel)
	err := r.attempt(rt, model, func(c *provider.Client, meta provider.Meta) error {
		s, err := c.ChatCompletionStream(ctx, &provider.Request{Meta: meta, Body: body, Documents: docs})
		if err != nil {
			return err
		}
		b, err := s.Recv()
		if err != nil && err != io.EOF {
			return err
		}
		st, first = s, b
		return nil
	})
	if err != nil {
		stop()
		cancel()
		r.logError(err)
		writeError(r.ctx, err)
		return
	}
	h := &r.ctx.Response.Header
	for k, v := range st.Header() {
		h.Set(k, v)
	}
	h.SetContentType("text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	id := r.id
	log := r.s.log
	r.ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer cancel()
		defer stop()
		chunk := first
		for chunk != nil {
			w.Write(sseData)
			w.Write(chunk)
			w.Write(sseEnd)
			if err := w.Flush(); err != nil {
				log.Debug("client went away mid-stream", "request_id", id, "error", err)
				return
			}
			var err error
			chunk, err = st.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				e := asAPIError(err)
				log.Error("stream failed after it started", "request_id", id, "status", e.Status, "code", e.Code, "error", e.Message)
				w.Write(sseData)
				w.Write(e.JSON())
				w.Write(sseEnd)
				w.Flush()
				return
			}
		}
		w.Write(sseDone)
		w.Flush()
	})
}
