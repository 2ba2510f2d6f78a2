package server

import (
	"bufio"
	"context"
	"crypto/sha256"
	"net/http"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/cache"
	"github.com/llmproxy/llmproxy/host/internal/router"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// cached is a chat request's dealings with the response cache: the key
// its answer is kept under, for how long, and the chunks of a streamed
// answer as they go out.
type cached struct {
	x      *cache.Cache
	key    string
	ttl    time.Duration
	chunks [][]byte
}

// cacheLookup looks the request up in the response cache, once it has
// passed auth, rights, limits, document resolution and the request
// middleware. On a hit it serves the cached answer and reports true. On a
// miss it leaves r.cache set when the answer may be stored.
func (r *call) cacheLookup(ctx context.Context, p *parsed, rt *router.Route, body []byte, docs []provider.Document) bool {
	x := r.s.opts.Cache
	if x == nil {
		return false
	}
	rule, ok := r.g.Cache.For(rt.Name, r.key != nil && r.key.Cache)
	if !ok {
		return false
	}
	h := &r.ctx.Response.Header
	dir := cache.ParseCacheControl(string(r.ctx.Request.Header.Peek("Cache-Control")))
	if dir == cache.Skip || p.stream && !rule.StreamsWithTools && cache.HasTools(body) {
		x.Count(cache.Bypass)
		h.Set(cache.Header, string(cache.Bypass))
		return false
	}
	req := &cache.Request{Body: body, Stream: p.stream, Route: rt.Name}
	for _, t := range rt.Targets {
		req.Targets = append(req.Targets, cache.Target{Instance: t.Instance, Model: t.Model})
	}
	for _, d := range docs {
		sum := sha256.New()
		sum.Write([]byte(d.MIMEType + "\x00" + d.Name + "\x00"))
		sum.Write(d.Data)
		sum.Write([]byte("\x00" + d.Text))
		req.Documents = append(req.Documents, sum.Sum(nil))
	}
	key, err := cache.Key(req)
	if err != nil {
		x.Count(cache.Bypass)
		h.Set(cache.Header, string(cache.Bypass))
		return false
	}
	if dir == cache.Use {
		e, err := x.Get(ctx, key)
		if err != nil {
			r.s.log.Warn("response cache lookup failed; serving a miss", "request_id", r.id, "error", err)
		}
		if e != nil && (p.stream == (e.Chunks != nil)) {
			x.Count(cache.Hit)
			h.Set(cache.Header, string(cache.Hit))
			r.serveCached(e, p.stream)
			return true
		}
	}
	x.Count(cache.Miss)
	h.Set(cache.Header, string(cache.Miss))
	r.cache = &cached{x: x, key: key, ttl: rule.TTL}
	return false
}

// cacheInstance is the instance name of the usage record of a hit: no
// instance was called.
const cacheInstance = "(cache)"

// serveCached answers with a cached entry, in the API the client called.
// The request's limits are settled with no tokens and its usage is
// recorded without tokens or cost: no provider was called, so a budget
// reservation is released in full.
func (r *call) serveCached(e *cache.Entry, stream bool) {
	r.settle(0, true)
	r.settleSpend(0)
	r.limitHeaders()
	if !stream {
		body := e.Body
		if r.out != nil {
			b, err := r.out.Response(body)
			if err != nil {
				r.logError(err)
				writeError(r.ctx, err)
				r.op.End(r.ctx.Response.StatusCode(), err)
				r.recordUsage(r.ctx.Response.StatusCode(), cacheInstance, nil, 0)
				return
			}
			body = b
		}
		r.op.Response(e.Body)
		r.op.End(http.StatusOK, nil)
		r.ctx.SetContentType("application/json")
		r.ctx.SetBody(body)
		r.recordUsage(http.StatusOK, cacheInstance, nil, 0)
		return
	}
	h := &r.ctx.Response.Header
	h.SetContentType("text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	op := r.op
	out := r.out
	r.setBodyStreamWriter(func(w *bufio.Writer) {
		// The replay writes without pauses; the keepalive writer is used
		// for its framing in the client's API.
		k := startKeepalive(w, time.Hour)
		k.out = out
		defer k.stop()
		var failed error
		defer func() {
			op.End(http.StatusOK, failed)
			r.recordUsage(http.StatusOK, cacheInstance, nil, 0)
		}()
		for i, c := range e.Chunks {
			op.Chunk(c)
			if err := k.event(c, i == len(e.Chunks)-1); err != nil {
				failed = context.Canceled
				return
			}
		}
		k.end()
	})
}

// keep stores a JSON answer; a failure is logged, never the client's
// problem.
func (c *cached) keep(r *call, body []byte) {
	if c == nil {
		return
	}
	c.put(r, &cache.Entry{Body: append([]byte(nil), body...)})
}

// chunk records one chunk of a streamed answer as it goes out.
func (c *cached) chunk(b []byte) {
	if c != nil {
		c.chunks = append(c.chunks, append([]byte(nil), b...))
	}
}

// keepStream stores a streamed answer that ended well, before its final
// [DONE] goes out, so that a client that sends the same request again as
// soon as it has read the stream finds it.
func (c *cached) keepStream(r *call) {
	if c == nil {
		return
	}
	chunks := c.chunks
	if chunks == nil {
		chunks = [][]byte{}
	}
	c.put(r, &cache.Entry{Chunks: chunks})
}

func (c *cached) put(r *call, e *cache.Entry) {
	if err := c.x.Put(context.Background(), c.key, e, c.ttl); err != nil {
		r.s.log.Warn("storing an answer in the response cache failed", "request_id", r.id, "error", err)
	}
}
