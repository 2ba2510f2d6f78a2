package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/router"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

var (
	sseDone      = []byte("data: [DONE]\n\n")
	sseKeepalive = []byte(": keepalive\n\n")
)

// received is the result of one Recv of a chunk stream.
type received struct {
	chunk []byte
	err   error
}

// stream runs a streamed chat request. Failover is possible until the first
// chunk arrives or until the target's stream_keepalive passes without one,
// whichever is first; in the second case the response starts with an SSE
// comment and carries on with one per stream_keepalive of silence, so that
// proxies on the way do not cut a model that thinks for long. After the
// response has started, an error ends it with an SSE error event.
func (r *call) stream(ctx context.Context, cancel context.CancelFunc, rt *router.Route, model string, body []byte, docs []provider.Document) {
	var (
		st      *provider.ChunkStream
		first   received
		pending chan received // set when the response starts before the first chunk
	)
	stop := r.watchClient(cancel)
	a, err := r.attempt(ctx, rt, model, func(a *try, c *provider.Client, meta provider.Meta) error {
		var s *provider.ChunkStream
		var err error
		if pc := r.plannedCall(a, c, &meta, provider.OpChat, docs); pc != nil {
			s, err = pc.stream(a, body, &meta)
		} else {
			s, err = c.ChatCompletionStream(a.ctx, &provider.Request{Meta: meta, Body: body, Documents: docs})
		}
		if err != nil {
			return err
		}
		if s.More() {
			// The first event is already read (it came with the
			// answer's header, as from a quick upstream): take it here
			// rather than wait for it on another goroutine.
			b, err := s.Recv()
			if err != nil && err != io.EOF {
				return err
			}
			st, first = s, received{b, err}
			return nil
		}
		ch := make(chan received, 1)
		go func() {
			b, err := s.Recv()
			ch <- received{b, err}
		}()
		wait := time.NewTimer(a.target.Bounds.StreamKeepalive)
		defer wait.Stop()
		select {
		case res := <-ch:
			if res.err != nil && res.err != io.EOF {
				return res.err
			}
			st, first = s, res
		case <-wait.C:
			st, pending = s, ch
		}
		return nil
	})
	if err != nil {
		stop()
		cancel()
		r.fail(err)
		instance := ""
		if a != nil {
			instance = a.target.Instance
		}
		r.recordUsage(r.ctx.Response.StatusCode(), instance, nil, 0)
		return
	}
	h := &r.ctx.Response.Header
	if pending == nil {
		// Headers the plugin relayed arrive before the first chunk; when
		// the response starts without one they are still being read.
		for k, v := range st.Header() {
			h.Set(k, v)
		}
	}
	r.limitHeaders()
	h.SetContentType("text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	id := r.id
	log := r.s.log
	op := r.op
	out := r.out
	// The stream's limits are settled with the usage chunk when the
	// stream has one, else with an estimate from its chunks.
	m := &meter{prompt: r.traffic.est.Prompt}
	r.traffic.spend.servedBy(r.s, model, a.target)
	ss := r.takeStreamSpend()
	key := r.keyName()
	access := r.s.opts.AccessLog
	strip := r.traffic.injectUsage
	tickets := r.traffic.tickets
	r.traffic.tickets = nil
	rec := r.cache
	r.setBodyStreamWriter(func(w *bufio.Writer) {
		var (
			failed error
			cost   float64
		)
		defer func() { op.End(http.StatusOK, failed) }()
		defer func() {
			// The client got 200; a stream that failed after it started
			// is recorded with the status of its error event.
			status := http.StatusOK
			if failed != nil {
				status = asAPIError(failed).Status
			}
			r.recordUsage(status, a.target.Instance, m.raw, cost)
		}()
		defer func() {
			for _, t := range tickets {
				t.Done(m.used(), true)
			}
			var known bool
			cost, known = ss.done(m)
			if access && ss.priced {
				log.Info("stream settled", "request_id", id, "key", key, "cost_usd", cost, "usage_reported", known)
			}
		}()
		defer a.end()
		defer cancel()
		defer stop()
		k := startKeepalive(w, a.target.Bounds.StreamKeepalive)
		k.out = out
		defer k.stop()
		res := first
		if pending != nil {
			log.Debug("no first chunk yet; the response starts with keepalives", "request_id", id,
				"instance", a.target.Instance, "after", a.target.Bounds.StreamKeepalive)
			if k.comment() != nil {
				return
			}
			res = <-pending
		}
		chunk, err := res.chunk, res.err
		for err == nil && chunk != nil {
			op.Chunk(chunk)
			if m.observe(chunk) && strip {
				// The usage chunk the gateway asked for, not the client.
				ss.observe(chunk)
				chunk, err = st.Recv()
				continue
			}
			chunk = ss.observe(chunk)
			if chunk, err = r.mw.Chunk(ctx, chunk); err != nil {
				e := asAPIError(err)
				log.Error("middleware ended the stream", "request_id", id, "status", e.Status, "code", e.Code, "error", e.Message)
				failed = e
				a.span.Fail(e)
				k.fail(e)
				return
			}
			if len(chunk) == 0 {
				chunk, err = st.Recv()
				continue
			}
			// A chunk the plugin has already sent the next one after is
			// held in the buffer and goes out with it.
			if werr := k.event(chunk, !st.More()); werr != nil {
				log.Debug("client went away mid-stream", "request_id", id, "error", werr)
				failed = context.Canceled
				a.span.Fail(failed)
				return
			}
			rec.chunk(chunk)
			chunk, err = st.Recv()
		}
		if err != nil && err != io.EOF {
			e := asAPIError(err)
			if errors.Is(context.Cause(ctx), ErrShuttingDown) {
				log.Warn("stream cut by the shutdown", "request_id", id, "instance", a.target.Instance)
				k.fail(shutdownError())
				return
			}
			if e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden {
				log.Error("the upstream rejected the instance's credentials", "request_id", id,
					"instance", a.target.Instance, "status", e.Status, "code", e.Code, "detail", e.Message)
				a.in.UpstreamRejectedCredentials()
				e = upstreamAuthFailed()
			}
			log.Error("stream failed after it started", "request_id", id, "status", e.Status, "code", e.Code, "error", e.Message)
			failed = e
			a.span.Fail(e)
			k.fail(e)
			return
		}
		rec.keepStream(r)
		k.end()
	})
}

// keepalive writes a stream's events and, whenever the stream has been
// silent for a period, an SSE comment. Writes are serialised: the comments
// come from a timer.
type keepalive struct {
	mu     sync.Mutex
	w      *bufio.Writer
	every  time.Duration
	t      *time.Timer
	buf    []byte
	err    error
	closed bool
	// out converts the events to the client's API; nil writes OpenAI
	// chat completion chunks.
	out dialect
}

func startKeepalive(w *bufio.Writer, every time.Duration) *keepalive {
	k := &keepalive{w: w, every: every}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.t = time.AfterFunc(every, k.fire)
	return k
}

func (k *keepalive) fire() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed || k.err != nil {
		return
	}
	k.writeLocked(sseKeepalive, true)
}

// writeLocked writes b, flushes it when flush is set, and schedules the
// next comment.
func (k *keepalive) writeLocked(b []byte, flush bool) error {
	if k.err != nil {
		return k.err
	}
	_, k.err = k.w.Write(b)
	if flush && k.err == nil {
		k.err = k.w.Flush()
	}
	if k.err == nil && !k.closed {
		k.t.Reset(k.every)
	}
	return k.err
}

// comment writes a keepalive comment now.
func (k *keepalive) comment() error { return k.raw(sseKeepalive) }

// event writes chunk as one SSE event (see appendEvent), flushed unless
// flush is false because another event follows at once.
func (k *keepalive) event(chunk []byte, flush bool) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.out == nil {
		k.buf = appendEvent(k.buf[:0], chunk)
		return k.writeLocked(k.buf, flush)
	}
	var err error
	if k.buf, err = k.out.Events(k.buf[:0], chunk); err != nil {
		k.buf = k.out.StreamError(k.buf[:0], asAPIError(err))
		k.writeLocked(k.buf, true)
		return err
	}
	if len(k.buf) == 0 {
		return k.err
	}
	return k.writeLocked(k.buf, flush)
}

// fail writes e as the stream's last event.
func (k *keepalive) fail(e *openai.Error) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.out == nil {
		k.buf = appendEvent(k.buf[:0], e.JSON())
	} else {
		k.buf = k.out.StreamError(k.buf[:0], e)
	}
	return k.writeLocked(k.buf, true)
}

// end writes the events that close a stream that ended well.
func (k *keepalive) end() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.out == nil {
		return k.writeLocked(sseDone, true)
	}
	k.buf = k.out.End(k.buf[:0])
	return k.writeLocked(k.buf, true)
}

// raw writes b as it is.
func (k *keepalive) raw(b []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.writeLocked(b, true)
}

// stop ends the comments; call it before the writer goes away.
func (k *keepalive) stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed = true
	k.t.Stop()
}
