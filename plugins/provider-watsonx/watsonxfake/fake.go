// Package watsonxfake is a local fake of IBM watsonx.ai and of the IBM
// Cloud IAM token service, for tests. It speaks the real wire protocols:
// POST /identity/token with the apikey grant (form body, JSON answer with
// access_token, expires_in and expiration, IAM's error bodies), and the
// watsonx.ai text chat API — /ml/v1/text/chat, /ml/v1/text/chat_stream
// (server-sent events with id, event and data lines and no [DONE]), the
// deployment variants, /ml/v1/text/embeddings and
// /ml/v1/foundation_model_specs — with the API's request validation
// (version parameter, model_id and exactly one of project_id and
// space_id, tool_choice_option against tool_choice, known fields only)
// and its {"errors":[...],"status_code":N} bodies.
//
// Authentication works the way the service's does: only bearer tokens the
// fake's IAM issued are accepted, and only while they live; an expired
// one is refused with 401 authentication_token_expired. Options.TokenTTL
// makes tokens short-lived, and ExpireTokens ends every issued token at
// once (as a revocation or clock skew would).
//
// Scenario controls choose the answer (text, tool calls, finish reason,
// usage) and the stream's shape and failures (split writes, an error
// event mid-stream, a cut-off body, a separate usage chunk, a trailing
// [DONE]); FailNext forces error statuses with Retry-After; every request
// is recorded.
//
//	f := watsonxfake.New(watsonxfake.Options{APIKey: "key", TokenTTL: 2 * time.Second})
//	if err := f.Start(); err != nil { ... }
//	defer f.Close()
//	f.SetScenario(watsonxfake.Scenario{Text: "Hi"})
package watsonxfake

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of a fake.
const (
	DefaultAPIKey    = "ibm-cloud-fake-api-key"
	DefaultProjectID = "7f3c2d1e-0000-4a5b-8c9d-0123456789ab"
	DefaultTokenTTL  = time.Hour
	DefaultID        = "chatcmpl-wx-fake-01"
	// DefaultCreated is the "created" time of every answer.
	DefaultCreated = 1730000000
)

// maxBody is the request size above which the API answers 413.
const maxBody = 32 << 20

// Options configure a fake.
type Options struct {
	// APIKey is the only IBM Cloud API key IAM accepts; DefaultAPIKey
	// when empty.
	APIKey string
	// CRToken is the compute-resource token the cr-token grant accepts
	// (none when empty), for the trusted profile TrustedProfileID or
	// TrustedProfileName.
	CRToken            string
	TrustedProfileID   string
	TrustedProfileName string
	// TokenTTL is the lifetime of issued tokens, rounded to whole seconds
	// in expires_in; DefaultTokenTTL when zero.
	TokenTTL time.Duration
	// ProjectID and SpaceID, when set, are the only scopes accepted.
	ProjectID string
	SpaceID   string
	// Deployments are the deployment ids (or serving names) that exist,
	// each with the model it serves; any id is accepted when nil.
	Deployments map[string]string
	// Models are listed by foundation_model_specs; DefaultModels when nil.
	Models []Model
}

// Model is one entry of foundation_model_specs.
type Model struct {
	ID        string
	Provider  string
	Functions []string
}

// DefaultModels are listed when Options.Models is nil.
var DefaultModels = []Model{
	{ID: "ibm/granite-3-3-8b-instruct", Provider: "IBM", Functions: []string{"text_chat", "text_generation"}},
	{ID: "meta-llama/llama-3-3-70b-instruct", Provider: "Meta", Functions: []string{"text_chat", "text_generation"}},
	{ID: "mistralai/mistral-large", Provider: "Mistral AI", Functions: []string{"text_chat"}},
	{ID: "ibm/slate-125m-english-rtrvr", Provider: "IBM", Functions: []string{"embedding"}},
}

// ToolCall is a tool call the fake answers with.
type ToolCall struct {
	// ID is the call id; empty sends a call without id, as some models do.
	ID        string
	Name      string
	Arguments string
}

// Usage is the token accounting the fake reports.
type Usage struct {
	PromptTokens     int
	CompletionTokens int
	// CachedTokens (part of PromptTokens) and ReasoningTokens (part of
	// CompletionTokens) are reported in prompt_tokens_details and
	// completion_tokens_details, as models served with prefix caching or
	// reasoning report them, when not zero.
	CachedTokens, ReasoningTokens int
}

// Scenario is what the fake answers to chat requests.
type Scenario struct {
	// ID is the completion id; DefaultID when empty.
	ID string
	// Model is the model reported; the request's model_id (or the
	// deployment's model) when empty.
	Model string
	// Text is the answer's text; a default greeting when empty and there
	// are no tool calls.
	Text      string
	ToolCalls []ToolCall
	// ToolResultText, when set, is the text answered instead (with no
	// tool calls) to a request whose last message is a tool result: the
	// second turn of a tool flow.
	ToolResultText string
	// FinishReason defaults to tool_calls when there are tool calls, else
	// stop.
	FinishReason string
	// Usage defaults to 12 prompt and 9 completion tokens when zero.
	Usage Usage

	// ChunkSize is how many bytes of text or arguments one stream event
	// carries (default 8).
	ChunkSize int
	// SplitWrites writes every event in two writes, flushed apart.
	SplitWrites bool
	// UsageChunk sends the usage in a chunk of its own, after the
	// finishing chunk, instead of on it.
	UsageChunk bool
	// Done ends the stream with a data: [DONE] event.
	Done bool
	// OmitIndex leaves the index out of tool-call fragments.
	OmitIndex bool
	// ResponseDelay pauses before the response headers.
	ResponseDelay time.Duration
	// EventDelay pauses before each stream event after the first.
	EventDelay time.Duration
	// ErrorAfter, when positive, sends an error event after that many
	// events and ends the stream.
	ErrorAfter int
	// ErrorStatus, ErrorCode and ErrorMessage describe that error event
	// (default 500, internal_server_error).
	ErrorStatus  int
	ErrorCode    string
	ErrorMessage string
	// CutAfter, when positive, ends the body after that many events plus
	// half of the next one.
	CutAfter int
	// HoldOpen keeps the connection open that long after the last event
	// before the body ends.
	HoldOpen time.Duration
}

// Failure is a forced error response.
type Failure struct {
	// Status is the HTTP status, e.g. 400, 401, 429, 500 or 503.
	Status int
	// Code is the errors[0].code; derived from Status when empty.
	Code string
	// Message defaults to a message like the API's for Code.
	Message string
	// RetryAfter is sent as the Retry-After header when set, e.g. "7".
	RetryAfter string
}

// Request is a request the fake received.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
}

// issued is a token the fake's IAM handed out.
type issued struct {
	expires time.Time
}

// Server is the fake watsonx.ai and IAM service.
type Server struct {
	opts Options

	mu          sync.Mutex
	scenario    Scenario
	failures    []Failure
	iamFails    []Failure
	tokens      map[string]*issued
	exchanges   int
	crExchanges int
	requests    []Request
	expiredHit  int

	srv *http.Server
	ln  net.Listener
}

// New returns a fake that is not yet listening; see Start and Handler.
func New(opts Options) *Server {
	if opts.APIKey == "" {
		opts.APIKey = DefaultAPIKey
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = DefaultTokenTTL
	}
	if opts.Models == nil {
		opts.Models = DefaultModels
	}
	return &Server{opts: opts, tokens: map[string]*issued{}}
}

// Start serves the fake on 127.0.0.1 at a free port.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("watsonxfake: listen: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return nil
}

// URL is the base URL of a started fake, e.g. http://127.0.0.1:40123. It
// serves both the watsonx.ai API and IAM.
func (s *Server) URL() string {
	if s.ln == nil {
		return ""
	}
	return "http://" + s.ln.Addr().String()
}

// Close stops a started fake and its open connections.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// APIKey is the API key IAM accepts.
func (s *Server) APIKey() string { return s.opts.APIKey }

// ProjectID is the project the fake expects, DefaultProjectID when
// Options.ProjectID is empty.
func (s *Server) ProjectID() string {
	if s.opts.ProjectID != "" {
		return s.opts.ProjectID
	}
	return DefaultProjectID
}

// SetScenario sets the answer to the following chat requests.
func (s *Server) SetScenario(sc Scenario) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scenario = sc
}

// FailNext makes the next n authenticated watsonx.ai model calls (POST
// requests) fail with f.
func (s *Server) FailNext(n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < n; i++ {
		s.failures = append(s.failures, f)
	}
}

// FailIAMNext makes the next n token exchanges fail with f (IAM refuses
// a key with 400 and errorCode BXNIM0415E).
func (s *Server) FailIAMNext(n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < n; i++ {
		s.iamFails = append(s.iamFails, f)
	}
}

// ExpireTokens ends the life of every token issued so far: the next
// request with one of them is refused as expired.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := time.Now().Add(-time.Second)
	for _, t := range s.tokens {
		t.expires = past
	}
}

// Reset restores the default scenario, drops pending failures and the
// recorded requests. Issued tokens stay valid.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scenario, s.failures, s.iamFails, s.requests, s.expiredHit = Scenario{}, nil, nil, nil, 0
}

// Exchanges is the number of successful token exchanges.
func (s *Server) Exchanges() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exchanges
}

// ExpiredRefusals is the number of requests refused because their token
// had expired, since the last Reset.
func (s *Server) ExpiredRefusals() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expiredHit
}

// Requests returns copies of the requests received since the last Reset,
// token exchanges included.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Header = r.Header.Clone()
		r.Body = append([]byte(nil), r.Body...)
		out[i] = r
	}
	return out
}

// LastRequest is a copy of the last watsonx.ai request (not a token
// exchange) received; the zero Request when there is none.
func (s *Server) LastRequest() Request {
	reqs := s.Requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Path != iamPath {
			return reqs[i]
		}
	}
	return Request{}
}

// Handler is the fake's HTTP handler, for use with httptest.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

const iamPath = "/identity/token"

var (
	deploymentPath = regexp.MustCompile(`^/ml/v1/deployments/([^/]+)/text/(chat|chat_stream)$`)
	versionDate    = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: body})
	n := len(s.requests)
	s.mu.Unlock()
	w.Header().Set("x-global-transaction-id", fmt.Sprintf("wx-fake-%04d", n))
	if r.URL.Path == iamPath {
		s.iam(w, r, body)
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_entity", "could not read the request body")
		return
	}
	if len(body) > maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, "request_entity_too_large", "Request entity too large")
		return
	}
	if !s.authorized(w, r) {
		return
	}
	v := r.URL.Query().Get("version")
	if v == "" {
		writeError(w, http.StatusBadRequest, "missing_query_parameter", "Missing query parameter `version`.")
		return
	}
	if !versionDate.MatchString(v) {
		writeError(w, http.StatusBadRequest, "invalid_query_parameter", "Invalid value for query parameter `version`: must be a date YYYY-MM-DD.")
		return
	}
	// Forced failures answer model calls (POSTs), never the GETs of a
	// health check or a model list, whose timing the test does not control.
	if f, ok := s.nextFailureFor(r); ok {
		writeFailure(w, f)
		return
	}
	switch p := r.URL.Path; {
	case p == "/ml/v1/text/chat" && r.Method == http.MethodPost:
		s.chat(w, r, body, "", false)
	case p == "/ml/v1/text/chat_stream" && r.Method == http.MethodPost:
		s.chat(w, r, body, "", true)
	case deploymentPath.MatchString(p) && r.Method == http.MethodPost:
		m := deploymentPath.FindStringSubmatch(p)
		s.chat(w, r, body, m[1], m[2] == "chat_stream")
	case p == "/ml/v1/text/embeddings" && r.Method == http.MethodPost:
		s.embeddings(w, body)
	case p == "/ml/v1/foundation_model_specs" && r.Method == http.MethodGet:
		s.specs(w, r)
	default:
		writeError(w, http.StatusNotFound, "not_found", "Not Found: "+p)
	}
}

// authorized checks the bearer token the way watsonx.ai does.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || tok == "" {
		writeError(w, http.StatusUnauthorized, "authorization_rejected", "Failed to authenticate the request due to missing or malformed Authorization header")
		return false
	}
	s.mu.Lock()
	t := s.tokens[tok]
	expired := t != nil && !time.Now().Before(t.expires)
	if expired {
		s.expiredHit++
	}
	s.mu.Unlock()
	switch {
	case t == nil:
		writeError(w, http.StatusUnauthorized, "authentication_token_not_valid", "Failed to authenticate the request due to invalid token")
		return false
	case expired:
		writeError(w, http.StatusUnauthorized, "authentication_token_expired", "Failed to authenticate the request due to an expired token")
		return false
	}
	return true
}

// iam serves POST /identity/token.
func (s *Server) iam(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodPost {
		writeIAMError(w, http.StatusMethodNotAllowed, "BXNIM0102E", "Method not allowed.")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		writeIAMError(w, http.StatusBadRequest, "BXNIM0109E", "Property missing or empty. Content-Type must be application/x-www-form-urlencoded.")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeIAMError(w, http.StatusBadRequest, "BXNIM0109E", "The request body is not a form.")
		return
	}
	s.mu.Lock()
	var fail *Failure
	if len(s.iamFails) > 0 {
		f := s.iamFails[0]
		s.iamFails = s.iamFails[1:]
		fail = &f
	}
	s.mu.Unlock()
	switch {
	case fail != nil:
		code, msg := fail.Code, fail.Message
		if code == "" {
			code, msg = "BXNIM0415E", "Provided API key could not be found."
		}
		if fail.RetryAfter != "" {
			w.Header().Set("Retry-After", fail.RetryAfter)
		}
		writeIAMError(w, fail.Status, code, msg)
		return
	case form.Get("grant_type") == "urn:ibm:params:oauth:grant-type:cr-token":
		if !s.trustedProfile(w, form) {
			return
		}
	case form.Get("grant_type") != "urn:ibm:params:oauth:grant-type:apikey":
		writeIAMError(w, http.StatusBadRequest, "BXNIM0103E", "Unsupported grant type.")
		return
	case form.Get("apikey") == "":
		writeIAMError(w, http.StatusBadRequest, "BXNIM0109E", "Property missing or empty. Property name: apikey.")
		return
	case form.Get("apikey") != s.opts.APIKey:
		writeIAMError(w, http.StatusBadRequest, "BXNIM0415E", "Provided API key could not be found.")
		return
	}
	buf := make([]byte, 24)
	_, _ = rand.Read(buf)
	tok := "eyJ.fake-iam." + hex.EncodeToString(buf)
	now := time.Now()
	exp := now.Add(s.opts.TokenTTL)
	s.mu.Lock()
	s.tokens[tok] = &issued{expires: exp}
	s.exchanges++
	s.mu.Unlock()
	secs := int64((s.opts.TokenTTL + time.Second - 1) / time.Second)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": tok, "refresh_token": "not_supported", "token_type": "Bearer",
		"expires_in": secs, "expiration": now.Unix() + secs, "scope": "ibm openid",
	})
}

// trustedProfile checks a cr-token grant: the compute-resource token must
// be Options.CRToken and the profile, named by id or by name (not both),
// Options.TrustedProfileID or Options.TrustedProfileName. It writes IAM's
// refusal and reports false when the grant does not pass.
func (s *Server) trustedProfile(w http.ResponseWriter, form url.Values) bool {
	cr, id, name := form.Get("cr_token"), form.Get("profile_id"), form.Get("profile_name")
	switch {
	case cr == "":
		writeIAMError(w, http.StatusBadRequest, "BXNIM0109E", "Property missing or empty. Property name: cr_token.")
	case (id == "") == (name == ""):
		writeIAMError(w, http.StatusBadRequest, "BXNIM0109E", "Exactly one of the properties profile_id and profile_name must be set.")
	case s.opts.CRToken == "" || subtle.ConstantTimeCompare([]byte(cr), []byte(s.opts.CRToken)) != 1:
		writeIAMError(w, http.StatusBadRequest, "BXNIM0490E", "The compute resource token could not be verified.")
	case (id != "" && id != s.opts.TrustedProfileID) || (name != "" && name != s.opts.TrustedProfileName):
		writeIAMError(w, http.StatusBadRequest, "BXNIM0491E", "The compute resource is not allowed to use the trusted profile.")
	default:
		s.mu.Lock()
		s.crExchanges++
		s.mu.Unlock()
		return true
	}
	return false
}

// CRExchanges is the number of accepted cr-token grants.
func (s *Server) CRExchanges() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.crExchanges
}

func writeIAMError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errorCode": code, "errorMessage": msg,
		"context": map[string]string{"requestId": "fake-iam-request"},
	})
}

// nextFailureFor takes the next forced failure for r, a POST.
func (s *Server) nextFailureFor(r *http.Request) (Failure, bool) {
	if r.Method != http.MethodPost {
		return Failure{}, false
	}
	return s.nextFailure()
}

func (s *Server) nextFailure() (Failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) == 0 {
		return Failure{}, false
	}
	f := s.failures[0]
	s.failures = s.failures[1:]
	return f, true
}

// errorCodes are the API's error codes and messages by status.
var errorCodes = map[int][2]string{
	400: {"json_validation_error", "Json document validation error"},
	401: {"authentication_token_not_valid", "Failed to authenticate the request due to invalid token"},
	403: {"authorization_rejected", "The user does not have access to the project"},
	404: {"model_not_supported", "Model is not supported"},
	413: {"request_entity_too_large", "Request entity too large"},
	429: {"rate_limit_exceeded", "The rate limit for this instance has been reached"},
	500: {"internal_server_error", "Internal server error"},
	503: {"service_unavailable", "The service is temporarily unavailable"},
}

func writeFailure(w http.ResponseWriter, f Failure) {
	def, ok := errorCodes[f.Status]
	if !ok {
		def = [2]string{"internal_server_error", http.StatusText(f.Status)}
	}
	if f.Code == "" {
		f.Code = def[0]
	}
	if f.Message == "" {
		f.Message = def[1]
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	writeError(w, f.Status, f.Code, f.Message)
}

// writeError writes the API's error body.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorJSON(status, code, msg))
}

func errorJSON(status int, code, msg string) map[string]any {
	return map[string]any{
		"errors":      []map[string]string{{"code": code, "message": msg, "more_info": "https://cloud.ibm.com/apidocs/watsonx-ai"}},
		"trace":       "fake0trace0" + strconv.Itoa(status),
		"status_code": status,
	}
}

// specs serves GET /ml/v1/foundation_model_specs with limit/start paging.
func (s *Server) specs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			writeError(w, http.StatusBadRequest, "invalid_query_parameter", "Invalid value for query parameter `limit`: must be between 1 and 200.")
			return
		}
		limit = n
	}
	start := 0
	if v := q.Get("start"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "invalid_query_parameter", "Invalid value for query parameter `start`.")
			return
		}
		start = n
	}
	filter := q.Get("filters")
	var models []Model
	for _, m := range s.opts.Models {
		if fn, ok := strings.CutPrefix(filter, "function_"); ok && !contains(m.Functions, fn) {
			continue
		}
		models = append(models, m)
	}
	start = min(start, len(models))
	end := min(start+limit, len(models))
	res := []map[string]any{}
	for _, m := range models[start:end] {
		fns := []map[string]string{}
		for _, f := range m.Functions {
			fns = append(fns, map[string]string{"id": f})
		}
		label := m.ID[strings.LastIndex(m.ID, "/")+1:]
		res = append(res, map[string]any{"model_id": m.ID, "label": label, "provider": m.Provider, "functions": fns})
	}
	out := map[string]any{"total_count": len(models), "limit": limit,
		"first": map[string]string{"href": fmt.Sprintf("%s?limit=%d", r.URL.Path, limit)}, "resources": res}
	if end < len(models) {
		out["next"] = map[string]string{"href": fmt.Sprintf("%s?limit=%d&start=%d", r.URL.Path, limit, end)}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
