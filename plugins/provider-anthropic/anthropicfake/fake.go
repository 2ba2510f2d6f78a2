// Package anthropicfake is a local fake of the Anthropic Messages API for
// tests. It speaks the real wire protocol: POST /v1/messages as JSON or as
// an SSE stream of named events, GET /v1/models, x-api-key and
// anthropic-version checks, the API's request validation and its exact
// error bodies. Scenario controls choose the answer (text, tool_use
// blocks, stop reason, usage) and the failure modes (forced statuses with
// retry-after, an error event mid-stream, a cut-off stream, events split
// across writes, pings, delays); the last request is recorded.
//
//	f := anthropicfake.New(anthropicfake.Options{APIKey: "sk-test"})
//	if err := f.Start(); err != nil { ... }
//	defer f.Close()
//	f.SetScenario(anthropicfake.Scenario{Content: []anthropicfake.Block{anthropicfake.Text("Hi")}})
package anthropicfake

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultAPIKey is the key the fake accepts when Options.APIKey is empty.
const DefaultAPIKey = "sk-ant-fake-key"

// DefaultMessageID is the id of every message unless Scenario.ID is set.
const DefaultMessageID = "msg_fake_01"

// maxBody is the request size above which the API answers 413.
const maxBody = 32 << 20

// Options configure a fake.
type Options struct {
	// APIKey is the only x-api-key accepted; DefaultAPIKey when empty.
	APIKey string
	// Models are listed by GET /v1/models; DefaultModels when nil.
	Models []Model
}

// Model is one entry of GET /v1/models.
type Model struct {
	ID          string
	DisplayName string
	CreatedAt   time.Time
}

// DefaultModels are the models listed when Options.Models is nil.
var DefaultModels = []Model{
	{ID: "claude-sonnet-4-5-20250929", DisplayName: "Claude Sonnet 4.5", CreatedAt: time.Date(2025, 9, 29, 0, 0, 0, 0, time.UTC)},
	{ID: "claude-haiku-4-5-20251001", DisplayName: "Claude Haiku 4.5", CreatedAt: time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC)},
	{ID: "claude-opus-4-1-20250805", DisplayName: "Claude Opus 4.1", CreatedAt: time.Date(2025, 8, 5, 0, 0, 0, 0, time.UTC)},
}

// Block is a content block of the fake's answer: text, tool_use or
// thinking.
type Block struct {
	Type string
	Text string
	// Thinking is the text of a thinking block; the fake signs it (see
	// Signature) and accepts it back only with that signature.
	Thinking string
	// ID, Name and Input describe a tool_use block; Input is any value
	// that marshals to a JSON object.
	ID    string
	Name  string
	Input any
}

// Text returns a text block.
func Text(s string) Block { return Block{Type: "text", Text: s} }

// Thinking returns a thinking block.
func Thinking(s string) Block { return Block{Type: "thinking", Thinking: s} }

// Signature is the signature the fake gives a thinking block's text, and
// requires when a request sends the block back.
func Signature(thinking string) string {
	sum := sha256.Sum256([]byte("anthropicfake-thinking:" + thinking))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// ToolUse returns a tool_use block.
func ToolUse(id, name string, input any) Block {
	return Block{Type: "tool_use", ID: id, Name: name, Input: input}
}

// Usage is the token accounting the fake reports.
type Usage struct {
	InputTokens              int
	OutputTokens             int
	CacheCreationInputTokens int
	CacheReadInputTokens     int
}

// Scenario is what the fake answers to POST /v1/messages.
type Scenario struct {
	// ID is the message id; DefaultMessageID when empty.
	ID string
	// Model is the model reported; the request's model when empty.
	Model string
	// Content is the answer; one default text block when empty.
	Content []Block
	// StopReason defaults to tool_use when Content has a tool_use block,
	// else end_turn.
	StopReason   string
	StopSequence string
	// Usage defaults to 12 input and 9 output tokens when zero.
	Usage Usage

	// ChunkSize is how many bytes of text or tool input JSON one delta
	// event carries (default 8).
	ChunkSize int
	// Pings adds ping events after message_start and before message_delta.
	Pings bool
	// SplitEvents writes every event in two writes, flushed apart, cut in
	// the middle of its data line.
	SplitEvents bool
	// ResponseDelay pauses before the response headers, streamed or not.
	ResponseDelay time.Duration
	// EventDelay pauses before each event.
	EventDelay time.Duration
	// ErrorAfter, when positive, sends an error event after that many
	// events (pings not counted) and ends the stream.
	ErrorAfter int
	// ErrorType and ErrorMessage describe that error event (default
	// overloaded_error, "Overloaded").
	ErrorType    string
	ErrorMessage string
	// CutAfter, when positive, ends the body after that many events (pings
	// not counted) plus half of the next one, with no message_stop.
	CutAfter int
}

// Failure is a forced error response.
type Failure struct {
	// Status is the HTTP status, e.g. 400, 401, 429, 500 or 529.
	Status int
	// Type is the Anthropic error type; derived from Status when empty.
	Type string
	// Message defaults to a message like the API's for Type.
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
}

// Server is the fake Messages API.
type Server struct {
	opts Options

	mu       sync.Mutex
	scenario Scenario
	failures []Failure
	requests int
	last     Request

	srv *http.Server
	ln  net.Listener
}

// New returns a fake that is not yet listening; see Start and Handler.
func New(opts Options) *Server {
	if opts.APIKey == "" {
		opts.APIKey = DefaultAPIKey
	}
	if opts.Models == nil {
		opts.Models = DefaultModels
	}
	return &Server{opts: opts}
}

// Start serves the fake on 127.0.0.1 at a free port.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("anthropicfake: listen: %w", err)
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

// Close stops a started fake and its open connections.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// APIKey is the key the fake accepts.
func (s *Server) APIKey() string { return s.opts.APIKey }

// SetScenario sets the answer to the following /v1/messages requests.
func (s *Server) SetScenario(sc Scenario) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scenario = sc
}

// FailNext makes the next n authenticated requests fail with f.
func (s *Server) FailNext(n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < n; i++ {
		s.failures = append(s.failures, f)
	}
}

// Reset restores the default scenario, drops pending failures and zeroes
// the request count.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scenario, s.failures, s.requests, s.last = Scenario{}, nil, 0, Request{}
}

// Requests is the number of requests received.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// LastRequest is a copy of the last request received.
func (s *Server) LastRequest() Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.last
	r.Header = r.Header.Clone()
	r.Body = append([]byte(nil), r.Body...)
	return r
}

// Handler is the fake's HTTP handler, for use with httptest.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	s.mu.Lock()
	s.requests++
	n := s.requests
	s.last = Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body}
	s.mu.Unlock()
	w.Header().Set("request-id", fmt.Sprintf("req_fake_%04d", n))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "could not read request body")
		return
	}
	if len(body) > maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, "request_too_large", "Request exceeds the maximum allowed number of bytes.")
		return
	}
	switch key := r.Header.Get("x-api-key"); {
	case key == "":
		writeError(w, http.StatusUnauthorized, "authentication_error", "x-api-key header is required")
		return
	case key != s.opts.APIKey:
		writeError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
		return
	}
	if r.Header.Get("anthropic-version") == "" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required")
		return
	}
	if f, ok := s.nextFailure(); ok {
		writeFailure(w, f)
		return
	}
	switch {
	case r.URL.Path == "/v1/messages" && r.Method == http.MethodPost:
		s.messages(w, r, body)
	case r.URL.Path == "/v1/messages/count_tokens" && r.Method == http.MethodPost:
		s.countTokens(w, body)
	case r.URL.Path == "/v1/models" && r.Method == http.MethodGet:
		s.models(w, r)
	default:
		writeError(w, http.StatusNotFound, "not_found_error", "Not found")
	}
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

// errorTypes are the API's error types and default messages by status.
var errorTypes = map[int][2]string{
	400: {"invalid_request_error", "There was an issue with the format or content of your request."},
	401: {"authentication_error", "invalid x-api-key"},
	402: {"billing_error", "Your credit balance is too low to access the Anthropic API."},
	403: {"permission_error", "Your API key does not have permission to use the specified resource."},
	404: {"not_found_error", "The requested resource could not be found."},
	413: {"request_too_large", "Request exceeds the maximum allowed number of bytes."},
	429: {"rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."},
	500: {"api_error", "Internal server error"},
	529: {"overloaded_error", "Overloaded"},
}

func writeFailure(w http.ResponseWriter, f Failure) {
	def, ok := errorTypes[f.Status]
	if !ok {
		def = [2]string{"api_error", http.StatusText(f.Status)}
	}
	if f.Type == "" {
		f.Type = def[0]
	}
	if f.Message == "" {
		f.Message = def[1]
	}
	if f.RetryAfter != "" {
		w.Header().Set("retry-after", f.RetryAfter)
	}
	writeError(w, f.Status, f.Type, f.Message)
}

// writeError writes the API's error body.
func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorJSON(typ, msg, w.Header().Get("request-id")))
}

func errorJSON(typ, msg, requestID string) map[string]any {
	out := map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": msg}}
	if requestID != "" {
		out["request_id"] = requestID
	}
	return out
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	limit := 20
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "limit: Input should be between 1 and 1000")
			return
		}
		limit = n
	}
	start := 0
	if after := r.URL.Query().Get("after_id"); after != "" {
		start = len(s.opts.Models)
		for i, m := range s.opts.Models {
			if m.ID == after {
				start = i + 1
			}
		}
	}
	end := min(start+limit, len(s.opts.Models))
	data := []map[string]string{}
	for _, m := range s.opts.Models[start:end] {
		data = append(data, map[string]string{"type": "model", "id": m.ID, "display_name": m.DisplayName,
			"created_at": m.CreatedAt.UTC().Format(time.RFC3339)})
	}
	out := map[string]any{"data": data, "has_more": end < len(s.opts.Models), "first_id": nil, "last_id": nil}
	if len(data) > 0 {
		out["first_id"], out["last_id"] = data[0]["id"], data[len(data)-1]["id"]
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (s *Server) messages(w http.ResponseWriter, r *http.Request, body []byte) {
	req, err := validate(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	s.mu.Lock()
	sc := s.scenario
	s.mu.Unlock()
	if sc.ResponseDelay > 0 {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(sc.ResponseDelay):
		}
	}
	ans, err := answer(sc, req.model)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "api_error", err.Error())
		return
	}
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ans.message())
		return
	}
	s.stream(r.Context(), w, sc, ans)
}

// answerMsg is a prepared answer.
type answerMsg struct {
	id, model, stopReason, stopSequence string
	blocks                              []Block
	inputs                              []json.RawMessage
	usage                               Usage
}

func answer(sc Scenario, model string) (*answerMsg, error) {
	a := &answerMsg{id: sc.ID, model: sc.Model, stopReason: sc.StopReason, stopSequence: sc.StopSequence,
		blocks: sc.Content, usage: sc.Usage}
	if a.id == "" {
		a.id = DefaultMessageID
	}
	if a.model == "" {
		a.model = model
	}
	if len(a.blocks) == 0 {
		a.blocks = []Block{Text("Hello! How can I help you today?")}
	}
	if a.usage == (Usage{}) {
		a.usage = Usage{InputTokens: 12, OutputTokens: 9}
	}
	tools := false
	a.inputs = make([]json.RawMessage, len(a.blocks))
	for i, b := range a.blocks {
		if b.Type != "tool_use" {
			continue
		}
		tools = true
		in := b.Input
		if in == nil {
			in = map[string]any{}
		}
		raw, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("scenario tool input: %w", err)
		}
		a.inputs[i] = raw
	}
	if a.stopReason == "" {
		a.stopReason = "end_turn"
		if tools {
			a.stopReason = "tool_use"
		}
	}
	return a, nil
}

func (a *answerMsg) content() []map[string]any {
	out := []map[string]any{}
	for i, b := range a.blocks {
		if b.Type == "thinking" {
			out = append(out, map[string]any{"type": "thinking", "thinking": b.Thinking, "signature": Signature(b.Thinking)})
			continue
		}
		if b.Type == "tool_use" {
			out = append(out, map[string]any{"type": "tool_use", "id": b.ID, "name": b.Name, "input": a.inputs[i]})
			continue
		}
		out = append(out, map[string]any{"type": "text", "text": b.Text})
	}
	return out
}

func (a *answerMsg) message() map[string]any {
	var stopSeq any
	if a.stopSequence != "" {
		stopSeq = a.stopSequence
	}
	return map[string]any{
		"id": a.id, "type": "message", "role": "assistant", "model": a.model,
		"content": a.content(), "stop_reason": a.stopReason, "stop_sequence": stopSeq,
		"usage": map[string]int{
			"input_tokens": a.usage.InputTokens, "output_tokens": a.usage.OutputTokens,
			"cache_creation_input_tokens": a.usage.CacheCreationInputTokens,
			"cache_read_input_tokens":     a.usage.CacheReadInputTokens,
		},
	}
}

// event is one SSE event of a stream.
type event struct {
	name string
	data any
}

func (a *answerMsg) events(chunk int) []event {
	start := map[string]any{"id": a.id, "type": "message", "role": "assistant", "model": a.model,
		"content": []any{}, "stop_reason": nil, "stop_sequence": nil,
		"usage": map[string]int{"input_tokens": a.usage.InputTokens, "output_tokens": 1,
			"cache_creation_input_tokens": a.usage.CacheCreationInputTokens,
			"cache_read_input_tokens":     a.usage.CacheReadInputTokens}}
	evs := []event{{"message_start", map[string]any{"type": "message_start", "message": start}}}
	for i, b := range a.blocks {
		if b.Type == "thinking" {
			evs = append(evs, event{"content_block_start", map[string]any{"type": "content_block_start", "index": i,
				"content_block": map[string]any{"type": "thinking", "thinking": "", "signature": ""}}})
			for _, part := range split(b.Thinking, chunk) {
				evs = append(evs, event{"content_block_delta", map[string]any{"type": "content_block_delta", "index": i,
					"delta": map[string]any{"type": "thinking_delta", "thinking": part}}})
			}
			evs = append(evs, event{"content_block_delta", map[string]any{"type": "content_block_delta", "index": i,
				"delta": map[string]any{"type": "signature_delta", "signature": Signature(b.Thinking)}}},
				event{"content_block_stop", map[string]any{"type": "content_block_stop", "index": i}})
			continue
		}
		if b.Type == "tool_use" {
			evs = append(evs, event{"content_block_start", map[string]any{"type": "content_block_start", "index": i,
				"content_block": map[string]any{"type": "tool_use", "id": b.ID, "name": b.Name, "input": map[string]any{}}}})
			// The API's first input_json_delta is often empty, and its
			// JSON has spaces after ':' and ','.
			evs = append(evs, inputDelta(i, ""))
			for _, part := range split(spaced(a.inputs[i]), chunk) {
				evs = append(evs, inputDelta(i, part))
			}
		} else {
			evs = append(evs, event{"content_block_start", map[string]any{"type": "content_block_start", "index": i,
				"content_block": map[string]any{"type": "text", "text": ""}}})
			for _, part := range split(b.Text, chunk) {
				evs = append(evs, event{"content_block_delta", map[string]any{"type": "content_block_delta", "index": i,
					"delta": map[string]any{"type": "text_delta", "text": part}}})
			}
		}
		evs = append(evs, event{"content_block_stop", map[string]any{"type": "content_block_stop", "index": i}})
	}
	var stopSeq any
	if a.stopSequence != "" {
		stopSeq = a.stopSequence
	}
	evs = append(evs,
		event{"message_delta", map[string]any{"type": "message_delta",
			"delta": map[string]any{"stop_reason": a.stopReason, "stop_sequence": stopSeq},
			"usage": map[string]int{"output_tokens": a.usage.OutputTokens}}},
		event{"message_stop", map[string]any{"type": "message_stop"}})
	return evs
}

func inputDelta(i int, part string) event {
	return event{"content_block_delta", map[string]any{"type": "content_block_delta", "index": i,
		"delta": map[string]any{"type": "input_json_delta", "partial_json": part}}}
}

// split cuts s into pieces of at most n bytes without splitting a rune.
func split(s string, n int) []string {
	var out []string
	for len(s) > 0 {
		end := min(n, len(s))
		for end < len(s) && end > 0 && !utf8Start(s[end]) {
			end--
		}
		if end == 0 {
			end = len(s)
		}
		out = append(out, s[:end])
		s = s[end:]
	}
	return out
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// spaced renders compact JSON the way the API streams tool input: with a
// space after each ':' and ',' outside strings.
func spaced(raw json.RawMessage) string {
	var b strings.Builder
	inString, escaped := false, false
	for _, c := range string(raw) {
		b.WriteRune(c)
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == ':' || c == ','):
			b.WriteByte(' ')
		}
	}
	return b.String()
}

func (s *Server) stream(ctx context.Context, w http.ResponseWriter, sc Scenario, a *answerMsg) {
	chunk := sc.ChunkSize
	if chunk <= 0 {
		chunk = 8
	}
	evs := a.events(chunk)
	if sc.Pings {
		ping := event{"ping", map[string]string{"type": "ping"}}
		withPings := []event{evs[0], ping}
		withPings = append(withPings, evs[1:len(evs)-2]...)
		evs = append(append(withPings, ping), evs[len(evs)-2:]...)
	}
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	flush()
	counted := 0
	for _, ev := range evs {
		if sc.ErrorAfter > 0 && counted == sc.ErrorAfter {
			typ, msg := sc.ErrorType, sc.ErrorMessage
			if typ == "" {
				typ, msg = "overloaded_error", "Overloaded"
			}
			_, _ = w.Write(frame(event{"error", errorJSON(typ, msg, "")}))
			flush()
			return
		}
		if sc.EventDelay > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(sc.EventDelay):
			}
		}
		b := frame(ev)
		if sc.CutAfter > 0 && counted == sc.CutAfter {
			_, _ = w.Write(b[:len(b)/2])
			flush()
			return
		}
		if sc.SplitEvents {
			half := len(b) / 2
			if _, err := w.Write(b[:half]); err != nil {
				return
			}
			flush()
			time.Sleep(time.Millisecond)
			b = b[half:]
		}
		if _, err := w.Write(b); err != nil {
			return
		}
		flush()
		if ev.name != "ping" {
			counted++
		}
	}
}

// frame renders an event with the API's framing: event line, data line,
// blank line.
func frame(ev event) []byte {
	data, err := json.Marshal(ev.data)
	if err != nil {
		data = []byte(`{}`)
	}
	return []byte("event: " + ev.name + "\ndata: " + string(data) + "\n\n")
}

// countTokens serves POST /v1/messages/count_tokens: the request is
// validated like a message request (max_tokens aside) and counted as one
// token per four bytes of its messages, system and tools.
func (s *Server) countTokens(w http.ResponseWriter, body []byte) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "There was an issue with the format of your request: invalid JSON")
		return
	}
	if _, ok := fields["max_tokens"]; !ok {
		fields["max_tokens"] = json.RawMessage("1")
	}
	check, _ := json.Marshal(fields)
	if _, err := validate(check); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	n := (len(fields["messages"]) + len(fields["system"]) + len(fields["tools"]) + 3) / 4
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]int{"input_tokens": n})
}
