package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/llmproxy/llmproxy/sdk/middleware"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// Version is the plugin's version.
const Version = "0.1.0"

// Config is the logger's config block.
type Config struct {
	Path         string   `json:"path"`
	Bodies       *bool    `json:"bodies"`
	Chunks       bool     `json:"chunks"`
	RedactFields []string `json:"redact_fields"`
}

// Entry is one line of the log.
type Entry struct {
	Time      string `json:"time"`
	Event     string `json:"event"`
	RequestID string `json:"request_id"`
	Key       string `json:"key,omitempty"`
	Stream    bool   `json:"stream,omitempty"`
	Index     *int64 `json:"index,omitempty"`
	Bytes     int    `json:"bytes"`
	Body      any    `json:"body,omitempty"`
}

// Logger writes one redacted JSON line per request, response and,
// when chunks is set, streamed chunk. It never changes what it sees.
type Logger struct {
	mu     sync.Mutex
	w      io.Writer
	closer io.Closer
	bodies bool
	chunks bool
	extra  map[string]bool
}

var (
	_ middleware.Middleware   = (*Logger)(nil)
	_ middleware.RequestHook  = (*Logger)(nil)
	_ middleware.ChunkHook    = (*Logger)(nil)
	_ middleware.ResponseHook = (*Logger)(nil)
	_ middleware.HookSelector = (*Logger)(nil)
)

// Describe names the plugin and its config.
func (l *Logger) Describe(context.Context) (*middleware.Description, error) {
	return &middleware.Description{
		Name: "logger", Version: Version,
		ConfigSchema: schema.Schema{Attributes: []schema.Attribute{
			{Name: "path", Type: "string", Description: "File the JSON lines are appended to (created 0600); unset: the host's log."},
			{Name: "bodies", Type: "bool", Description: "Write the redacted request and response bodies (default true); false writes sizes only."},
			{Name: "chunks", Type: "bool", Description: "Also write one line per streamed chunk (default false)."},
			{Name: "redact_fields", Type: "list(string)", Description: "More JSON keys whose values are redacted, e.g. \"user\"."},
		}},
	}, nil
}

// Configure opens the log file.
func (l *Logger) Configure(_ context.Context, cfg *middleware.Config) error {
	var c Config
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	var w io.Writer = hclogWriter{}
	var closer io.Closer
	if c.Path != "" {
		f, err := os.OpenFile(c.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return schema.Errorf([]string{"path"}, "cannot open the log file: %v", err)
		}
		w, closer = f, f
	}
	extra := map[string]bool{}
	for _, k := range c.RedactFields {
		extra[strings.ToLower(k)] = true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closer != nil {
		l.closer.Close()
	}
	l.w, l.closer, l.bodies, l.chunks, l.extra = w, closer, c.Bodies == nil || *c.Bodies, c.Chunks, extra
	return nil
}

// EnabledHooks leaves out the chunk hook unless chunks is set.
func (l *Logger) EnabledHooks() []string {
	if l.chunksOn() {
		return []string{middleware.HookRequest, middleware.HookChunk, middleware.HookResponse}
	}
	return []string{middleware.HookRequest, middleware.HookResponse}
}

// OnRequest logs the request.
func (l *Logger) OnRequest(_ context.Context, call *middleware.Call, body []byte) ([]byte, error) {
	return nil, l.write("request", call, nil, body)
}

// OnChunk logs a streamed chunk when chunks is set.
func (l *Logger) OnChunk(_ context.Context, call *middleware.Call, index int64, chunk []byte) ([]byte, error) {
	if !l.chunksOn() {
		return nil, nil
	}
	return nil, l.write("chunk", call, &index, chunk)
}

// OnResponse logs the response.
func (l *Logger) OnResponse(_ context.Context, call *middleware.Call, body []byte) ([]byte, error) {
	return nil, l.write("response", call, nil, body)
}

func (l *Logger) chunksOn() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.chunks
}

func (l *Logger) write(event string, call *middleware.Call, index *int64, body []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w == nil {
		return fmt.Errorf("the logger is not configured")
	}
	e := Entry{Time: time.Now().UTC().Format(time.RFC3339Nano), Event: event, RequestID: call.RequestID,
		Key: call.KeyName, Stream: call.Stream, Index: index, Bytes: len(body)}
	if l.bodies {
		e.Body = redactJSON(body, l.extra)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := l.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write the log: %w", err)
	}
	return nil
}

// hclogWriter hands lines to the plugin's logger, which the host merges
// into its own log.
type hclogWriter struct{}

func (hclogWriter) Write(b []byte) (int, error) {
	middleware.Logger().Info("chat", "entry", strings.TrimSpace(string(b)))
	return len(b), nil
}
