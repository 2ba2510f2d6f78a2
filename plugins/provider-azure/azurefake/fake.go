// Package azurefake is a local stand-in for the Azure OpenAI data plane and
// the Microsoft Entra ID token endpoint, for tests.
//
// It speaks the deployment-based Azure OpenAI protocol: chat completions
// (JSON and SSE), embeddings and the model list under /openai/..., each
// requiring an api-version query parameter, authenticated by exactly one of
// an api-key header or an Entra bearer token that the fake itself issued
// from POST /{tenant}/oauth2/v2.0/token (client-credentials grant). Replies
// carry Azure's content-filter annotations and its streaming quirks (a
// first chunk with empty choices, filter results on chunks, [DONE]).
//
// Scenario controls change what the next replies look like (canned text,
// tool calls, finish reason, a failure mid-stream, a cut-off connection,
// events split across writes) and force error statuses for the next N
// requests. The fake records the last data-plane request and counts
// requests, so tests can check what reached the upstream.
package azurefake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// DefaultScope is the Entra scope Azure OpenAI tokens are issued for.
const DefaultScope = "https://cognitiveservices.azure.com/.default"

// DefaultText is the reply text when no scenario sets one.
const DefaultText = "Hello from the Azure OpenAI fake."

// Options configures a Server. Zero values get the defaults documented on
// each field.
type Options struct {
	// APIKey is the key the api-key header must carry. Empty disables
	// api-key authentication.
	APIKey string
	// TenantID, ClientID and ClientSecret are the Entra application the
	// token endpoint accepts. Empty TenantID disables Entra authentication.
	TenantID     string
	ClientID     string
	ClientSecret string
	// Scope is the scope token requests must ask for (default DefaultScope).
	Scope string
	// TokenTTL is the lifetime of issued tokens (default one hour).
	TokenTTL time.Duration
	// Deployments maps deployment names to the model each one runs
	// (default: "gpt-4o" → "gpt-4o-2024-08-06" and "text-embedding-3-small"
	// → "text-embedding-3-small"). Deployments of models whose name starts
	// with "text-embedding" serve embeddings only; the others serve chat only.
	Deployments map[string]string
	// Region is reported in x-ms-region (default "eastus").
	Region string
	// AcceptToken, when set, also accepts bearer tokens another fake
	// issued (a workload-identity Entra or managed-identity endpoint), such
	// as identityfake's Issued.
	AcceptToken func(token string) bool
}

// ToolCall is a tool call the fake's reply makes.
type ToolCall struct {
	Name string
	// Arguments is the JSON text of the call's arguments.
	Arguments string
}

// Scenario shapes the fake's chat replies until it is changed.
type Scenario struct {
	// Text is the reply (default DefaultText). When the request asks for
	// a JSON response format, the fake wraps it as {"reply": Text}.
	Text string
	// ToolCalls, when set and the request declares tools, replace the text
	// reply by these calls (finish_reason tool_calls).
	ToolCalls []ToolCall
	// FinishReason overrides the finish reason, e.g. "content_filter".
	FinishReason string
	// StreamError makes a stream fail with a data: {"error":...} event
	// after its first content chunk.
	StreamError bool
	// CutOff makes a stream drop the connection after its first content
	// chunk, without [DONE].
	CutOff bool
	// SplitWrites writes every SSE event in two pieces, flushing between
	// them, so that readers must join partial events.
	SplitWrites bool
	// Annotations adds asynchronous-filter chunks that carry only
	// content_filter_results and content_filter_offsets (no delta).
	Annotations bool
	// CachedTokens are reported as prompt tokens read from the prompt
	// cache (part of prompt_tokens); ReasoningTokens as completion tokens
	// spent reasoning (added to completion_tokens), as Azure OpenAI does.
	CachedTokens, ReasoningTokens int
}

// Request is a data-plane request the fake received.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
}

// JSON decodes the request body into v.
func (r *Request) JSON(v any) error { return json.Unmarshal(r.Body, v) }

type failure struct {
	status     int
	retryAfter time.Duration
}

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	opts Options
	srv  *httptest.Server

	mu            sync.Mutex
	scenario      Scenario
	failures      []failure
	last          *Request
	requests      int
	tokenRequests int
	tokenDelay    time.Duration
	tokens        map[string]time.Time
}

// New returns a Server with opts; call Start to listen.
func New(opts Options) *Server {
	if opts.Scope == "" {
		opts.Scope = DefaultScope
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = time.Hour
	}
	if opts.Deployments == nil {
		opts.Deployments = map[string]string{
			"gpt-4o":                 "gpt-4o-2024-08-06",
			"text-embedding-3-small": "text-embedding-3-small",
		}
	}
	if opts.Region == "" {
		opts.Region = "eastus"
	}
	return &Server{opts: opts, tokens: map[string]time.Time{}}
}

// Start listens on 127.0.0.1 on a free port and returns s.
func (s *Server) Start() *Server {
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	return s
}

// URL is the fake's base URL, to be used as both the resource endpoint and
// the Entra authority host.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the fake.
func (s *Server) Close() { s.srv.Close() }

// SetScenario replaces the current scenario.
func (s *Server) SetScenario(sc Scenario) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scenario = sc
}

// FailNext makes the next n data-plane requests fail with status and the
// Azure error body that goes with it: 400 content_filter (with
// innererror), 401, 404 DeploymentNotFound, 429 (with retry-after), 500 or
// 503. A positive retryAfter sets Retry-After and retry-after-ms.
func (s *Server) FailNext(n, status int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, failure{status: status, retryAfter: retryAfter})
	}
}

// SetTokenDelay delays every token response by d, so tests can make
// concurrent token requests overlap.
func (s *Server) SetTokenDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenDelay = d
}

// ExpireTokens makes every token issued so far invalid.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// LastRequest returns the last data-plane request received, or nil.
func (s *Server) LastRequest() *Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		return nil
	}
	r := *s.last
	return &r
}

// Requests counts the data-plane requests received, rejected ones included.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// TokenRequests counts the requests to the token endpoint.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenRequests
}

// Reset clears the scenario, pending failures, the recorded request and
// the counters. Issued tokens stay valid.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scenario = Scenario{}
	s.failures = nil
	s.last = nil
	s.requests = 0
	s.tokenRequests = 0
	s.tokenDelay = 0
}

var (
	tokenPath      = regexp.MustCompile(`^/([^/]+)/oauth2/v2\.0/token$`)
	deploymentPath = regexp.MustCompile(`^/openai/deployments/([^/]+)/(chat/completions|embeddings)$`)
	apiVersionRE   = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(-preview)?$`)
)

const maxBody = 32 << 20

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if m := tokenPath.FindStringSubmatch(r.URL.Path); m != nil {
		s.serveToken(w, r, m[1])
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "could not read the request body", nil)
		return
	}
	sc, fail := s.record(r, body)
	w.Header().Set("apim-request-id", "fake-apim-0001")
	w.Header().Set("x-request-id", "fake-request-0001")
	w.Header().Set("x-ms-region", s.opts.Region)
	if !strings.HasPrefix(r.URL.Path, "/openai/") {
		writeError(w, http.StatusNotFound, "404", "Resource not found", nil)
		return
	}
	if v := r.URL.Query().Get("api-version"); v == "" {
		writeError(w, http.StatusBadRequest, "MissingApiVersionParameter",
			"The api-version query parameter (?api-version=) is required for all requests.", nil)
		return
	} else if !apiVersionRE.MatchString(v) {
		writeError(w, http.StatusNotFound, "404", "Resource not found", nil)
		return
	}
	if status, code, msg := s.checkAuth(r); status != 0 {
		writeError(w, status, code, msg, nil)
		return
	}
	if fail != nil {
		writeFailure(w, *fail)
		return
	}
	if r.URL.Path == "/openai/models" {
		if r.Method != http.MethodGet {
			writeError(w, http.StatusMethodNotAllowed, "405", "Method not allowed", nil)
			return
		}
		s.serveModels(w)
		return
	}
	m := deploymentPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		writeError(w, http.StatusNotFound, "404", "Resource not found", nil)
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "405", "Method not allowed", nil)
		return
	}
	model, ok := s.opts.Deployments[m[1]]
	if !ok {
		writeError(w, http.StatusNotFound, "DeploymentNotFound",
			"The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.", nil)
		return
	}
	embedding := strings.HasPrefix(model, "text-embedding")
	if embedding != (m[2] == "embeddings") {
		writeError(w, http.StatusBadRequest, "OperationNotSupported",
			fmt.Sprintf("The %s operation does not work with the specified model, %s. Please choose different model and try again.", m[2], model), nil)
		return
	}
	if embedding {
		s.serveEmbeddings(w, body, model)
		return
	}
	s.serveChat(w, body, model, sc)
}

// record stores the request and takes the scenario and the next forced
// failure, if any.
func (s *Server) record(r *http.Request, body []byte) (Scenario, *failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	s.last = &Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body}
	var f *failure
	if len(s.failures) > 0 {
		f = &s.failures[0]
		s.failures = s.failures[1:]
	}
	return s.scenario, f
}

// checkAuth returns a non-zero status with Azure's error code and message
// when the request is not authenticated.
func (s *Server) checkAuth(r *http.Request) (int, string, string) {
	key := r.Header.Get("api-key")
	authz := r.Header.Get("Authorization")
	switch {
	case key != "" && authz != "":
		return http.StatusBadRequest, "BadRequest",
			"Both an api-key header and an Authorization header were provided. Use only one authentication method."
	case key != "":
		if s.opts.APIKey == "" || key != s.opts.APIKey {
			return http.StatusUnauthorized, "401",
				"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."
		}
		return 0, "", ""
	case authz != "":
		token, ok := strings.CutPrefix(authz, "Bearer ")
		if ok && s.tokenValid(token) {
			return 0, "", ""
		}
		return http.StatusUnauthorized, "401",
			"Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired."
	}
	return http.StatusUnauthorized, "401",
		"Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API."
}

func (s *Server) serveModels(w http.ResponseWriter) {
	type model struct {
		ID              string `json:"id"`
		Object          string `json:"object"`
		CreatedAt       int64  `json:"created_at"`
		Status          string `json:"status"`
		LifecycleStatus string `json:"lifecycle_status"`
	}
	seen := map[string]bool{}
	out := struct {
		Data   []model `json:"data"`
		Object string  `json:"object"`
	}{Object: "list", Data: []model{}}
	for _, m := range sortedValues(s.opts.Deployments) {
		if seen[m] {
			continue
		}
		seen[m] = true
		out.Data = append(out.Data, model{ID: m, Object: "model", CreatedAt: created, Status: "succeeded", LifecycleStatus: "generally-available"})
	}
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
