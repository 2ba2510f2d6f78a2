// Package bedrockfake is an in-process fake of the Amazon Bedrock Runtime
// HTTP API for tests. It serves POST /model/{modelId}/converse,
// /converse-stream, /invoke and /invoke-with-response-stream with Bedrock's
// JSON bodies and binary application/vnd.amazon.eventstream framing,
// verifies SigV4 signatures (or Bedrock API keys) the way AWS does, applies
// Bedrock's request validation rules, and answers from a scripted Reply.
//
//	f := bedrockfake.New(bedrockfake.Options{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret"})
//	if err := f.Start(); err != nil { ... }
//	defer f.Close()
//	f.SetReply(bedrockfake.Reply{Blocks: []bedrockfake.Block{{Text: "Hi"}}, StopReason: "end_turn"})
package bedrockfake

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Options configure a Fake.
type Options struct {
	// AccessKeyID and SecretAccessKey are the SigV4 key pair the fake
	// accepts; with none set, SigV4 requests are rejected.
	AccessKeyID     string
	SecretAccessKey string
	// SessionToken, when set, must arrive as X-Amz-Security-Token.
	SessionToken string
	// Keys, when set, replaces the fixed pair above: it returns the
	// secret key and session token (empty: none required) of an access
	// key id, or false for a key the fake does not know (or no longer
	// accepts), e.g. the short-lived keys a secrets store hands out.
	Keys func(accessKeyID string) (secretAccessKey, sessionToken string, ok bool)
	// APIKey, when set, is accepted as "Authorization: Bearer <APIKey>".
	APIKey string
	// Region, when set, must be the region of the credential scope.
	Region string
	// EmbeddingDimensions is the vector size when a request names none
	// (default 4).
	EmbeddingDimensions int
	// Now is the fake's clock for signature expiry (default time.Now).
	Now func() time.Time
}

// ToolUse is a tool call the fake's model makes.
type ToolUse struct {
	ID   string
	Name string
	// Input is the tool input as a JSON object text.
	Input string
}

// Block is one content block of a reply: text or a tool call.
type Block struct {
	Text    string
	ToolUse *ToolUse
}

// Usage is the token accounting of a reply. CacheRead and CacheWrite are
// reported only when Cache is set.
type Usage struct {
	Input, Output         int
	CacheRead, CacheWrite int
	Cache                 bool
}

// Reply scripts the fake model's answer and how a stream of it behaves.
type Reply struct {
	Blocks     []Block
	StopReason string
	Usage      Usage
	// ChunkSize splits streamed text and tool input into deltas of at most
	// this many bytes (default 8).
	ChunkSize int
	// Exception, when set (e.g. "throttlingException"), is sent as an
	// exception frame after ExceptionAfter events, ending the stream.
	Exception      string
	ExceptionAfter int
	// CutAfter > 0 drops the connection after that many events, in the
	// middle of the next frame.
	CutAfter int
	// SplitFrames writes every frame in two writes, flushing between them.
	SplitFrames bool
}

// Failure is a forced error response.
type Failure struct {
	// Code is the AWS error code, e.g. "ThrottlingException".
	Code   string
	Status int
	// Message is the body's message; a default is used when empty.
	Message string
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
}

// Forced failures the tests use most.
var (
	Throttling         = Failure{Code: "ThrottlingException", Status: 429, Message: "Too many requests, please wait before trying again."}
	Validation         = Failure{Code: "ValidationException", Status: 400, Message: "The model returned the following errors: invalid request."}
	ServiceUnavailable = Failure{Code: "ServiceUnavailableException", Status: 503, Message: "The service is temporarily unavailable."}
	ModelNotReady      = Failure{Code: "ModelNotReadyException", Status: 429, Message: "The model is not ready to serve inference requests."}
	InternalServer     = Failure{Code: "InternalServerException", Status: 500, Message: "The server encountered an internal error."}
	ModelTimeout       = Failure{Code: "ModelTimeoutException", Status: 408, Message: "The model timed out."}
	AccessDenied       = Failure{Code: "AccessDeniedException", Status: 403, Message: "You don't have access to the model with the specified model ID."}
	ResourceNotFound   = Failure{Code: "ResourceNotFoundException", Status: 404, Message: "The specified model was not found."}
)

// Request is a request the fake received.
type Request struct {
	Method string
	// Path is the escaped request path, e.g. /model/a.b%3A0/converse.
	Path      string
	Header    http.Header
	Body      []byte
	Operation string
	ModelID   string
}

// Fake is a Bedrock Runtime fake server.
type Fake struct {
	opts Options
	srv  *http.Server
	ln   net.Listener

	mu       sync.Mutex
	reply    Reply
	failures []Failure
	last     Request
	count    int
}

// New returns a Fake that answers with a short text until SetReply.
func New(o Options) *Fake {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.EmbeddingDimensions <= 0 {
		o.EmbeddingDimensions = 4
	}
	return &Fake{opts: o, reply: DefaultReply()}
}

// DefaultReply is the reply of a fake without SetReply.
func DefaultReply() Reply {
	return Reply{
		Blocks:     []Block{{Text: "Hello from the Bedrock fake."}},
		StopReason: "end_turn",
		Usage:      Usage{Input: 12, Output: 6},
	}
}

// Start listens on 127.0.0.1 on a free port and serves in the background.
func (f *Fake) Start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("bedrockfake: listen: %w", err)
	}
	f.ln = ln
	f.srv = &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = f.srv.Serve(ln) }()
	return nil
}

// URL is the fake's base URL, e.g. http://127.0.0.1:40123.
func (f *Fake) URL() string {
	if f.ln == nil {
		return ""
	}
	return "http://" + f.ln.Addr().String()
}

// Close stops the server and drops open connections.
func (f *Fake) Close() {
	if f.srv != nil {
		_ = f.srv.Close()
	}
}

// SetReply scripts the answer to the following requests.
func (f *Fake) SetReply(r Reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reply = r
}

// FailNext makes the next n requests that pass authentication fail with fl.
func (f *Fake) FailNext(n int, fl Failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.failures = append(f.failures, fl)
	}
}

// LastRequest returns the last request received.
func (f *Fake) LastRequest() Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.last
	r.Header = r.Header.Clone()
	r.Body = bytes.Clone(r.Body)
	return r
}

// Requests counts the requests received.
func (f *Fake) Requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count
}

// Reset forgets the reply, forced failures, and recorded requests.
func (f *Fake) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reply, f.failures, f.last, f.count = DefaultReply(), nil, Request{}, 0
}

// ServeHTTP implements http.Handler.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		writeError(w, "", Failure{Code: "ValidationException", Status: 400, Message: "unreadable request body"})
		return
	}
	model, op, routeErr := route(r)
	reqID := requestID(model, body)
	f.mu.Lock()
	f.count++
	f.last = Request{Method: r.Method, Path: r.URL.EscapedPath(), Header: r.Header.Clone(), Body: body, Operation: op, ModelID: model}
	reply := f.reply
	f.mu.Unlock()

	if fl := f.authenticate(r, body); fl != nil {
		writeError(w, reqID, *fl)
		return
	}
	if routeErr != nil {
		writeError(w, reqID, *routeErr)
		return
	}
	f.mu.Lock()
	var forced *Failure
	if len(f.failures) > 0 {
		forced = &f.failures[0]
		f.failures = f.failures[1:]
	}
	f.mu.Unlock()
	if forced != nil {
		writeError(w, reqID, *forced)
		return
	}
	w.Header().Set("X-Amzn-RequestId", reqID)
	switch op {
	case "converse", "converse-stream":
		if fl := validateConverse(body); fl != nil {
			writeError(w, reqID, *fl)
			return
		}
		if op == "converse" {
			writeJSON(w, converseResponse(reply))
			return
		}
		f.stream(w, reply, converseEvents(reply))
	case "invoke", "invoke-with-response-stream":
		f.invoke(w, op, model, body, reply)
	}
}

// route splits /model/{modelId}/{operation}; the model id is one
// percent-encoded path segment.
func route(r *http.Request) (model, op string, fl *Failure) {
	if r.Method != http.MethodPost {
		return "", "", &Failure{Code: "UnknownOperationException", Status: 404, Message: "Unknown operation"}
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	if len(parts) != 3 || parts[0] != "model" {
		return "", "", &Failure{Code: "UnknownOperationException", Status: 404, Message: "Unknown operation"}
	}
	model, err := url.PathUnescape(parts[1])
	if err != nil || model == "" {
		return "", "", &Failure{Code: "ValidationException", Status: 400, Message: "The provided model identifier is invalid."}
	}
	switch parts[2] {
	case "converse", "converse-stream", "invoke", "invoke-with-response-stream":
		return model, parts[2], nil
	}
	return model, "", &Failure{Code: "UnknownOperationException", Status: 404, Message: "Unknown operation"}
}

// requestID derives a stable request id from the model and body, so that
// a request and its streamed twin share one.
func requestID(model string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(model))
	h.Write(body)
	s := hex.EncodeToString(h.Sum(nil))
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}

// errorNamespace is appended to X-Amzn-ErrorType as AWS does.
const errorNamespace = ":http://internal.amazon.com/coral/com.amazon.bedrock/"

// writeError writes an AWS JSON error: X-Amzn-ErrorType and {"message"}.
func writeError(w http.ResponseWriter, reqID string, fl Failure) {
	if fl.Message == "" {
		fl.Message = fl.Code
	}
	if reqID != "" {
		w.Header().Set("X-Amzn-RequestId", reqID)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", fl.Code+errorNamespace)
	if fl.RetryAfter != "" {
		w.Header().Set("Retry-After", fl.RetryAfter)
	}
	w.WriteHeader(fl.Status)
	writeBody(w, map[string]string{"message": fl.Message})
}
