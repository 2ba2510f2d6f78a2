// Package ocifake is a local fake of Oracle OCI Generative AI inference
// for tests. It speaks the real wire protocol: POST
// /20231130/actions/chat (GENERIC and COHERE formats, JSON or a data-only
// SSE stream without [DONE]), POST /20231130/actions/embedText and the
// management API's GET /20231130/models, each behind a full check of the
// OCI HTTP signature (draft-cavage, RSA-SHA256, x-content-sha256) against
// the test key's public half, with OCI's error bodies and opc-request-id
// headers. Scenario controls choose the answer (text, tool calls with or
// without ids, finish reason, usage) and the stream's quirks (single "\n"
// separators, events split across writes, padding, a connection held open
// after the last event); Failure forces 4xx/429/5xx answers; error events
// mid-stream and cut-off streams are scenario fields. Requests are
// recorded.
//
//	key, _ := ocifake.GenerateKey()
//	f := ocifake.New(ocifake.Options{Key: key})
//	if err := f.Start(); err != nil { ... }
//	defer f.Close()
//	f.SetScenario(ocifake.Scenario{Text: "Hi"})
package ocifake

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultTenancy     = "ocid1.tenancy.oc1..aaaaaaaafaketenancy"
	DefaultUser        = "ocid1.user.oc1..aaaaaaaafakeuser"
	DefaultCompartment = "ocid1.compartment.oc1..aaaaaaaafakecompartment"
)

// maxBody is the request size above which the service answers 413.
const maxBody = 32 << 20

// Options configure a fake.
type Options struct {
	// Key is the API signing key whose public half the fake trusts; a new
	// one is generated when nil.
	Key *Key
	// Tenancy, User and Compartment are OCIDs; the Default* values when
	// empty. Requests must name Compartment.
	Tenancy, User, Compartment string
	// Models are listed by GET /20231130/models; DefaultModels when nil.
	Models []string
}

// DefaultModels are the models listed when Options.Models is nil.
var DefaultModels = []string{"meta.llama-3.3-70b-instruct", "cohere.command-r-plus-08-2024", "google.gemini-2.5-flash",
	"openai.gpt-oss-120b", "cohere.embed-english-v3.0"}

// ToolCall is a tool call of the fake's answer.
type ToolCall struct {
	// ID is sent on GENERIC calls; empty sends none, as Google models on
	// OCI do. COHERE calls never carry one.
	ID   string
	Name string
	// Arguments is the JSON object text of the call's arguments.
	Arguments string
}

// Usage is the token accounting the fake reports.
type Usage struct {
	Prompt, Completion, Cached, Reasoning int
}

// Scenario is what the fake answers to POST /20231130/actions/chat.
type Scenario struct {
	// Text is the answer's text; "Hello from OCI." when empty and there
	// are no tool calls.
	Text      string
	ToolCalls []ToolCall
	// FinishReason is the upstream value, in the request's format's
	// spelling (GENERIC "stop", "length", "tool_calls"; COHERE "COMPLETE",
	// "MAX_TOKENS", "ERROR_TOXIC", "ERROR"…); derived when empty.
	FinishReason string
	// ErrorMessage is the COHERE errorMessage sent with finish ERROR.
	ErrorMessage string
	// Usage defaults to 12 prompt and 9 completion tokens when zero.
	Usage Usage
	// NoMessage answers GENERIC without a message (a reasoning model that
	// spent every token thinking).
	NoMessage bool

	// ChunkSize is how many bytes of text or arguments one stream event
	// carries (default 8).
	ChunkSize int
	// SingleNewline separates stream events by "\n" instead of "\n\n".
	SingleNewline bool
	// SplitWrites writes every event in two writes, flushed apart.
	SplitWrites bool
	// Pad adds a "pad" field of varying length to GENERIC events.
	Pad bool
	// OmitUsage leaves out the usage event of a GENERIC stream even when
	// the request asked for it.
	OmitUsage bool
	// KeepOpen holds the connection open after the last event until the
	// client goes away or the fake closes.
	KeepOpen bool
	// NoCohereToolEvents sends COHERE tool calls only in the final event
	// (by default each call also has an event of its own before it).
	NoCohereToolEvents bool
	// ResponseDelay pauses before the response headers.
	ResponseDelay time.Duration
	// EventDelay pauses before each event.
	EventDelay time.Duration
	// ErrorAfter, when positive, sends an error event {"code","message"}
	// after that many events and ends the stream.
	ErrorAfter int
	// CutAfter, when positive, ends the body after that many events plus
	// half of the next one.
	CutAfter int
}

// Failure is a forced error response.
type Failure struct {
	// Status is the HTTP status, e.g. 400, 401, 404, 429, 500 or 503.
	Status int
	// Code is the OCI error code; derived from Status when empty.
	Code string
	// Message defaults to a message like the service's for Code.
	Message string
	// RetryAfter is sent as the retry-after header when set, e.g. "7".
	RetryAfter string
}

// Request is a request the fake received.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
	// Status is what the fake answered.
	Status int
}

// Server is the fake OCI Generative AI service.
type Server struct {
	opts Options
	keys map[string]*rsa.PublicKey
	// now is the clock for date checks.
	now func() time.Time

	mu       sync.Mutex
	scenario Scenario
	queue    []Scenario
	failures []Failure
	requests int
	log      []Request
	// epoch counts Resets, so that a request that outlives one does not
	// record its status in the new log.
	epoch   int
	closing chan struct{}

	srv *http.Server
	ln  net.Listener
}

// New returns a fake that is not yet listening; see Start and Handler.
func New(opts Options) *Server {
	if opts.Key == nil {
		k, err := GenerateKey()
		if err != nil {
			panic(err)
		}
		opts.Key = k
	}
	if opts.Tenancy == "" {
		opts.Tenancy = DefaultTenancy
	}
	if opts.User == "" {
		opts.User = DefaultUser
	}
	if opts.Compartment == "" {
		opts.Compartment = DefaultCompartment
	}
	if opts.Models == nil {
		opts.Models = DefaultModels
	}
	s := &Server{opts: opts, now: time.Now, closing: make(chan struct{})}
	s.keys = map[string]*rsa.PublicKey{s.KeyID(): opts.Key.Public}
	return s
}

// TrustKey makes the fake accept signatures by pub under keyID as well,
// e.g. "ST$<token>" for a session or resource principal key.
func (s *Server) TrustKey(keyID string, pub *rsa.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[keyID] = pub
}

// Start serves the fake on 127.0.0.1 at a free port.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("ocifake: listen: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return nil
}

// URL is the base URL of a started fake, e.g. http://127.0.0.1:40123.
func (s *Server) URL() string {
	if s.ln == nil {
		return ""
	}
	return "http://" + s.ln.Addr().String()
}

// Close stops a started fake, releasing streams held open.
func (s *Server) Close() error {
	s.mu.Lock()
	select {
	case <-s.closing:
	default:
		close(s.closing)
	}
	s.mu.Unlock()
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// Key is the signing key the fake trusts.
func (s *Server) Key() *Key { return s.opts.Key }

// KeyID is the keyId of the trusted API key: tenancy/user/fingerprint.
func (s *Server) KeyID() string {
	return s.opts.Tenancy + "/" + s.opts.User + "/" + s.opts.Key.Fingerprint
}

// Compartment is the compartment OCID requests must name.
func (s *Server) Compartment() string { return s.opts.Compartment }

// Credentials are the api_key credentials of the trusted key, as the
// plugin's credential names have them.
func (s *Server) Credentials() map[string]string {
	return map[string]string{"tenancy_ocid": s.opts.Tenancy, "user_ocid": s.opts.User,
		"fingerprint": s.opts.Key.Fingerprint, "private_key": s.opts.Key.PrivatePEM}
}

// SetScenario sets the answer to the following chat requests.
func (s *Server) SetScenario(sc Scenario) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scenario = sc
}

// QueueScenarios sets the answers to the next chat requests, one each, in
// order; later requests get the SetScenario answer again. A two-turn tool
// flow queues the tool calls, then the final text.
func (s *Server) QueueScenarios(scs ...Scenario) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, scs...)
}

// FailNext makes the next n correctly signed model calls (POST requests)
// fail with f.
func (s *Server) FailNext(n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < n; i++ {
		s.failures = append(s.failures, f)
	}
}

// Reset restores the default scenario, drops pending failures and
// forgets the traffic.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scenario, s.queue, s.failures, s.requests, s.log = Scenario{}, nil, nil, 0, nil
	s.epoch++
}

// Requests returns a copy of every request received since the last Reset.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.log))
	for i, r := range s.log {
		r.Header = r.Header.Clone()
		r.Body = append([]byte(nil), r.Body...)
		out[i] = r
	}
	return out
}

// LastRequest is a copy of the last request received.
func (s *Server) LastRequest() Request {
	reqs := s.Requests()
	if len(reqs) == 0 {
		return Request{}
	}
	return reqs[len(reqs)-1]
}

// Handler is the fake's HTTP handler, for use with httptest.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

// statusWriter notes the status the fake answers.
type statusWriter struct {
	http.ResponseWriter
	status *int
}

func (w statusWriter) WriteHeader(code int) {
	if *w.status == 0 {
		*w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w statusWriter) Write(p []byte) (int, error) {
	if *w.status == 0 {
		*w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) serve(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	s.mu.Lock()
	s.requests++
	n := s.requests
	idx, epoch := len(s.log), s.epoch
	s.log = append(s.log, Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	s.mu.Unlock()
	var status int
	defer func() {
		// A request that outlives a Reset (a stream held open) must not
		// write its status over a later request's entry.
		s.mu.Lock()
		if epoch == s.epoch && idx < len(s.log) {
			s.log[idx].Status = status
		}
		s.mu.Unlock()
	}()
	w := statusWriter{ResponseWriter: rw, status: &status}
	reqID := fmt.Sprintf("OCIFAKE%04d", n)
	if c := r.Header.Get("opc-request-id"); c != "" {
		reqID = c + "/" + reqID
	}
	w.Header().Set("opc-request-id", reqID)
	if err != nil {
		writeError(w, http.StatusBadRequest, "CannotParseRequest", "could not read the request body")
		return
	}
	if len(body) > maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, "InvalidParameter", "The request body is too large.")
		return
	}
	s.mu.Lock()
	keys := make(map[string]*rsa.PublicKey, len(s.keys))
	for k, v := range s.keys {
		keys[k] = v
	}
	s.mu.Unlock()
	if err := verify(r, body, keys, s.now()); err != nil {
		w.Header().Set("x-ocifake-auth-error", err.Error())
		writeError(w, http.StatusUnauthorized, "NotAuthenticated", "The required information to complete authentication was not provided or was incorrect.")
		return
	}
	// Forced failures answer model calls (POSTs), never the GETs of a
	// health check or a model list, whose timing the test does not control.
	if f, ok := s.nextFailureFor(r); ok {
		writeFailure(w, f)
		return
	}
	switch {
	case r.URL.Path == "/20231130/actions/chat" && r.Method == http.MethodPost:
		s.chat(w, r, body)
	case r.URL.Path == "/20231130/actions/embedText" && r.Method == http.MethodPost:
		s.embed(w, body)
	case r.URL.Path == "/20231130/models" && r.Method == http.MethodGet:
		s.models(w, r)
	default:
		writeError(w, http.StatusNotFound, "NotAuthorizedOrNotFound", "Authorization failed or requested resource not found.")
	}
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

// errorCodes are the service's error codes and messages by status.
var errorCodes = map[int][2]string{
	400: {"InvalidParameter", "Invalid request parameter."},
	401: {"NotAuthenticated", "The required information to complete authentication was not provided or was incorrect."},
	403: {"NotAuthorized", "You do not have authorization to perform this request."},
	404: {"NotAuthorizedOrNotFound", "Authorization failed or requested resource not found."},
	409: {"Conflict", "The resource is in a conflicting state."},
	429: {"TooManyRequests", "Too many requests for the user or tenancy."},
	500: {"InternalServerError", "Internal server error."},
	503: {"ServiceUnavailable", "The service is currently unavailable."},
}

func writeFailure(w http.ResponseWriter, f Failure) {
	def, ok := errorCodes[f.Status]
	if !ok {
		def = [2]string{"InternalServerError", http.StatusText(f.Status)}
	}
	if f.Code == "" {
		f.Code = def[0]
	}
	if f.Message == "" {
		f.Message = def[1]
	}
	if f.RetryAfter != "" {
		w.Header().Set("retry-after", f.RetryAfter)
	}
	writeError(w, f.Status, f.Code, f.Message)
}

// writeError writes the service's error body.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
}

// models serves the management API's model list.
func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("compartmentId") != s.opts.Compartment {
		writeError(w, http.StatusNotFound, "NotAuthorizedOrNotFound", "Authorization failed or requested resource not found.")
		return
	}
	type item struct {
		ID             string   `json:"id"`
		DisplayName    string   `json:"displayName"`
		Vendor         string   `json:"vendor"`
		Version        string   `json:"version"`
		Capabilities   []string `json:"capabilities"`
		LifecycleState string   `json:"lifecycleState"`
		TimeCreated    string   `json:"timeCreated"`
	}
	var items []item
	for i, m := range s.opts.Models {
		vendor, _, _ := strings.Cut(m, ".")
		capability := "CHAT"
		if strings.Contains(m, "embed") {
			capability = "TEXT_EMBEDDINGS"
		}
		items = append(items, item{ID: fmt.Sprintf("ocid1.generativeaimodel.oc1.fake.%04d", i), DisplayName: m, Vendor: vendor,
			Version: "1.0", Capabilities: []string{capability}, LifecycleState: "ACTIVE", TimeCreated: "2025-01-15T00:00:00.000Z"})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"items": items})
}

// wait sleeps d unless ctx ends first.
func wait(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
