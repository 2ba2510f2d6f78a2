// Package vertexfake is a local fake of Google Vertex AI's Gemini API and
// of Google's OAuth2 token endpoint, for tests. It speaks the real wire
// protocol: the JWT-bearer grant (the RS256 assertion is verified with the
// test service account's public key, and only tokens the fake issued,
// before their expiry, are accepted), :generateContent,
// :streamGenerateContent (SSE with alt=sse, a JSON array without),
// :predict for text embeddings, the v1beta1 publisher model list,
// express-mode API keys, the API's request validation (JSON Schema
// keywords Gemini refuses, alternating roles, function responses matching
// the calls of the turn before, thought signatures on gemini-3 models) and
// google.rpc error bodies with RetryInfo. Scenario controls choose the
// answer (text, function calls, thoughts, finish reason, usage, a blocked
// prompt) and the failure modes (forced statuses, an error mid-stream,
// a cut-off stream, split writes, delays); requests are recorded.
//
//	f := vertexfake.New(vertexfake.Options{})
//	if err := f.Start(); err != nil { ... }
//	defer f.Close()
//	saJSON := f.ServiceAccountJSON() // token_uri points at the fake
package vertexfake

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Defaults for Options.
const (
	DefaultProject     = "llmproxy-test"
	DefaultLocation    = "us-central1"
	DefaultClientEmail = "llmproxy@llmproxy-test.iam.gserviceaccount.com"
	DefaultKeyID       = "fake-key-1"
	DefaultTokenTTL    = time.Hour
	// TokenPath is where the fake's token endpoint listens.
	TokenPath = "/token"
	// Scope is the OAuth2 scope the fake requires in assertions.
	Scope = "https://www.googleapis.com/auth/cloud-platform"
)

// maxBody is the request size above which the API answers 413.
const maxBody = 32 << 20

// Options configure a fake.
type Options struct {
	// Project and Location are the only ones the fake serves
	// (DefaultProject, DefaultLocation when empty).
	Project  string
	Location string
	// ClientEmail and KeyID name the service account (defaults above).
	ClientEmail string
	KeyID       string
	// Key is the service account's private key; a fresh 2048-bit key when
	// nil.
	Key *rsa.PrivateKey
	// TokenTTL is the lifetime of issued access tokens (DefaultTokenTTL
	// when zero).
	TokenTTL time.Duration
	// APIKey, when set, is accepted as an express-mode x-goog-api-key.
	APIKey string
	// Models are listed by the model list; DefaultModels when nil.
	Models []string
	// AcceptToken, when set, also accepts bearer tokens another fake
	// issued (a metadata server or STS of workload identity) and still
	// holds valid, such as identityfake's Issued.
	AcceptToken func(token string) bool
}

// DefaultModels are listed when Options.Models is nil.
var DefaultModels = []string{"gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-3-pro-preview",
	"text-embedding-005", "gemini-embedding-001"}

// Request is a request the fake received.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
}

// Server is the fake.
type Server struct {
	opts   Options
	sigKey []byte

	mu         sync.Mutex
	scenario   Scenario
	failures   []Failure
	tokenFails []int
	tokens     map[string]time.Time
	issued     int
	requests   int
	last       Request
	log        []Request

	srv *http.Server
	ln  net.Listener
	// url is the base URL, set by Start or SetURL.
	url string
}

// New returns a fake that is not yet listening; see Start and Handler.
func New(opts Options) *Server {
	if opts.Project == "" {
		opts.Project = DefaultProject
	}
	if opts.Location == "" {
		opts.Location = DefaultLocation
	}
	if opts.ClientEmail == "" {
		opts.ClientEmail = DefaultClientEmail
	}
	if opts.KeyID == "" {
		opts.KeyID = DefaultKeyID
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = DefaultTokenTTL
	}
	if opts.Models == nil {
		opts.Models = DefaultModels
	}
	if opts.Key == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic("vertexfake: generate key: " + err.Error())
		}
		opts.Key = k
	}
	sig := make([]byte, 32)
	_, _ = rand.Read(sig)
	return &Server{opts: opts, sigKey: sig, tokens: map[string]time.Time{}}
}

// Start serves the fake on 127.0.0.1 at a free port.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("vertexfake: listen: %w", err)
	}
	s.ln = ln
	s.SetURL("http://" + ln.Addr().String())
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return nil
}

// SetURL sets the base URL the fake is reached at, when it is served by
// something other than Start (httptest, a recorder in front of it); the
// service account's token_uri and the assertion audience follow it.
func (s *Server) SetURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.url = strings.TrimRight(u, "/")
}

// URL is the fake's base URL, e.g. http://127.0.0.1:40123.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// TokenURL is the token endpoint's URL.
func (s *Server) TokenURL() string { return s.URL() + TokenPath }

// Close stops a started fake and its open connections.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// Project is the project the fake serves.
func (s *Server) Project() string { return s.opts.Project }

// Location is the location the fake serves.
func (s *Server) Location() string { return s.opts.Location }

// APIKey is the express-mode key the fake accepts ("" for none).
func (s *Server) APIKey() string { return s.opts.APIKey }

// ServiceAccountJSON is a service-account key file for the fake: its
// private key signs assertions the fake verifies, and its token_uri is the
// fake's token endpoint.
func (s *Server) ServiceAccountJSON() []byte {
	return s.serviceAccountJSON(s.opts.Key)
}

// ServiceAccountJSONWithKey is ServiceAccountJSON with another private key,
// whose assertions the fake refuses.
func (s *Server) ServiceAccountJSONWithKey(k *rsa.PrivateKey) []byte {
	return s.serviceAccountJSON(k)
}

func (s *Server) serviceAccountJSON(k *rsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic("vertexfake: marshal key: " + err.Error())
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	b, _ := json.MarshalIndent(map[string]string{
		"type":                        "service_account",
		"project_id":                  s.opts.Project,
		"private_key_id":              s.opts.KeyID,
		"private_key":                 string(pemKey),
		"client_email":                s.opts.ClientEmail,
		"client_id":                   "100000000000000000001",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   s.TokenURL(),
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"universe_domain":             "googleapis.com",
	}, "", "  ")
	return b
}

// SetScenario sets the answer to the following model calls.
func (s *Server) SetScenario(sc Scenario) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scenario = sc
}

// FailNext makes the next n authenticated model calls (POST requests) fail
// with f.
func (s *Server) FailNext(n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < n; i++ {
		s.failures = append(s.failures, f)
	}
}

// FailTokens makes the next n token requests fail with status (400 for
// invalid_grant, 401 for invalid_client, 5xx for an outage).
func (s *Server) FailTokens(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < n; i++ {
		s.tokenFails = append(s.tokenFails, status)
	}
}

// RevokeTokens forgets every issued token, as if they had been revoked.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = map[string]time.Time{}
}

// TokensIssued is the number of access tokens issued so far.
func (s *Server) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}

// Reset restores the default scenario, drops pending failures and forgets
// the recorded requests (issued tokens stay valid).
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scenario, s.failures, s.tokenFails, s.requests, s.last, s.log = Scenario{}, nil, nil, 0, Request{}, nil
}

// Requests is the number of API requests received (token requests not
// counted).
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// LastRequest is a copy of the last API request received.
func (s *Server) LastRequest() Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return copyRequest(s.last)
}

// Log is a copy of the API requests received since the last Reset.
func (s *Server) Log() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.log))
	for i, r := range s.log {
		out[i] = copyRequest(r)
	}
	return out
}

func copyRequest(r Request) Request {
	r.Header = r.Header.Clone()
	r.Body = append([]byte(nil), r.Body...)
	return r
}

// Handler is the fake's HTTP handler, for use with httptest (call SetURL
// with the server's URL).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if r.URL.Path == TokenPath {
		s.token(w, r, body)
		return
	}
	s.mu.Lock()
	s.requests++
	n := s.requests
	rec := Request{Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body}
	s.last = rec
	s.log = append(s.log, rec)
	s.mu.Unlock()
	w.Header().Set("x-goog-request-id", fmt.Sprintf("fake-%04d", n))
	if err != nil {
		writeStatus(w, http.StatusBadRequest, "could not read request body", nil)
		return
	}
	if len(body) > maxBody {
		writeStatus(w, http.StatusRequestEntityTooLarge, "Request payload size exceeds the limit.", nil)
		return
	}
	express, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	// Forced failures answer model calls (POSTs), never the GETs of a
	// health check or a model list, whose timing the test does not control.
	if f, ok := s.nextFailureFor(r); ok {
		writeFailure(w, f)
		return
	}
	s.route(w, r, body, express)
}

// authenticate checks the bearer token (or an express-mode key) the way
// the API does and reports whether the caller used an API key.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (express, ok bool) {
	key := r.Header.Get("x-goog-api-key")
	if key == "" {
		key = r.URL.Query().Get("key")
	}
	authz := r.Header.Get("Authorization")
	switch {
	case key != "" && authz != "":
		writeStatus(w, http.StatusBadRequest, "Multiple authentication credentials received. Please pass only one.", nil)
		return false, false
	case key != "":
		if s.opts.APIKey == "" || key != s.opts.APIKey {
			writeStatus(w, http.StatusBadRequest, "API key not valid. Please pass a valid API key.", []any{
				map[string]any{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}})
			return false, false
		}
		return true, true
	}
	tok, found := strings.CutPrefix(authz, "Bearer ")
	if !found || tok == "" {
		writeStatus(w, http.StatusUnauthorized, "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.", nil)
		return false, false
	}
	s.mu.Lock()
	exp, issued := s.tokens[tok]
	s.mu.Unlock()
	if (!issued || time.Now().After(exp)) && (s.opts.AcceptToken == nil || !s.opts.AcceptToken(tok)) {
		writeStatus(w, http.StatusUnauthorized, "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.", nil)
		return false, false
	}
	return false, true
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

// route dispatches an authenticated API request.
func (s *Server) route(w http.ResponseWriter, r *http.Request, body []byte, express bool) {
	p := r.URL.Path
	if p == "/v1beta1/publishers/google/models" && r.Method == http.MethodGet {
		s.models(w, r)
		return
	}
	var rest string
	prefix := "/v1/projects/" + s.opts.Project + "/locations/" + s.opts.Location + "/publishers/google/models/"
	switch {
	case strings.HasPrefix(p, prefix):
		rest = p[len(prefix):]
	case express && strings.HasPrefix(p, "/v1/publishers/google/models/"):
		rest = strings.TrimPrefix(p, "/v1/publishers/google/models/")
	case strings.HasPrefix(p, "/v1/projects/"):
		parts := strings.Split(p, "/")
		if len(parts) > 3 && parts[3] != s.opts.Project {
			writeStatus(w, http.StatusForbidden, fmt.Sprintf("Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/projects/%s' (or it may not exist).", parts[3]), nil)
			return
		}
		writeStatus(w, http.StatusNotFound, "Publisher model was not found or your project does not have access to it.", nil)
		return
	default:
		writeStatus(w, http.StatusNotFound, "The requested URL "+p+" was not found on this server.", nil)
		return
	}
	model, method, ok := strings.Cut(rest, ":")
	if !ok || model == "" || strings.Contains(model, "/") {
		writeStatus(w, http.StatusNotFound, "The requested URL "+p+" was not found on this server.", nil)
		return
	}
	if r.Method != http.MethodPost {
		writeStatus(w, http.StatusMethodNotAllowed, "Method not allowed", nil)
		return
	}
	if !s.knownModel(model) {
		writeStatus(w, http.StatusNotFound, fmt.Sprintf("Publisher Model `projects/%s/locations/%s/publishers/google/models/%s` was not found or your project does not have access to it.", s.opts.Project, s.opts.Location, model), nil)
		return
	}
	embedding := strings.Contains(model, "embedding")
	switch method {
	case "generateContent", "streamGenerateContent":
		if embedding {
			writeStatus(w, http.StatusBadRequest, "Gemini cannot be accessed through Vertex Predict/RawPredict API. Please follow https://cloud.google.com/vertex-ai/docs/generative-ai/start/quickstarts/quickstart-multimodal for Gemini usage.", nil)
			return
		}
		s.generate(w, r, body, model, method == "streamGenerateContent")
	case "predict":
		if !embedding {
			writeStatus(w, http.StatusBadRequest, "Gemini cannot be accessed through Vertex Predict/RawPredict API. Please follow https://cloud.google.com/vertex-ai/docs/generative-ai/start/quickstarts/quickstart-multimodal for Gemini usage.", nil)
			return
		}
		s.predict(w, body, model)
	default:
		writeStatus(w, http.StatusNotFound, "The requested URL "+p+" was not found on this server.", nil)
	}
}

func (s *Server) knownModel(m string) bool {
	for _, x := range s.opts.Models {
		if x == m {
			return true
		}
	}
	return false
}

// models serves GET /v1beta1/publishers/google/models.
func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	size := 100
	if v := r.URL.Query().Get("pageSize"); v != "" {
		if _, err := fmt.Sscanf(v, "%d", &size); err != nil || size < 1 {
			writeStatus(w, http.StatusBadRequest, "Invalid value at 'page_size'", nil)
			return
		}
	}
	start := 0
	if tok := r.URL.Query().Get("pageToken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(b) == 0 {
			writeStatus(w, http.StatusBadRequest, "Invalid page token.", nil)
			return
		}
		_, _ = fmt.Sscanf(string(b), "%d", &start)
	}
	start = min(start, len(s.opts.Models))
	end := min(start+size, len(s.opts.Models))
	list := []map[string]string{}
	for _, m := range s.opts.Models[start:end] {
		list = append(list, map[string]string{"name": "publishers/google/models/" + m, "versionId": "001", "launchStage": "GA"})
	}
	out := map[string]any{"publisherModels": list}
	if end < len(s.opts.Models) {
		out["nextPageToken"] = base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprint(end)))
	}
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	b, _ := json.MarshalIndent(v, "", "  ")
	_, _ = w.Write(append(b, '\n'))
}
