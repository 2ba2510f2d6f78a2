package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/valyala/fastjson"

	"github.com/llmproxy/llmproxy/host/internal/auth"
	"github.com/llmproxy/llmproxy/host/internal/plugins"
	"github.com/llmproxy/llmproxy/host/internal/router"
	"github.com/llmproxy/llmproxy/host/internal/telemetry"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// DocumentResolver replaces the document parts of a chat request by
// references and returns the resolved documents. It must return body
// unchanged, cheaply, when there are none.
type DocumentResolver interface {
	Resolve(ctx context.Context, key *auth.Key, body []byte) ([]byte, []provider.Document, error)
}

// parsed is what the host reads from a request body: just enough to route.
type parsed struct {
	model  string
	stream bool
	// maxTokens is max_completion_tokens or max_tokens (0: unset), for
	// token limits.
	maxTokens int64
	// streamOptions is set when the body has stream_options.
	streamOptions bool
	// chat is set for chat completions (not embeddings).
	chat bool
}

// parse validates the body as JSON and reads model, stream and (for chat)
// that messages is a non-empty array.
func (r *call) parse(chat bool) (*parsed, error) {
	body := r.ctx.PostBody()
	if len(body) == 0 {
		return nil, openai.InvalidRequest("", "request body is empty; send a JSON object")
	}
	p := r.s.parsers.Get()
	defer r.s.parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		return nil, openai.InvalidRequest("", "request body is not valid JSON: "+err.Error())
	}
	if v.Type() != fastjson.TypeObject {
		return nil, openai.InvalidRequest("", "request body must be a JSON object")
	}
	out := &parsed{}
	m := v.Get("model")
	if m == nil || m.Type() != fastjson.TypeString || len(m.GetStringBytes()) == 0 {
		return nil, openai.InvalidRequest("model", "you must provide a model parameter (a string)")
	}
	out.model = string(m.GetStringBytes())
	out.chat = chat
	if chat {
		msgs := v.Get("messages")
		if msgs == nil || msgs.Type() != fastjson.TypeArray {
			return nil, openai.InvalidRequest("messages", "messages must be an array of message objects")
		}
		if arr, _ := msgs.Array(); len(arr) == 0 {
			return nil, openai.InvalidRequest("messages", "messages must not be empty")
		}
		for _, name := range []string{"max_completion_tokens", "max_tokens"} {
			if x := v.Get(name); x != nil && x.Type() == fastjson.TypeNumber {
				if n, err := x.Int64(); err == nil && n > 0 {
					out.maxTokens = n
					break
				}
			}
		}
		out.streamOptions = v.Get("stream_options") != nil
		if st := v.Get("stream"); st != nil {
			switch st.Type() {
			case fastjson.TypeTrue:
				out.stream = true
			case fastjson.TypeFalse, fastjson.TypeNull:
			default:
				return nil, openai.InvalidRequest("stream", "stream must be a boolean")
			}
		}
	} else if v.Get("input") == nil {
		return nil, openai.InvalidRequest("input", "you must provide an input parameter")
	}
	return out, nil
}

// route authorises and resolves the model.
func (r *call) route(model string) (*router.Route, error) {
	if !r.key.AllowsModel(model) {
		return nil, openai.NewError(http.StatusForbidden, openai.TypePermission, "model_not_allowed",
			fmt.Sprintf("this API key may not use model %q", model))
	}
	rt := r.g.Router.Lookup(model)
	if rt == nil {
		return nil, openai.NewError(http.StatusNotFound, openai.TypeInvalidRequest, "model_not_found",
			fmt.Sprintf("the model %q does not exist or is not served by this gateway", model))
	}
	return rt, nil
}

// retryable says whether a failed attempt may move on to the next target:
// instance not ready, plugin gone or too slow, upstream credentials
// rejected, 429 and 5xx.
func retryable(err error) bool {
	var e *openai.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// Causes that end an attempt before its answer.
var (
	errConnectTimeout   = errors.New("the plugin did not take the call in time")
	errFirstByteTimeout = errors.New("no answer in time")
)

// try is one attempt against one target. Its context ends with
// errConnectTimeout when the plugin does not confirm the call within the
// target's connect timeout, and with errFirstByteTimeout when the answer
// does not start within its first-byte timeout. The timers and the events
// that disarm them (the plugin's confirmation, the answer) may race; mu
// makes exactly one side win.
type try struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	in     *plugins.Instance
	target router.Target
	// call is the router's record of the attempt (in flight, time to
	// first byte, circuit breaker).
	call *router.Call
	// span is the attempt's client span.
	span      *telemetry.Attempt
	connect   *time.Timer
	firstByte *time.Timer

	mu       sync.Mutex
	accepted bool // the plugin confirmed the call
	begun    bool // the answer began, or the request stopped failing over
}

func newTry(parent context.Context, in *plugins.Instance, c *provider.Client, t router.Target) *try {
	a := &try{in: in, target: t}
	a.ctx, a.cancel = context.WithCancelCause(parent)
	a.mu.Lock()
	defer a.mu.Unlock()
	if d := t.Bounds.Connect; d > 0 && c.AcknowledgesCalls() {
		a.connect = time.AfterFunc(d, func() { a.expire(errConnectTimeout) })
		a.ctx = provider.WithAccepted(a.ctx, a.accept)
	}
	if d := t.Bounds.FirstByte; d > 0 {
		a.firstByte = time.AfterFunc(d, func() { a.expire(errFirstByteTimeout) })
	}
	return a
}

// expire ends the attempt with cause, unless what the timer waited for
// happened first.
func (a *try) expire(cause error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.begun || cause == errConnectTimeout && a.accepted {
		return
	}
	a.cancel(cause)
}

// accept records the plugin's confirmation of the call.
func (a *try) accept() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.accepted = true
	a.connect.Stop()
}

// started disarms the attempt's timers: the answer has begun (or the
// request gave up failing over). It reports false when a timer ended the
// attempt first.
func (a *try) started() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.begun = true
	if a.connect != nil {
		a.connect.Stop()
	}
	if a.firstByte != nil {
		a.firstByte.Stop()
	}
	return a.ctx.Err() == nil
}

// end releases the attempt once its answer is consumed or abandoned.
func (a *try) end() {
	a.started()
	a.cancel(context.Canceled)
	a.span.End()
	a.call.End(false)
}

// explain turns the error of a failed attempt into what the client and
// the next target's decision need: timeouts of the attempt become 504s
// naming the limit, and credentials the upstream rejected become 502
// upstream_auth_failed with a generic message (the detail is logged and
// the instance marked degraded).
func (r *call) explain(a *try, err error) error {
	switch cause := context.Cause(a.ctx); {
	case errors.Is(cause, errConnectTimeout):
		a.in.Unresponsive(fmt.Sprintf("plugin did not take a call within %v", a.target.Bounds.Connect))
		return openai.NewError(http.StatusGatewayTimeout, openai.TypeTimeout, "plugin_connect_timeout",
			fmt.Sprintf("instance %s did not take the call within %v", a.target.Instance, a.target.Bounds.Connect))
	case errors.Is(cause, errFirstByteTimeout):
		return openai.NewError(http.StatusGatewayTimeout, openai.TypeTimeout, "first_byte_timeout",
			fmt.Sprintf("instance %s sent no answer within %v", a.target.Instance, a.target.Bounds.FirstByte))
	}
	var e *openai.Error
	if !errors.As(err, &e) {
		return err
	}
	switch {
	case e.Code == "plugin_unavailable":
		a.in.Poke()
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		r.s.log.Error("the upstream rejected the instance's credentials", "request_id", r.id,
			"instance", a.target.Instance, "status", e.Status, "code", e.Code, "detail", e.Message)
		a.in.UpstreamRejectedCredentials()
		return upstreamAuthFailed()
	}
	return err
}

// upstreamAuthFailed is what a client sees when a provider refused the
// gateway's own credentials: the gateway's problem, not the client's, and
// nothing of the upstream's text.
func upstreamAuthFailed() *openai.Error {
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_auth_failed",
		"the upstream provider rejected the gateway's credentials; the gateway's operator has been told")
}

// attempt runs fn against the targets of the route's plan — healthy
// targets first, degraded ones after, ejected ones (open circuit) and
// those over their instance limits skipped without an attempt — until one
// succeeds or fails with an error that must not be retried elsewhere.
// Following the route's retry policy, a target may be tried again (after
// a jittered backoff, at least the upstream's Retry-After up to a cap,
// and only while the route's retry budget lasts) before the next. Each
// attempt is bounded by its target's connect and first-byte timeouts. On
// success it returns the attempt, whose end the caller calls once the
// answer is consumed.
func (r *call) attempt(ctx context.Context, rt *router.Route, requested string, fn func(a *try, c *provider.Client, meta provider.Meta) error) (*try, error) {
	var (
		last error
		skip skipped
	)
	session := ""
	if rt.StickyHeader != "" {
		session = string(r.ctx.Request.Header.Peek(rt.StickyHeader))
	}
	plan := router.PreferHealthy(rt.PlanFor(requested, session), func(name string) bool {
		in := r.s.opts.Plugins.Get(name)
		return in != nil && in.Degraded()
	})
	deadline := time.Now().Add(r.s.opts.RequestTimeout)
	pol := rt.Retry
	budget := pol.Attempts
	if budget <= 0 {
		budget = len(plan) * pol.PerTarget
	}
	rt.Admitted()
	made := 0
	for i, t := range plan {
		before := made
		for n := 0; n < pol.PerTarget && made < budget; n++ {
			if n > 0 {
				if !sameTargetRetryable(last) {
					break
				}
				wait, ok := retryWait(pol, n, last, deadline)
				if !ok || !rt.SpendRetry() {
					break
				}
				r.s.log.Debug("retrying the same instance", "request_id", r.id, "instance", t.Instance, "wait", wait, "error", last)
				if err := sleep(ctx, wait); err != nil {
					return nil, err
				}
				r.s.retries.Add(1)
			} else if made > 0 {
				r.s.failovers.Add(1)
			}
			a, err, tried := r.attemptOne(ctx, made, t, requested, deadline, &skip, fn)
			if !tried {
				break
			}
			made++
			if err == nil {
				return a, nil
			}
			last = err
			if !retryable(err) {
				return nil, err
			}
		}
		if made >= budget {
			break
		}
		if i < len(plan)-1 && made > before {
			r.s.log.Warn("attempt failed; trying the next instance", "request_id", r.id, "instance", t.Instance,
				"next", plan[i+1].Instance, "error", last)
		}
	}
	if made == 0 {
		if err := skip.err(); err != nil {
			return nil, err
		}
	}
	return nil, last
}

// attemptOne makes attempt n (from 0) of the request, against t. tried is
// false when the target was skipped: its circuit is open or it is over its
// instance limits.
func (r *call) attemptOne(ctx context.Context, n int, t router.Target, requested string, deadline time.Time, skip *skipped,
	fn func(a *try, c *provider.Client, meta provider.Meta) error) (a *try, err error, tried bool) {
	in := r.s.opts.Plugins.Get(t.Instance)
	if in == nil {
		return nil, openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "instance_unavailable",
			fmt.Sprintf("instance %s is not configured", t.Instance)), true
	}
	quota, d := r.s.opts.Limits.AdmitInstance(ctx, r.subject(t.Instance), r.traffic.est)
	if d != nil && !d.Allowed {
		skip.limited++
		if skip.limit == nil || d.RetryAfter >= 0 && d.RetryAfter < skip.limit.RetryAfter {
			skip.limit = d
		}
		r.s.log.Debug("instance over its limit; skipped", "request_id", r.id, "instance", t.Instance, "limit", d.Refused)
		return nil, nil, false
	}
	stats := r.g.Router.Instance(t.Instance)
	rc, ok := stats.Begin()
	if !ok {
		quota.Done(0, true)
		skip.ejected++
		if w := stats.ReopensIn(time.Now()); skip.reopen == 0 || w < skip.reopen {
			skip.reopen = w
		}
		return nil, nil, false
	}
	c, _, err := in.Provider()
	if err != nil {
		rc.End(upstreamFault(err))
		quota.Done(0, true)
		return nil, err, true
	}
	a = newTry(ctx, in, c, t)
	a.call = rc
	a.ctx, a.span = r.op.Attempt(a.ctx, n, t.Instance, in.Type, t.Model)
	err = fn(a, c, provider.Meta{
		RequestID: r.id, Instance: t.Instance, Model: t.Model, RequestedModel: requested, Deadline: deadline,
		Trace: a.span.TraceContext(a.ctx),
	})
	if err == nil && a.started() {
		in.Served()
		rc.FirstByte()
		if quota != nil {
			r.traffic.tickets = append(r.traffic.tickets, quota)
		}
		return a, nil, true
	}
	if err == nil {
		// A timer fired as the answer arrived; the attempt's context is
		// gone with it.
		err = context.Cause(a.ctx)
	}
	err = r.explain(a, err)
	a.span.Fail(err)
	a.call = nil
	a.end()
	rc.End(upstreamFault(err) && ctx.Err() == nil)
	quota.Done(0, true)
	return nil, err, true
}

// resolve parses the body and finds the route of its model.
func (r *call) resolve(chat bool) (*parsed, *router.Route, error) {
	p, err := r.parse(chat)
	if err != nil {
		return nil, nil, err
	}
	r.requested = p.model
	rt, err := r.route(p.model)
	if err != nil {
		return nil, nil, err
	}
	return p, rt, nil
}

func (r *call) chat() {
	p, rt, err := r.resolve(true)
	if err != nil {
		writeError(r.ctx, err)
		return
	}
	if !r.admit(p, rt) {
		return
	}
	ctx, cancel := r.context()
	body := r.ctx.PostBody()
	ctx = r.startOp(ctx, "chat", p, rt)
	var docs []provider.Document
	if r.s.docs != nil {
		body, docs, err = r.s.docs.Resolve(ctx, r.key, body)
		if err != nil {
			cancel()
			r.settle(0, true)
			writeError(r.ctx, err)
			r.op.End(r.ctx.Response.StatusCode(), err)
			return
		}
		if err = r.reserveDocuments(docs); err != nil {
			cancel()
			r.settle(0, true)
			writeError(r.ctx, err)
			r.op.End(r.ctx.Response.StatusCode(), err)
			return
		}
	}
	r.mw = r.s.opts.Middleware.For(r.keyName(), rt.Name, r.id, p.stream)
	if body, err = r.mw.Request(ctx, body); err != nil {
		cancel()
		r.settle(0, true)
		r.logError(err)
		writeError(r.ctx, err)
		return
	}
	if r.cacheLookup(ctx, p, rt, body, docs) {
		cancel()
		return
	}
	if p.stream && !p.streamOptions && r.s.opts.Usage != nil {
		// The usage record is read from the stream's usage chunk.
		r.traffic.injectUsage = true
	}
	if p.stream {
		if r.traffic.injectUsage {
			body = withUsage(body)
		}
		r.stream(ctx, cancel, rt, p.model, body, docs)
		return
	}
	defer cancel()
	stop := r.watchClient(cancel)
	defer stop()
	var resp *provider.Response
	a, err := r.attempt(ctx, rt, p.model, func(a *try, c *provider.Client, meta provider.Meta) error {
		var err error
		if pc := r.plannedCall(a, c, &meta, provider.OpChat, docs); pc != nil && !p.streamOptions {
			resp, err = pc.unary(a, body, &meta)
			return err
		}
		resp, err = c.ChatCompletion(a.ctx, &provider.Request{Meta: meta, Body: body, Documents: docs})
		return err
	})
	if a != nil {
		a.end()
		r.served = a.target.Instance
		r.traffic.spend.servedBy(r.s, p.model, a.target)
	}
	if err == nil {
		resp.Body, err = r.mw.Response(ctx, resp.Body)
	}
	if err == nil {
		r.cache.keep(r, resp.Body)
	}
	r.writeResponse(resp, err)
}

// keyName is the name of the request's API key, "" without one.
func (r *call) keyName() string {
	if r.key == nil {
		return ""
	}
	return r.key.Name
}

// startOp begins the request's GenAI operation (its server span and
// metrics); writeResponse or the stream ends it.
func (r *call) startOp(ctx context.Context, operation string, p *parsed, rt *router.Route) context.Context {
	name := ""
	if r.key != nil {
		name = r.key.Name
	}
	ctx, r.op = r.s.opts.Telemetry.Start(ctx, &r.ctx.Request.Header, operation, p.model, rt.Name, name, r.id, p.stream, r.ctx.PostBody())
	return ctx
}

// writeResponse answers with the plugin's response or err, and settles the
// request's limits with the usage the response reports.
func (r *call) writeResponse(resp *provider.Response, err error) {
	if err != nil {
		r.fail(err)
		r.recordUsage(r.ctx.Response.StatusCode(), r.served, nil, 0)
		return
	}
	// One parse of the answer serves telemetry and its cost.
	p := r.s.parsers.Get()
	defer r.s.parsers.Put(p)
	v, perr := p.ParseBytes(resp.Body)
	if perr != nil {
		v = nil
	}
	r.op.ResponseValue(v)
	defer func() { r.recordUsage(http.StatusOK, r.served, resp.Body, r.traffic.spend.cost) }()
	defer r.op.End(http.StatusOK, nil)
	for k, v := range resp.Header {
		r.ctx.Response.Header.Set(k, v)
	}
	r.limitHeaders()
	r.ctx.SetContentType("application/json")
	body := resp.Body
	if r.out != nil {
		var err error
		if body, err = r.out.Response(resp.Body); err != nil {
			r.logError(err)
			writeError(r.ctx, err)
		}
	}
	if body != nil {
		r.ctx.SetBody(body)
	}
	r.costOf(v)
	if len(r.traffic.tickets) > 0 {
		p := r.s.parsers.Get()
		used, known := usageOf(p, resp.Body)
		r.s.parsers.Put(p)
		r.settle(used, known)
	}
}

// fail ends a call that failed before its response began: it settles
// the call's reservations as having used nothing, logs err, answers with
// it and ends the call's operation.
func (r *call) fail(err error) {
	r.settle(0, true)
	r.logError(err)
	writeError(r.ctx, err)
	r.op.End(r.ctx.Response.StatusCode(), err)
}

func (r *call) logError(err error) {
	e := asAPIError(err)
	if e.Status >= 500 {
		r.s.log.Error("request failed", "request_id", r.id, "status", e.Status, "code", e.Code, "error", e.Message)
	} else {
		r.s.log.Debug("request refused", "request_id", r.id, "status", e.Status, "code", e.Code, "error", e.Message)
	}
}

func (r *call) embeddings() {
	p, rt, err := r.resolve(false)
	if err != nil {
		writeError(r.ctx, err)
		return
	}
	if !r.admit(p, rt) {
		return
	}
	ctx, cancel := r.context()
	defer cancel()
	ctx = r.startOp(ctx, "embeddings", p, rt)
	stop := r.watchClient(cancel)
	defer stop()
	body := r.ctx.PostBody()
	var resp *provider.Response
	a, err := r.attempt(ctx, rt, p.model, func(a *try, c *provider.Client, meta provider.Meta) error {
		var err error
		if pc := r.plannedCall(a, c, &meta, provider.OpEmbeddings, nil); pc != nil {
			resp, err = pc.unary(a, body, &meta)
			return err
		}
		resp, err = c.Embeddings(a.ctx, &provider.Request{Meta: meta, Body: body})
		return err
	})
	if a != nil {
		a.end()
		r.served = a.target.Instance
		r.traffic.spend.servedBy(r.s, p.model, a.target)
	}
	r.writeResponse(resp, err)
}

// available lists the models the key may use: exact routes and their
// aliases, plus the models that instances behind pattern routes describe.
func (r *call) available() []openai.Model {
	seen := map[string]bool{}
	var out []openai.Model
	add := func(id, owner string) {
		if seen[id] || !r.key.AllowsModel(id) {
			return
		}
		seen[id] = true
		out = append(out, openai.Model{ID: id, Object: openai.ObjectModel, Created: 0, OwnedBy: owner})
	}
	rtr := r.g.Router
	for _, rt := range rtr.Routes() {
		owner := r.servingInstance(rt)
		if owner == "" {
			continue
		}
		if !rt.Pattern {
			add(rt.Name, owner)
			for _, a := range rtr.Aliases(rt) {
				add(a, owner)
			}
			continue
		}
		for _, t := range rt.Targets {
			in := r.s.opts.Plugins.Get(t.Instance)
			if in == nil {
				continue
			}
			if _, d, err := in.Provider(); err == nil {
				for _, m := range d.Models {
					if rtr.Lookup(m.ID) == rt {
						add(m.ID, t.Instance)
					}
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// servingInstance returns the first serving instance of a route, or "".
func (r *call) servingInstance(rt *router.Route) string {
	for _, t := range rt.Targets {
		if in := r.s.opts.Plugins.Get(t.Instance); in != nil && in.Status().Serving() {
			return t.Instance
		}
	}
	return ""
}

func (r *call) models() {
	writeJSON(r.ctx, http.StatusOK, openai.ModelList{Object: openai.ObjectList, Data: r.available()})
}

func (r *call) model(id string) {
	for _, m := range r.available() {
		if m.ID == id {
			writeJSON(r.ctx, http.StatusOK, m)
			return
		}
	}
	writeError(r.ctx, openai.NewError(http.StatusNotFound, openai.TypeInvalidRequest, "model_not_found",
		fmt.Sprintf("the model %q does not exist or is not available to this key", id)))
}
