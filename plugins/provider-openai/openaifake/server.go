// Package openaifake is a local stand-in for the OpenAI HTTP API, speaking
// its wire protocol: POST /v1/chat/completions (JSON and data-only SSE
// ending in "data: [DONE]"), POST /v1/embeddings and GET /v1/models, behind
// "Authorization: Bearer <key>".
//
// Replies are deterministic: the default answer is derived from the last
// user message, ids from the request body, and "created" is fixed. A
// Scenario changes what the next requests see (canned text, tool calls,
// a broken stream, slow chunks) and FailNext makes the next requests fail
// with a chosen status. The server records the last request and counts
// requests and client disconnects, so tests can check what reached the
// upstream.
//
//	srv := openaifake.New(openaifake.Options{Key: "sk-test"})
//	srv.Start()
//	defer srv.Close()
//	// point the client at srv.URL() + "/v1"
package openaifake

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Created is the "created" timestamp of every response.
const Created = 1730000000

// DefaultKey is the API key the server accepts when Options.Key is empty.
const DefaultKey = "sk-fake-openai"

// DefaultModels are the models served when Options.Models is empty.
var DefaultModels = []string{"gpt-4o", "gpt-4o-mini", "gpt-4.1", "text-embedding-3-small"}

// Options configure a Server.
type Options struct {
	// Key is the accepted bearer key; DefaultKey when empty.
	Key string
	// Models are the model ids the server knows; others get 404
	// model_not_found. DefaultModels when empty.
	Models []string
	// Fast is the zero-overhead mode for benchmarks: requests are
	// authenticated and counted but neither recorded nor validated, and
	// every chat answer is one precomputed reply.
	Fast bool
}

// Scenario shapes the answers to the requests that follow SetScenario.
// The zero Scenario gives the deterministic default behaviour.
type Scenario struct {
	// Reply replaces the text derived from the last user message.
	Reply string
	// ToolCalls makes the model call these tools instead of replying with
	// text; two or more are parallel calls.
	ToolCalls []ToolCall
	// FinishReason overrides the finish reason ("length", "content_filter").
	FinishReason string
	// ChunkDelay is a pause before every streamed chunk, and before a
	// non-streamed answer. The server watches for client disconnects
	// while it waits.
	ChunkDelay time.Duration
	// SplitEvents writes every SSE event in two writes, flushed apart.
	SplitEvents bool
	// Break ends the stream abnormally after BreakAfter chunks.
	Break Break
	// BreakAfter is the number of chunks sent before Break applies.
	BreakAfter int
	// CachedTokens are reported as prompt tokens read from the prompt
	// cache (part of prompt_tokens); ReasoningTokens as completion tokens
	// spent reasoning (added to completion_tokens), as OpenAI does.
	CachedTokens, ReasoningTokens int
}

// ToolCall is a tool call the fake model makes.
type ToolCall struct {
	ID        string
	Name      string
	Arguments string
}

// Break is an abnormal end of a stream.
type Break int

// Ways a stream can end abnormally.
const (
	// BreakNone ends streams normally with "data: [DONE]".
	BreakNone Break = iota
	// BreakError sends a data: {"error":...} event and closes the stream.
	BreakError
	// BreakCut closes the stream without "data: [DONE]".
	BreakCut
)

// Failure is an error answer forced by FailNext.
type Failure struct {
	// Status is the HTTP status, e.g. 429.
	Status int
	// RetryAfter is sent as the Retry-After header when set ("2" or an
	// HTTP date).
	RetryAfter string
	// RetryAfterMs is sent as the retry-after-ms header when set.
	RetryAfterMs string
	// Type, Code, Message and Param override the error body's fields;
	// empty ones take OpenAI's usual values for Status.
	Type, Code, Message, Param string
}

// Request is a request as the server received it.
type Request struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// Server is the fake OpenAI API. Its methods are safe for concurrent use.
type Server struct {
	opts   Options
	models map[string]bool
	fast   fastReplies

	key atomic.Pointer[string]

	mu       sync.Mutex
	scenario Scenario
	failures []Failure
	last     Request

	requests  atomic.Int64
	cancelled atomic.Int64

	ts *httptest.Server
}

var _ http.Handler = (*Server)(nil)

// New returns a Server; call Start to listen, or use it as an
// http.Handler.
func New(opts Options) *Server {
	if opts.Key == "" {
		opts.Key = DefaultKey
	}
	if len(opts.Models) == 0 {
		opts.Models = DefaultModels
	}
	s := &Server{opts: opts, models: map[string]bool{}}
	for _, m := range opts.Models {
		s.models[m] = true
	}
	s.SetKey(opts.Key)
	s.fast = newFastReplies(opts.Models[0])
	return s
}

// Start serves on a fresh port on 127.0.0.1.
func (s *Server) Start() {
	s.ts = httptest.NewServer(s)
}

// URL is the server's origin, e.g. "http://127.0.0.1:41234"; the API is
// under URL()+"/v1".
func (s *Server) URL() string {
	if s.ts == nil {
		return ""
	}
	return s.ts.URL
}

// Close stops the server and closes open connections.
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.CloseClientConnections()
		s.ts.Close()
	}
}

// SetKey changes the accepted bearer key, e.g. to test key rotation.
func (s *Server) SetKey(key string) {
	s.key.Store(&key)
}

// SetScenario makes sc apply to the requests that follow.
func (s *Server) SetScenario(sc Scenario) {
	s.mu.Lock()
	s.scenario = sc
	s.mu.Unlock()
}

// FailNext makes the next n requests fail with f.
func (s *Server) FailNext(n int, f Failure) {
	s.mu.Lock()
	for range n {
		s.failures = append(s.failures, f)
	}
	s.mu.Unlock()
}

// Reset restores the default scenario, drops pending failures and zeroes
// the counters and the recorded request.
func (s *Server) Reset() {
	s.mu.Lock()
	s.scenario = Scenario{}
	s.failures = nil
	s.last = Request{}
	s.mu.Unlock()
	s.requests.Store(0)
	s.cancelled.Store(0)
}

// LastRequest returns the last request received (a copy).
func (s *Server) LastRequest() Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.last
	r.Header = r.Header.Clone()
	r.Body = append([]byte(nil), r.Body...)
	return r
}

// Requests counts the requests received since New or Reset.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Cancelled counts the requests whose client went away before the answer
// was complete.
func (s *Server) Cancelled() int64 { return s.cancelled.Load() }

// WaitCancelled waits up to d for at least one cancelled request and
// reports whether there was one.
func (s *Server) WaitCancelled(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for s.cancelled.Load() == 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.requests.Add(1)
	h := w.Header()
	h.Set("x-request-id", "req_fake_"+strconv.FormatInt(n, 10))
	h.Set("openai-processing-ms", "1")
	h.Set("x-ratelimit-limit-requests", "10000")
	h.Set("x-ratelimit-remaining-requests", "9999")
	h.Set("x-ratelimit-reset-requests", "6ms")
	h.Set("x-ratelimit-limit-tokens", "2000000")
	h.Set("x-ratelimit-remaining-tokens", "1999990")
	h.Set("x-ratelimit-reset-tokens", "0s")

	if !s.authorized(r) {
		writeAuthError(w, r)
		return
	}
	if s.opts.Fast {
		s.serveFast(w, r)
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, apiError{Type: typeInvalidRequest, Message: "could not read the request body: " + err.Error()})
		return
	}
	s.mu.Lock()
	s.last = Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	var fail *Failure
	if len(s.failures) > 0 {
		f := s.failures[0]
		s.failures = s.failures[1:]
		fail = &f
	}
	sc := s.scenario
	s.mu.Unlock()

	if fail != nil {
		writeFailure(w, *fail)
		return
	}
	switch {
	case r.URL.Path == "/v1/chat/completions":
		if !allowMethod(w, r, http.MethodPost) {
			return
		}
		s.serveChat(w, r, body, sc)
	case r.URL.Path == "/v1/embeddings":
		if !allowMethod(w, r, http.MethodPost) {
			return
		}
		s.serveEmbeddings(w, body)
	case r.URL.Path == "/v1/models":
		if !allowMethod(w, r, http.MethodGet) {
			return
		}
		s.serveModels(w)
	case strings.HasPrefix(r.URL.Path, "/v1/models/"):
		if !allowMethod(w, r, http.MethodGet) {
			return
		}
		s.serveModel(w, strings.TrimPrefix(r.URL.Path, "/v1/models/"))
	default:
		writeError(w, http.StatusNotFound, apiError{Type: typeInvalidRequest,
			Message: "Invalid URL (" + r.Method + " " + r.URL.Path + ")"})
	}
}

func (s *Server) authorized(r *http.Request) bool {
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && key != "" && key == *s.key.Load()
}

func allowMethod(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method {
		return true
	}
	w.Header().Set("Allow", method)
	writeError(w, http.StatusMethodNotAllowed, apiError{Type: typeInvalidRequest,
		Message: "Invalid method for URL (" + r.Method + " " + r.URL.Path + ")"})
	return false
}

// wait sleeps d unless the client goes away first; it reports whether
// the client is still there, counting a disconnect.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		if r.Context().Err() != nil {
			s.cancelled.Add(1)
			return false
		}
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		s.cancelled.Add(1)
		return false
	}
}
