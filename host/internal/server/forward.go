package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/relay"
)

// Calls on a forwarding plan (see provider.Planner and docs/design.md,
// "The forwarding plan"). A plugin that announces a plan hands the host
// the upstream URL of each operation, the headers to add and the names of
// the model rewrite and error mapping; the host then sends the call to
// the upstream itself with the pooled client of sdk/relay and relays the
// answer's bytes, instead of calling the plugin. Everything around the
// call is the served path's: the attempt loop (retries, failover,
// per-attempt timeouts, circuit breaking, 401 re-resolution), the
// middleware, writeResponse and the stream writer, usage settlement and
// telemetry. Only the hop changes: the plugin's call is replaced by the
// upstream's.
//
// The host falls back to calling the plugin for anything the plan does
// not cover: no plan (not announced, refused, failed, expired), an
// operation the plan does not list, chat requests with documents, a
// non-streamed chat request that carries stream_options, an upstream
// that a proxy from the environment applies to, and every call while the
// host traces, so that a trace shows the plugin's span and its upstream
// HTTP client span as before.

// forwardPool is the host's one pool of upstream connections for planned
// calls.
var forwardPool = relay.SharedPool()

// userAgent identifies the host to upstreams on planned calls.
const userAgent = "llmproxy"

// forwarder keeps, per instance, the origins of the instance's current
// plan, so that a call does not resolve them again.
type forwarder struct {
	mu    sync.Mutex
	plans map[string]*route
}

// route is a plan with the origins and URIs of its operations resolved
// and its relayed headers listed, so that a call reads them as they are.
type route struct {
	plan *provider.Plan
	ops  map[string]endpointOf
	// relayed maps the lower-case names of the relayed upstream headers
	// to the names the client sees; maxKey is the longest.
	relayed map[string]string
	maxKey  int
}

// endpointOf is where a planned operation is sent.
type endpointOf struct {
	origin relay.Origin
	uri    string
}

// routeOf returns the resolved route of plan p of instance, resolving it
// when p is new.
func (f *forwarder) routeOf(instance string, p *provider.Plan) *route {
	f.mu.Lock()
	defer f.mu.Unlock()
	if rt := f.plans[instance]; rt != nil && rt.plan == p {
		return rt
	}
	rt := &route{plan: p, ops: map[string]endpointOf{}}
	for _, op := range []string{provider.OpChat, provider.OpEmbeddings} {
		if u, ok := p.URL(op); ok {
			if o, ok := relay.OriginOf(u); ok {
				rt.ops[op] = endpointOf{origin: o, uri: u.String()}
			}
		}
	}
	rt.relayed = make(map[string]string, len(p.RelayedHeaders))
	for k, name := range p.RelayedHeaders {
		rt.relayed[strings.ToLower(k)] = name
		rt.maxKey = max(rt.maxKey, len(k))
	}
	if f.plans == nil {
		f.plans = map[string]*route{}
	}
	f.plans[instance] = rt
	return rt
}

// planned is one planned call: the plan's route and the operation.
type planned struct {
	rt     *route
	op     string
	origin relay.Origin
	uri    string
}

// plannedCall returns how to forward operation op of the attempt a on
// the instance's plan, or nil when the plugin must serve it.
func (r *call) plannedCall(a *try, c *provider.Client, meta *provider.Meta, op string, docs []provider.Document) *planned {
	if len(docs) > 0 || len(meta.Trace) > 0 {
		return nil
	}
	p := c.Plan()
	if p == nil {
		return nil
	}
	rt := r.s.fwd.routeOf(a.target.Instance, p)
	e, ok := rt.ops[op]
	if !ok {
		return nil
	}
	return &planned{rt: rt, op: op, origin: e.origin, uri: e.uri}
}

// request fills req with the upstream request for body: the plan's
// headers and the body with the routed model of meta.
func (pc *planned) request(req *fasthttp.Request, body []byte, meta *provider.Meta, accept string) error {
	p := pc.rt.plan
	if p.ModelRewrite == provider.RewriteModel {
		var err error
		if body, err = relay.SetModel(body, meta.Model); err != nil {
			return openai.InvalidRequest("model", err.Error())
		}
	}
	req.SetRequestURI(pc.uri)
	req.Header.SetMethod(http.MethodPost)
	req.Header.DisableNormalizing()
	for _, h := range p.HeaderList() {
		req.Header.Set(h[0], h[1])
	}
	req.Header.Set("Accept", accept)
	req.Header.SetUserAgent(userAgent)
	req.Header.SetContentType("application/json")
	req.SetBodyRaw(body)
	return nil
}

// relayed picks the headers the plan relays out of resp, in one pass
// over its headers (the first value of a repeated one); nil when there
// are none.
func (pc *planned) relayed(resp *fasthttp.Response) map[string]string {
	rt := pc.rt
	if len(rt.relayed) == 0 {
		return nil
	}
	var (
		out map[string]string
		buf [64]byte
	)
	for k, v := range resp.Header.All() {
		if len(k) > rt.maxKey || len(v) == 0 {
			continue
		}
		lower := buf[:0]
		for _, c := range k {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			lower = append(lower, c)
		}
		name, ok := rt.relayed[string(lower)]
		if !ok {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(rt.relayed))
		}
		if _, seen := out[name]; !seen {
			out[name] = string(v)
		}
	}
	return out
}

// upstreamError maps an upstream error answer whose body is in resp with
// the plan's error mapping.
func (pc *planned) upstreamError(resp *fasthttp.Response) error {
	return relay.UpstreamError(resp.StatusCode(), resp.Body(), func(name string) string {
		return string(resp.Header.Peek(name))
	}, time.Now())
}

// take tells the attempt that its call is running: on a planned call
// the host itself is the one that takes it.
func (a *try) take() {
	if a.connect != nil {
		a.accept()
	}
}

// unary forwards a non-streamed call and reads the whole answer.
func (pc *planned) unary(a *try, body []byte, meta *provider.Meta) (*provider.Response, error) {
	a.take()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	if err := pc.request(req, body, meta, "application/json"); err != nil {
		return nil, err
	}
	p := pc.rt.plan
	err := forwardPool.RoundTrip(a.ctx, pc.origin, req, resp, p.Timeout, relay.MaxResponseBody)
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return nil, relay.TooLarge(p.Name, relay.MaxResponseBody)
	case err != nil:
		return nil, relay.TransportError(a.ctx, p.Name, err)
	}
	if resp.StatusCode()/100 != 2 {
		return nil, pc.upstreamError(resp)
	}
	return &provider.Response{Body: append([]byte(nil), resp.Body()...), Header: pc.relayed(resp)}, nil
}

// stream forwards a streamed chat call. It returns once the upstream's
// answer has begun (its status and header are read); an error answer is
// read and mapped before it returns, so that the attempt may still fail
// over. The stream's connection is released when its last chunk is read
// or when the attempt ends, whichever is first.
func (pc *planned) stream(a *try, body []byte, meta *provider.Meta) (*provider.ChunkStream, error) {
	a.take()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	if err := pc.request(req, body, meta, "text/event-stream"); err != nil {
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
		return nil, err
	}
	p := pc.rt.plan
	resp.StreamBody = true
	x, err := forwardPool.Send(a.ctx, pc.origin, req, resp, p.Timeout, relay.MaxErrorBody)
	fasthttp.ReleaseRequest(req)
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		return nil, relay.TransportError(a.ctx, p.Name, err)
	}
	if resp.StatusCode()/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.BodyStream(), relay.MaxErrorBody))
		resp.SetBodyRaw(b)
		err := pc.upstreamError(resp)
		x.Finish(resp, false)
		fasthttp.ReleaseResponse(resp)
		return nil, err
	}
	s := &plannedStream{ctx: a.ctx, x: x, resp: resp, ev: relay.NewEvents(p.Name, relay.Body(resp.BodyStream()))}
	s.stop = context.AfterFunc(a.ctx, func() { s.finish(false) })
	return provider.NewChunkStream(s.next, s.more, pc.relayed(resp)), nil
}

// plannedStream is the body of a planned stream being relayed.
type plannedStream struct {
	ctx  context.Context
	stop func() bool
	// mu serialises next and finish, which the end of the attempt may
	// call while a read is blocked: the read returns (the attempt's end
	// closes the connection) and finish then runs.
	mu   sync.Mutex
	done bool
	x    *relay.Exchange
	resp *fasthttp.Response
	ev   *relay.Events
}

// next returns the next chunk; the stream is finished after the last one
// or an error.
func (s *plannedStream) next() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		if err := context.Cause(s.ctx); err != nil {
			return nil, err
		}
		return nil, io.EOF
	}
	b, err := s.ev.Next(s.ctx)
	if err != nil {
		s.stop()
		s.finishLocked(err == io.EOF)
	}
	return b, err
}

// more reports whether the next event has arrived already: its end is in
// the event reader's buffer or, before the reader has read it (as for
// the first event, which often comes with the header), in the
// connection's. Only an LF event end is looked for in the connection's
// buffer: a CRLF pair there may be the chunked encoding's framing.
func (s *plannedStream) more() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.done && (s.ev.Buffered() || bytes.Contains(s.x.Buffered(), lfEventEnd))
}

var lfEventEnd = []byte("\n\n")

func (s *plannedStream) finish(whole bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finishLocked(whole)
}

// finishLocked releases the stream: its connection goes back to the pool
// when the whole answer was read.
func (s *plannedStream) finishLocked(whole bool) {
	if s.done {
		return
	}
	s.done = true
	s.ev.Release()
	s.x.Finish(s.resp, whole)
	fasthttp.ReleaseResponse(s.resp)
}
