// Package server is llmproxy's HTTP front: it runs the request pipeline
// auth → path → mode → model → provider instance on fasthttp.
//
// Paths:
//
//	/v1/chat/completions, /v1/embeddings, /v1/models[/{id}]   protocol mode
//	/-{type}/{instance}/{native path}                         transparent mode
//	/healthz, /readyz                                         the host's own
//
// Every response carries X-Request-Id, and every error has the OpenAI shape
// {"error":{"message","type","param","code"}}.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/llmproxy/llmproxy/host/internal/access"
	"github.com/llmproxy/llmproxy/host/internal/auth"
	"github.com/llmproxy/llmproxy/host/internal/document"
	"github.com/llmproxy/llmproxy/host/internal/metrics"
	"github.com/llmproxy/llmproxy/host/internal/plugins"
	"github.com/llmproxy/llmproxy/host/internal/router"
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
}

// New returns a Server.
func New(opts Options) *Server {
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Minute
	}
	s := &Server{
		opts:   opts,
		log:    opts.Logger,
		prefix: "req_" + strconv.FormatInt(time.Now().UnixNano()%1e12, 36) + "_",
	}
	if opts.Documents != nil {
		s.docs = documentResolver{s: s, res: opts.Documents}
	}
	return s
}

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
		// stream: storage uploads stream through; everything else is
		// refused with 413 (see readBody).
		StreamRequestBody:            true,
		ReadTimeout:                  5 * time.Minute,
		IdleTimeout:                  2 * time.Minute,
		DisablePreParseMultipartForm: true,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			ctx.Response.Header.Set("X-Request-Id", s.requestID(ctx))
			if errors.Is(err, fasthttp.ErrBodyTooLarge) {
				writeError(ctx, openai.NewError(http.StatusRequestEntityTooLarge, openai.TypeInvalidRequest, "request_too_large",
					fmt.Sprintf("request body exceeds the configured limit of %d bytes", s.opts.MaxBodyBytes)))
				return
			}
			writeError(ctx, openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, "bad_request", "malformed HTTP request: "+err.Error()))
		},
	}
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
	start := time.Now()
	id := s.requestID(ctx)
	ctx.Response.Header.Set("X-Request-Id", id)
	key := s.dispatch(ctx, id)
	if s.opts.Metrics != nil {
		s.opts.Metrics.Observe(endpoint(ctx.Path()), ctx.Response.StatusCode(), time.Since(start))
	}
	if s.opts.AccessLog {
		name := ""
		if key != nil {
			name = key.Name
		}
		s.log.Info("request", "request_id", id, "method", string(ctx.Method()), "path", string(ctx.Path()),
			"status", ctx.Response.StatusCode(), "key", name, "duration", time.Since(start))
	}
}

func (s *Server) dispatch(ctx *fasthttp.RequestCtx, id string) *auth.Key {
	path := string(ctx.Path())
	switch path {
	case "/healthz":
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"ok"}`)
		return nil
	case "/readyz":
		s.ready(ctx)
		return nil
	case "/metrics":
		if s.opts.Metrics != nil {
			s.opts.Metrics.Serve(ctx)
			return nil
		}
	}
	if strings.HasPrefix(path, "/-") && isSignedObjectPath(path) {
		s.signed(ctx, id)
		return nil
	}
	if !strings.HasPrefix(path, "/v1/") && !strings.HasPrefix(path, "/-") {
		writeError(ctx, openai.NewError(http.StatusNotFound, openai.TypeNotFound, "unknown_path",
			fmt.Sprintf("no route for %s %s; the AI API is under /v1/ and instances under /-{type}/{instance}/", ctx.Method(), path)))
		return nil
	}
	key := s.opts.Keys.Lookup(auth.Secret(&ctx.Request.Header))
	if key == nil {
		msg := "missing API key: send Authorization: Bearer <key> or X-API-Key"
		if len(auth.Secret(&ctx.Request.Header)) > 0 {
			msg = "invalid API key"
		}
		writeError(ctx, openai.NewError(http.StatusUnauthorized, openai.TypeInvalidRequest, "invalid_api_key", msg))
		return nil
	}
	r := &call{s: s, ctx: ctx, id: id, key: key}
	if !strings.HasPrefix(path, "/-") || !r.isStorage() {
		if err := r.readBody(); err != nil {
			writeError(ctx, err)
			return key
		}
	}
	switch {
	case path == "/v1/chat/completions":
		if !r.method("POST") {
			return key
		}
		r.chat()
	case path == "/v1/embeddings":
		if !r.method("POST") {
			return key
		}
		r.embeddings()
	case path == "/v1/models":
		if !r.method("GET") {
			return key
		}
		r.models()
	case strings.HasPrefix(path, "/v1/models/"):
		if !r.method("GET") {
			return key
		}
		r.model(strings.TrimPrefix(path, "/v1/models/"))
	case strings.HasPrefix(path, "/-"):
		r.instance()
	default:
		writeError(ctx, openai.NewError(http.StatusNotFound, openai.TypeNotFound, "unknown_path",
			fmt.Sprintf("no route for %s %s", ctx.Method(), path)))
	}
	return key
}

// endpoint names the class of a path for metrics, with a bounded set of
// values.
func endpoint(path []byte) string {
	switch p := string(path); {
	case p == "/v1/chat/completions":
		return "chat"
	case p == "/v1/embeddings":
		return "embeddings"
	case strings.HasPrefix(p, "/v1/models"):
		return "models"
	case strings.HasPrefix(p, "/-"):
		return "instance"
	case p == "/healthz" || p == "/readyz" || p == "/metrics":
		return "host"
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
	tooLarge := openai.NewError(http.StatusRequestEntityTooLarge, openai.TypeInvalidRequest, "request_too_large",
		fmt.Sprintf("request body exceeds the configured limit of %d bytes", limit))
	body := r.ctx.RequestBodyStream()
	if n := req.Header.ContentLength(); n > limit {
		drain(body, n)
		return tooLarge
	}
	b, err := io.ReadAll(io.LimitReader(body, int64(limit)+1))
	if err != nil {
		return openai.InvalidRequest("", "cannot read the request body: "+err.Error())
	}
	if len(b) > limit {
		drain(body, -1)
		return tooLarge
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

// call is one authenticated request.
type call struct {
	s   *Server
	ctx *fasthttp.RequestCtx
	id  string
	key *auth.Key
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
// timeout.
func (r *call) context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), r.s.opts.RequestTimeout)
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
