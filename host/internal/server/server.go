// Package server is llmproxy's HTTP front: it runs the request pipeline
// auth → path → mode → model → provider instance on fasthttp.
//
// Paths:
//
//	/v1/chat/completions, /v1/embeddings, /v1/models[/{id}]   protocol mode
//	/v1/responses, /v1/responses/{id}                         protocol mode (Responses API)
//	/v1/messages, /v1/messages/count_tokens                   Anthropic Messages (see messages.go)
//	/-{type}/{instance}/{native path}                         transparent mode
//	/healthz, /readyz                                         the host's own
//
// Every request runs through one middleware chain, outermost first:
// recover (a panic becomes a 500 in the OpenAI shape, its stack logged)
// → request id → auth → metrics → the route. Every response carries
// X-Request-Id, and every error has the OpenAI shape
// {"error":{"message","type","param","code"}}.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/llmproxy/llmproxy/host/internal/access"
	"github.com/llmproxy/llmproxy/host/internal/admin"
	"github.com/llmproxy/llmproxy/host/internal/auth"
	"github.com/llmproxy/llmproxy/host/internal/budget"
	"github.com/llmproxy/llmproxy/host/internal/cache"
	"github.com/llmproxy/llmproxy/host/internal/console"
	"github.com/llmproxy/llmproxy/host/internal/document"
	"github.com/llmproxy/llmproxy/host/internal/metrics"
	mw "github.com/llmproxy/llmproxy/host/internal/middleware"
	"github.com/llmproxy/llmproxy/host/internal/platform"
	"github.com/llmproxy/llmproxy/host/internal/plugins"
	"github.com/llmproxy/llmproxy/host/internal/price"
	"github.com/llmproxy/llmproxy/host/internal/ratelimit"
	"github.com/llmproxy/llmproxy/host/internal/router"
	"github.com/llmproxy/llmproxy/host/internal/telemetry"
	"github.com/llmproxy/llmproxy/host/internal/usage"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// Options configure a Server.
type Options struct {
	Keys           *auth.Keys
	Router         *router.Router
	Plugins        *plugins.Manager
	Logger         hclog.Logger
	MaxBodyBytes   int
	RequestTimeout time.Duration
	AccessLog      bool
	// Documents resolves document parts of chat requests; nil disables
	// them.
	Documents *document.Resolver
	// Policies are the access rules of storage instances, by name.
	Policies map[string]*access.Policy
	// Metrics records requests and serves /metrics; nil disables both.
	Metrics *metrics.Metrics
	// Telemetry traces AI requests and records their GenAI metrics; nil
	// disables both.
	Telemetry *telemetry.Telemetry
	// ReadTimeout bounds reading headers and bodies up to MaxBodyBytes;
	// ReadIdleTimeout bounds each wait for the next bytes of a streamed
	// upload.
	ReadTimeout, ReadIdleTimeout time.Duration
	// PageTokens seals storage list page tokens; nil uses a random key.
	PageTokens *access.PageTokens
	// Limits enforces the limits block; nil means no limits.
	Limits *ratelimit.Limiter
	// Middleware runs the middleware plugins of chat requests; nil runs
	// none.
	Middleware *mw.Runner
	// Cache is the exact response cache; nil caches nothing. Which
	// requests use it is the Routing's cache policy.
	Cache *cache.Cache
	// CachePolicy is the first Routing's cache policy.
	CachePolicy *cache.Policy
	// Responses keeps the responses of /v1/responses for
	// previous_response_id, each for ResponseRetention
	// (responses.DefaultRetention when 0); nil keeps none.
	Responses         ResponseStore
	ResponseRetention time.Duration
	// StoredKeys authenticates the keys of the store, after the keys of
	// the config file; nil accepts config keys only.
	StoredKeys *auth.Stored
	// Admin serves /admin/; nil answers that no store is configured.
	Admin *admin.API
	// Usage receives the usage records of chat and embeddings requests;
	// nil records none.
	Usage *usage.Recorder
	// Prices costs AI requests (CostHeader, usage.cost_usd, the request
	// log); nil costs nothing.
	Prices *price.Table
	// Budgets enforces hard budgets on keys and key groups; nil enforces
	// none.
	Budgets *budget.Policy
	// Platform is what platform detection found at start, shown to admin
	// keys by /readyz; nil when detection is off.
	Platform *platform.Report
}

// Server handles HTTP requests.
type Server struct {
	opts    Options
	log     hclog.Logger
	parsers fastjson.ParserPool
	seq     atomic.Uint64
	prefix  string
	issued  issued
	docs    DocumentResolver
	tokens  *access.PageTokens
	handler handler
	// draining is set by Drain: /readyz answers 503 from then on.
	draining atomic.Bool
	// gen is the routing new requests use (see Publish); retired are
	// earlier ones that may still have requests running.
	gen       atomic.Pointer[generation]
	retiredMu sync.Mutex
	retired   []*generation
	// base is the parent of every plugin call's context; Abort cancels it.
	base  context.Context
	abort context.CancelCauseFunc
	// reload is the outcome of the last reload, shown by /readyz.
	reload atomic.Pointer[ReloadStatus]
	// limitLogged is when a rate limit backend failure was last logged
	// (Unix ns).
	limitLogged atomic.Int64
	// retries and failovers count attempts after the first, on the same
	// target and on the next one.
	retries, failovers atomic.Uint64
	// console serves the web console at /ui.
	console *console.Console
	// fwd resolves the plans of planned calls (forward.go).
	fwd forwarder
}

// New returns a Server.
func New(opts Options) *Server {
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Minute
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 5 * time.Minute
	}
	if opts.ReadIdleTimeout <= 0 {
		opts.ReadIdleTimeout = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Admin == nil {
		opts.Admin = admin.New(admin.Options{})
	}
	s := &Server{
		opts:   opts,
		log:    opts.Logger,
		prefix: "req_" + strconv.FormatInt(time.Now().UnixNano()%1e12, 36) + "_",
		tokens: opts.PageTokens,
	}
	s.base, s.abort = context.WithCancelCause(context.Background())
	s.gen.Store(newGeneration(Routing{Keys: opts.Keys, Router: opts.Router, Policies: opts.Policies, Cache: opts.CachePolicy}))
	if s.tokens == nil {
		var err error
		if s.tokens, err = access.NewPageTokens(""); err != nil {
			panic(err)
		}
	}
	if opts.Documents != nil {
		s.docs = documentResolver{s: s, res: opts.Documents}
	}
	if opts.Metrics != nil {
		opts.Metrics.Traffic(func() *router.Router { return s.gen.Load().Router }, opts.Limits, func() (uint64, uint64) { return s.retries.Load(), s.failovers.Load() })
	}
	s.console = s.newConsole()
	s.handler = chain(s.route, s.recoverPanic, s.withRequestID, s.authenticate, s.observe)
	return s
}

// Drain marks the server as shutting down: /readyz answers 503 so that
// load balancers stop sending requests, while requests are still served.
func (s *Server) Drain() { s.draining.Store(true) }

// Recognizer returns the hook through which the document resolver reads
// presigned URLs of configured storage through the plugins.
func (s *Server) Recognizer() document.PresignRecognizer {
	return document.PresignRecognizerFunc(s.recognize)
}

// HTTPServer returns the fasthttp server that runs s.
func (s *Server) HTTPServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:            s.Handle,
		Name:               "llmproxy",
		MaxRequestBodySize: s.opts.MaxBodyBytes,
		// Bodies larger than MaxRequestBodySize reach the handler as a
		// stream: storage uploads stream through under the idle-read
		// timeout (see requestBody); everything else is refused with 413
		// (see readBody).
		StreamRequestBody:            true,
		ReadTimeout:                  s.opts.ReadTimeout,
		IdleTimeout:                  2 * time.Minute,
		DisablePreParseMultipartForm: true,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		// Parse errors must not quote the request: its headers carry
		// the client's key.
		SecureErrorLogMessage: true,
		Logger:                fasthttpLogger{s.log.Named("fasthttp")},
		ErrorHandler:          s.parseError,
	}
}

// parseError answers a request fasthttp could not read. The client gets
// a fixed message, never fasthttp's error text, and the log gets the
// error with any quoted request bytes cut.
func (s *Server) parseError(ctx *fasthttp.RequestCtx, err error) {
	ctx.Response.Header.Set("X-Request-Id", s.requestID(ctx))
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeError(ctx, openai.NewError(http.StatusRequestEntityTooLarge, openai.TypeInvalidRequest, "request_too_large",
			fmt.Sprintf("request body exceeds the configured limit of %d bytes", s.opts.MaxBodyBytes)))
	case errors.As(err, &ne) && ne.Timeout():
		writeError(ctx, openai.NewError(http.StatusRequestTimeout, openai.TypeInvalidRequest, "request_timeout",
			"the request was not received in time"))
	default:
		writeError(ctx, openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, "bad_request",
			"malformed HTTP request"))
	}
	s.log.Debug("malformed HTTP request", "remote", ctx.RemoteAddr().String(), "error", scrub(err.Error()))
}

// fasthttpLogger routes fasthttp's own messages into hclog.
type fasthttpLogger struct{ log hclog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn(scrub(fmt.Sprintf(format, args...)))
}

// scrub cuts a log message at the first quoted request bytes, which
// fasthttp includes in some errors unless in secure mode; it is the
// second line of defence behind SecureErrorLogMessage.
func scrub(msg string) string {
	for _, marker := range []string{"contents:", "buf=", "header=", "Authorization", "authorization", "X-Api-Key", "x-api-key", "X-API-Key"} {
		if i := strings.Index(msg, marker); i >= 0 {
			msg = msg[:i] + "[request bytes omitted]"
		}
	}
	return msg
}

// requestID returns the client's X-Request-Id when it is sane, else a new
// one.
func (s *Server) requestID(ctx *fasthttp.RequestCtx) string {
	if v := ctx.Request.Header.Peek("X-Request-Id"); len(v) > 0 && len(v) <= 128 && printable(v) {
		return string(v)
	}
	return s.prefix + strconv.FormatUint(s.seq.Add(1), 36)
}

func printable(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// Handle is the fasthttp handler.
func (s *Server) Handle(ctx *fasthttp.RequestCtx) {
	r := &call{s: s, g: s.enter(), ctx: ctx, start: time.Now()}
	defer r.track()
	s.handler(r)
}

// handler serves one request; a middleware wraps one.
type handler func(r *call)

type middleware func(next handler) handler

// chain wraps h in mws, the first outermost.
func chain(h handler, mws ...middleware) handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// recoverPanic turns a panic in any later stage into a 500 in the OpenAI
// shape and logs it with its stack; the connection and the process live
// on.
func (s *Server) recoverPanic(next handler) handler {
	return func(r *call) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			s.log.Error("panic serving request", "request_id", r.id, "method", string(r.ctx.Method()),
				"path", string(r.ctx.Path()), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			r.ctx.Response.Reset()
			if r.id != "" {
				r.ctx.Response.Header.Set("X-Request-Id", r.id)
			}
			writeError(r.ctx, openai.NewError(http.StatusInternalServerError, openai.TypeServer, "internal_error",
				"the gateway failed to handle the request; it has been logged with the request id"))
		}()
		next(r)
	}
}

// withRequestID names the request (X-Request-Id) and writes the access
// log line once it is served.
func (s *Server) withRequestID(next handler) handler {
	return func(r *call) {
		r.id = s.requestID(r.ctx)
		r.ctx.Response.Header.Set("X-Request-Id", r.id)
		next(r)
		r.settleUnsettled()
		if s.opts.AccessLog {
			name := ""
			if r.key != nil {
				name = r.key.Name
			}
			attrs := []any{"request_id", r.id, "method", string(r.ctx.Method()), "path", string(r.ctx.Path()),
				"status", r.ctx.Response.StatusCode(), "key", name, "duration", time.Since(r.start)}
			if r.traffic.spend.costed {
				attrs = append(attrs, "cost_usd", r.traffic.spend.cost)
			}
			s.log.Info("request", attrs...)
		}
	}
}

// public reports whether path is served without an API key: the host's
// own endpoints, URLs signed by the host (the signature is the
// credential) and paths outside the API, which answer 404.
func public(path string) bool {
	switch path {
	case "/healthz", "/readyz", "/metrics":
		return true
	}
	if strings.HasPrefix(path, "/-") {
		return isSignedObjectPath(path)
	}
	return !strings.HasPrefix(path, "/v1/") && !strings.HasPrefix(path, admin.Path)
}

// authenticate looks up the presented key. The API and instance paths
// refuse a request without a valid one with 401; public paths take an
// optional key (an admin key sees /readyz details).
func (s *Server) authenticate(next handler) handler {
	return func(r *call) {
		if isMessagesPath(string(r.ctx.Path())) {
			r.speakMessages()
		}
		secret := auth.Secret(&r.ctx.Request.Header)
		r.key = r.g.Keys.Lookup(secret)
		if r.key == nil && len(secret) > 0 && s.opts.StoredKeys != nil && !s.lookupStored(r, secret) {
			return
		}
		if r.key == nil && !public(string(r.ctx.Path())) {
			msg := "missing API key: send Authorization: Bearer <key> or X-API-Key"
			if len(secret) > 0 {
				msg = "invalid API key"
			}
			writeError(r.ctx, openai.NewError(http.StatusUnauthorized, openai.TypeInvalidRequest, "invalid_api_key", msg))
			if s.opts.Metrics != nil {
				s.opts.Metrics.Observe(endpoint(r.ctx.Path()), http.StatusUnauthorized, time.Since(r.start))
			}
			return
		}
		next(r)
	}
}

// observe records the request in the metrics.
func (s *Server) observe(next handler) handler {
	if s.opts.Metrics == nil {
		return next
	}
	return func(r *call) {
		next(r)
		s.opts.Metrics.Observe(endpoint(r.ctx.Path()), r.ctx.Response.StatusCode(), time.Since(r.start))
	}
}

// route serves an authenticated (or public) request.
func (s *Server) route(r *call) {
	ctx := r.ctx
	path := string(ctx.Path())
	switch path {
	case "/healthz":
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"ok"}`)
		return
	case "/readyz":
		s.ready(r)
		return
	case "/metrics":
		if s.opts.Metrics != nil {
			s.opts.Metrics.Serve(ctx)
			return
		}
	}
	if strings.HasPrefix(path, "/-") && isSignedObjectPath(path) {
		s.signed(r)
		return
	}
	if console.Handles(path) {
		if err := r.readBody(); err != nil {
			writeError(ctx, err)
			return
		}
		s.console.Serve(ctx)
		return
	}
	if r.key == nil {
		writeError(ctx, openai.NewError(http.StatusNotFound, openai.TypeNotFound, "unknown_path",
			fmt.Sprintf("no route for %s %s; the AI API is under /v1/ and instances under /-{type}/{instance}/", ctx.Method(), path)))
		return
	}
	if !strings.HasPrefix(path, "/-") || !r.isStorage() {
		if err := r.readBody(); err != nil {
			writeError(ctx, err)
			return
		}
	}
	switch {
	case strings.HasPrefix(path, admin.Path):
		ctx, cancel := r.context()
		defer cancel()
		s.opts.Admin.Serve(admin.Request{Ctx: r.ctx, Caller: r.key, Config: r.g.Keys, Context: ctx})
	case path == "/v1/chat/completions":
		if !r.method("POST") || !r.canonical() {
			return
		}
		r.chat()
	case path == "/v1/responses":
		if !r.method("POST") || !r.canonical() {
			return
		}
		r.responses()
	case strings.HasPrefix(path, "/v1/responses/"):
		r.response(strings.TrimPrefix(path, "/v1/responses/"))
	case path == "/v1/embeddings":
		if !r.method("POST") || !r.canonical() {
			return
		}
		r.embeddings()
	case isMessagesPath(path):
		r.messages()
	case path == "/v1/models":
		if !r.method("GET") {
			return
		}
		r.models()
	case strings.HasPrefix(path, "/v1/models/"):
		if !r.method("GET") {
			return
		}
		r.model(strings.TrimPrefix(path, "/v1/models/"))
	case strings.HasPrefix(path, "/-"):
		r.instance()
	default:
		writeError(ctx, openai.NewError(http.StatusNotFound, openai.TypeNotFound, "unknown_path",
			fmt.Sprintf("no route for %s %s", ctx.Method(), path)))
	}
}

// canonical refuses an AI request body that JSON readers could read
// differently: one with a repeated object key (the host authorises and
// routes on one reading of the body, and a plugin or upstream that keeps
// the other would run something else) or one that is not UTF-8.
func (r *call) canonical() bool {
	body := r.ctx.PostBody()
	if !utf8.Valid(body) || loneSurrogate(body) {
		// JSON text is Unicode; readers differ on anything else (the
		// host's parser keeps the bytes or the escape, Go's replaces
		// them with U+FFFD), so the model the host authorises could
		// differ from the one a plugin sends.
		writeError(r.ctx, openai.InvalidRequest("", "the request body is not valid UTF-8 or escapes half a surrogate pair"))
		return false
	}
	// One parse serves both checks of the keys.
	p := r.s.parsers.Get()
	defer r.s.parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		// Not JSON: the request parser reports it.
		return true
	}
	if key, dup := findDuplicate(v); dup {
		e := openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, "duplicate_key",
			fmt.Sprintf("the request body repeats the key %q (keys are compared ignoring case); each key may appear once", key))
		e.Param = key
		writeError(r.ctx, e)
		return false
	}
	if key, bad := inexactKey(v); bad {
		e := openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, "invalid_key",
			fmt.Sprintf("the request body names %q; write it in lower case, exactly as the API spells it", key))
		e.Param = key
		writeError(r.ctx, e)
		return false
	}
	return true
}

// endpoint names the class of a path for metrics, with a bounded set of
// values.
func endpoint(path []byte) string {
	switch p := string(path); {
	case p == "/v1/chat/completions":
		return "chat"
	case p == "/v1/embeddings":
		return "embeddings"
	case strings.HasPrefix(p, "/v1/responses"):
		return "responses"
	case isMessagesPath(p):
		return "messages"
	case strings.HasPrefix(p, "/v1/models"):
		return "models"
	case strings.HasPrefix(p, "/-"):
		return "instance"
	case p == "/healthz" || p == "/readyz" || p == "/metrics":
		return "host"
	case strings.HasPrefix(p, admin.Path):
		return "admin"
	}
	return "other"
}

// isSignedObjectPath reports whether path is /-{type}/{instance}/object/...
func isSignedObjectPath(path string) bool {
	rest := path[2:]
	for range 2 {
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			return false
		}
		rest = rest[i+1:]
	}
	return strings.HasPrefix(rest, storage.SignedOp+"/")
}

// isStorage reports whether the request addresses a storage instance.
func (r *call) isStorage() bool {
	rest := strings.TrimPrefix(string(r.ctx.Path()), "/-")
	_, rest, _ = strings.Cut(rest, "/")
	name, _, _ := strings.Cut(rest, "/")
	in := r.s.opts.Plugins.Get(name)
	return in != nil && in.Kind() == "storage"
}

// readBody makes the whole body available to PostBody, refusing bodies
// over the configured limit with 413.
func (r *call) readBody() error {
	req := &r.ctx.Request
	if !req.IsBodyStream() {
		return nil
	}
	limit := r.s.opts.MaxBodyBytes
	tooLarge := func() error {
		return openai.NewError(http.StatusRequestEntityTooLarge, openai.TypeInvalidRequest, "request_too_large",
			fmt.Sprintf("request body exceeds the configured limit of %d bytes", limit))
	}
	body := r.ctx.RequestBodyStream()
	n := req.Header.ContentLength()
	if n > limit {
		drain(body, n)
		return tooLarge()
	}
	var b []byte
	if n >= 0 {
		// The length is announced (and the stream ends there): one
		// buffer of that size.
		b = make([]byte, n)
		if _, err := io.ReadFull(body, b); err != nil {
			return openai.InvalidRequest("", "cannot read the request body: "+err.Error())
		}
	} else {
		var err error
		if b, err = io.ReadAll(io.LimitReader(body, int64(limit)+1)); err != nil {
			return openai.InvalidRequest("", "cannot read the request body: "+err.Error())
		}
		if len(b) > limit {
			drain(body, -1)
			return tooLarge()
		}
	}
	req.SetBodyRaw(b)
	return nil
}

// maxDrain bounds how much of a refused body is read and discarded so
// that the client, still sending, sees the 413 instead of a reset.
const maxDrain = 64 << 20

// drain discards up to maxDrain bytes of a refused body; a body known to
// be larger is not read at all and the connection is closed.
func drain(body io.Reader, size int) {
	if size > maxDrain {
		return
	}
	io.Copy(io.Discard, io.LimitReader(body, maxDrain))
}

// call is one request as it passes the middleware chain: id and key
// are filled in by the request id and auth stages.
type call struct {
	s     *Server
	g     *generation
	ctx   *fasthttp.RequestCtx
	id    string
	key   *auth.Key
	start time.Time
	op    *telemetry.Op // the GenAI operation of a chat or embeddings request
	// requested is the model an AI request names.
	requested string
	traffic   traffic
	// mw is the request's middleware chain; nil runs none.
	mw *mw.Chain
	// cache is set when the request's answer goes into the response
	// cache.
	cache *cached
	// out writes the answer in the API the client called; nil for OpenAI
	// chat completions (see dialect).
	out dialect
	// served is the instance that answered an AI request.
	served string
}

func (r *call) method(want string) bool {
	if string(r.ctx.Method()) == want {
		return true
	}
	r.ctx.Response.Header.Set("Allow", want)
	writeError(r.ctx, openai.NewError(http.StatusMethodNotAllowed, openai.TypeInvalidRequest, "method_not_allowed",
		fmt.Sprintf("%s %s is not supported; use %s", r.ctx.Method(), r.ctx.Path(), want)))
	return false
}

// context returns a context for the plugin call bounded by the request
// timeout; Abort cancels it.
func (r *call) context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.s.base, r.s.opts.RequestTimeout)
}

// writeError writes err in the OpenAI error shape with its status and
// Retry-After.
func writeError(ctx *fasthttp.RequestCtx, err error) {
	e := asAPIError(err)
	ctx.Response.SetStatusCode(e.Status)
	if e.RetryAfter > 0 {
		secs := int((e.RetryAfter + time.Second - 1) / time.Second)
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(secs))
	}
	ctx.SetContentType("application/json")
	if d := dialectOf(ctx); d != nil {
		ctx.SetBody(d.Error(e))
		return
	}
	ctx.SetBody(e.JSON())
}

// asAPIError maps any error to the *openai.Error the client sees.
func asAPIError(err error) *openai.Error {
	var e *openai.Error
	switch {
	case errors.As(err, &e):
		if e.Status == 0 {
			c := *e
			c.Status = http.StatusBadGateway
			return &c
		}
		return e
	case errors.Is(err, context.DeadlineExceeded):
		return openai.NewError(http.StatusGatewayTimeout, openai.TypeTimeout, "request_timeout", "the request timed out")
	case errors.Is(err, context.Canceled):
		return openai.NewError(499, openai.TypeInvalidRequest, "client_closed_request", "the client closed the request")
	}
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_error", err.Error())
}
