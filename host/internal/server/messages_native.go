package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/inbound/messages"
	"github.com/llmproxy/llmproxy/host/internal/router"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// Kinds of targets that take a Messages request body natively.
const (
	nativeAnthropic = "anthropic" // POST /v1/messages of Anthropic's API
	nativeBedrock   = "bedrock"   // InvokeModel[WithResponseStream] of Claude on Bedrock
)

// nativeKind says how target t takes a Messages body as it is: an
// anthropic instance, or a bedrock instance serving a Claude model; ""
// when the request must be translated for it.
func (r *call) nativeKind(t router.Target, requested string) string {
	in := r.s.opts.Plugins.Get(t.Instance)
	if in == nil {
		return ""
	}
	switch in.Type {
	case "anthropic":
		return nativeAnthropic
	case "bedrock":
		m := t.Model
		if m == "" {
			m = requested
		}
		if strings.Contains(m, "anthropic.claude") {
			return nativeBedrock
		}
	}
	return ""
}

// native reports whether a Messages request for model on rt is served
// natively: every target of the route takes the body as it is (so that
// failover never lands on a target that would need the other path), and
// no middleware plugin applies to the key or the route (middleware reads
// chat completions bodies).
func (r *call) native(rt *router.Route, model string) bool {
	if r.s.opts.Middleware.For(r.keyName(), rt.Name, r.id, false) != nil {
		return false
	}
	for _, t := range rt.Targets {
		if r.nativeKind(t, model) == "" {
			return false
		}
	}
	return true
}

// maxNativeError bounds how much of an upstream error body is read.
const maxNativeError = 64 << 10

// messagesNative forwards a Messages request to Anthropic or to Claude on
// Bedrock without translating it, so that thinking blocks with their
// signatures, cache_control, citations and documents survive both ways.
// It runs through the same attempt loop as chat (key rights and limits,
// the route's plan, failover, retries, circuit breakers, instance limits,
// timeouts, telemetry, token limits settled with the usage the answer
// reports); the host's document resolver and middleware do not apply.
//
// path is messagesPath, or countTokensPath for anthropic targets only.
func (r *call) messagesNative(rt *router.Route, info messages.Info, path string) {
	p := &parsed{model: info.Model, stream: info.Stream, maxTokens: info.MaxTokens, streamOptions: true, chat: true}
	if !r.admit(p, rt) {
		return
	}
	ctx, cancel := r.context()
	ctx = r.startOp(ctx, "chat", p, rt)
	stop := r.watchClient(cancel)
	body := r.ctx.PostBody()
	version := string(r.ctx.Request.Header.Peek("anthropic-version"))
	beta := string(r.ctx.Request.Header.Peek("anthropic-beta"))
	var (
		st   *provider.PassthroughStream
		kind string
	)
	a, err := r.attempt(ctx, rt, info.Model, func(a *try, c *provider.Client, meta provider.Meta) error {
		kind = r.nativeKind(a.target, info.Model)
		model := meta.Model
		if model == "" {
			model = info.Model
		}
		req := &provider.PassthroughRequest{Meta: meta, Method: http.MethodPost, Header: http.Header{"Content-Type": {"application/json"}}}
		var err error
		switch kind {
		case nativeAnthropic:
			req.Path = path
			req.Body, err = messages.NativeBody(body, model)
			if version != "" {
				req.Header.Set("Anthropic-Version", version)
			}
			if beta != "" {
				req.Header.Set("Anthropic-Beta", beta)
			}
		case nativeBedrock:
			if path != messagesPath {
				return openai.NewError(http.StatusNotFound, openai.TypeNotFound, "count_tokens_unavailable",
					"count_tokens is offered only for models served by anthropic instances")
			}
			// The bedrock plugin relays the stream's events as SSE
			// when asked with Accept: text/event-stream.
			op, accept := "invoke", "application/json"
			if info.Stream {
				op, accept = "invoke-with-response-stream", "text/event-stream"
			}
			req.Path = "/model/" + strings.ReplaceAll(url.PathEscape(model), ":", "%3A") + "/" + op
			req.Header.Set("Accept", accept)
			req.Body, err = messages.BedrockBody(body, beta)
		default:
			return openai.NewError(http.StatusInternalServerError, openai.TypeServer, "internal_error",
				fmt.Sprintf("instance %s cannot serve the Messages API natively", a.target.Instance))
		}
		if err != nil {
			return openai.InvalidRequest("", err.Error())
		}
		s, err := c.Passthrough(a.ctx, req)
		if err != nil {
			return err
		}
		if s.Status >= 400 {
			return nativeFailure(s)
		}
		st = s
		return nil
	})
	if err != nil {
		stop()
		cancel()
		r.fail(err)
		return
	}
	h := &r.ctx.Response.Header
	for k, vs := range st.Header {
		if strings.HasPrefix(strings.ToLower(k), "anthropic-ratelimit-") {
			for _, v := range vs {
				h.Add(k, v)
			}
		}
	}
	r.limitHeaders()
	if !info.Stream {
		defer stop()
		defer cancel()
		b, err := readAll(st, 0)
		a.end()
		if err != nil {
			r.fail(err)
			return
		}
		r.ctx.SetContentType("application/json")
		r.ctx.SetBody(b)
		var m messages.Meter
		m.Body(b)
		r.op.Response(m.Chat())
		if path == countTokensPath {
			r.settle(0, true) // counting generates nothing
		} else {
			r.settle(m.Total())
		}
		r.op.End(http.StatusOK, nil)
		return
	}
	h.SetContentType("text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	id, log, op := r.id, r.s.log, r.op
	tickets := r.traffic.tickets
	r.traffic.tickets = nil
	r.setBodyStreamWriter(func(w *bufio.Writer) {
		var failed error
		defer func() { op.End(http.StatusOK, failed) }()
		var m messages.Meter
		defer func() {
			op.Response(m.Chat())
			used, known := m.Total()
			for _, t := range tickets {
				t.Done(used, known)
			}
		}()
		defer a.end()
		defer cancel()
		defer stop()
		err := relaySSE(w, st, &m)
		if err == io.EOF && !m.Ended() {
			err = openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_error",
				"the upstream stream ended before message_stop")
		}
		if err != nil && err != io.EOF {
			var wf *writeFailed
			if errors.As(err, &wf) {
				failed = context.Canceled
				log.Debug("client went away mid-stream", "request_id", id, "error", err)
				return
			}
			e := asAPIError(err)
			failed = e
			log.Error("native stream failed after it started", "request_id", id, "status", e.Status, "error", e.Message)
			if m.Pending() {
				// End the line the upstream cut, so that the error is
				// an event of its own.
				w.WriteString("\n\n")
			}
			w.Write(messages.StreamError(nil, e))
			w.Flush()
		}
	})
}

// writeFailed marks an error writing to the client.
type writeFailed struct{ err error }

func (e *writeFailed) Error() string { return e.err.Error() }

// relaySSE copies an Anthropic event stream (from Anthropic, or from Claude
// on Bedrock as the bedrock plugin relays it) to the client as it comes,
// and through m, which reads its usage.
func relaySSE(w *bufio.Writer, st *provider.PassthroughStream, m *messages.Meter) error {
	for {
		b, err := st.Recv()
		if err != nil {
			return err
		}
		m.Write(b)
		if _, err := w.Write(b); err != nil {
			return &writeFailed{err}
		}
		if err := w.Flush(); err != nil {
			return &writeFailed{err}
		}
	}
}

// readAll reads a passthrough stream to its end, up to limit bytes (0:
// no limit).
func readAll(st *provider.PassthroughStream, limit int) ([]byte, error) {
	var b bytes.Buffer
	for {
		chunk, err := st.Recv()
		if err == io.EOF {
			return b.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
		b.Write(chunk)
		if limit > 0 && b.Len() >= limit {
			return b.Bytes()[:limit], nil
		}
	}
}

// nativeFailure turns an upstream error answer into the error the
// attempt loop retries, fails over on, or shows the client.
func nativeFailure(st *provider.PassthroughStream) error {
	b, _ := readAll(st, maxNativeError)
	msg := messages.UpstreamMessage(b)
	if msg == "" {
		msg = fmt.Sprintf("the upstream answered %d %s", st.Status, http.StatusText(st.Status))
	}
	e := openai.NewError(st.Status, openai.TypeUpstream, "", msg)
	if v := firstHeader(st.Header, "Retry-After"); v != "" {
		if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
			e.RetryAfter = time.Duration(secs) * time.Second
		}
	}
	return e
}

func firstHeader(h map[string][]string, name string) string {
	for k, vs := range h {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}
