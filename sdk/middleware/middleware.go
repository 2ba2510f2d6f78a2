// Package middleware is what a middleware plugin author writes against.
//
// A middleware sees every chat request of the routes and API keys that
// name it, before the request is routed: it may read it, rewrite it (mask
// personal data, add a system prompt) or veto it with an OpenAI-shaped
// error. It may also see each chunk of a streamed answer and the final
// JSON of a non-streamed one, and rewrite those. It runs in its own
// process, so a middleware that panics, hangs or dies costs one request,
// not the gateway. A plugin is a Go type that implements Middleware and
// any of RequestHook, ChunkHook and ResponseHook, served by one call in
// main:
//
//	func main() { middleware.Serve(&Guardrail{}) }
//
// The host calls Describe once, Configure with the instance's config
// block, then the hooks the plugin implements, in the order the
// middlewares are listed in the config, each under a time budget. A hook
// that returns an error other than an *openai.Error, panics, or overruns
// its budget fails the request closed (500 or 502); the host replaces a
// process that overran or died.
package middleware

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/hashicorp/go-hclog"

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// Hook names, as listed in Description.Hooks.
const (
	HookRequest  = "request"
	HookChunk    = "chunk"
	HookResponse = "response"
)

// Middleware is the interface every middleware plugin implements.
//
// Describe returns the plugin's name, version and config schema; it is
// called once after the process starts. Configure receives the decoded
// config block of the instance and its credentials; it returns
// schema.Diagnostics (or any error) when the config is unusable.
type Middleware interface {
	Describe(ctx context.Context) (*Description, error)
	Configure(ctx context.Context, cfg *Config) error
}

// RequestHook is implemented by a middleware that sees chat requests.
//
// OnRequest returns the request body to send on: body itself (or nil)
// leaves it unchanged. An *openai.Error vetoes the request and reaches
// the client as it is; Veto builds the common 400.
type RequestHook interface {
	OnRequest(ctx context.Context, call *Call, body []byte) ([]byte, error)
}

// ChunkHook is implemented by a middleware that sees streamed chunks.
//
// OnChunk returns the chunk to send on (nil: unchanged). An error ends
// the stream with an SSE error event.
type ChunkHook interface {
	OnChunk(ctx context.Context, call *Call, index int64, chunk []byte) ([]byte, error)
}

// ResponseHook is implemented by a middleware that sees the final JSON
// response of a non-streamed chat request.
//
// OnResponse returns the response body to send on (nil: unchanged). An
// *openai.Error replaces the response.
type ResponseHook interface {
	OnResponse(ctx context.Context, call *Call, body []byte) ([]byte, error)
}

// HookSelector is implemented by a middleware whose hooks depend on its
// config. After a successful Configure the host asks again which hooks
// run, and calls only those that EnabledHooks lists (and the plugin
// implements): a guardrail that masks no answers costs no call per
// streamed chunk.
type HookSelector interface {
	EnabledHooks() []string
}

// Description is what Describe returns. The hooks are not listed here:
// the SDK derives them from the interfaces the plugin implements.
type Description struct {
	Name         string
	Version      string
	ConfigSchema schema.Schema
	Credentials  []schema.Credential
}

// Config is what Configure receives: the instance's name, its config
// block as JSON (Decode unmarshals it), credentials and host settings.
type Config = schema.Config

// Call identifies the request a hook call belongs to.
type Call struct {
	RequestID string
	// KeyName is the name of the API key that made the request, never
	// the key itself.
	KeyName string
	// Stream says the client asked for a streamed answer.
	Stream bool
}

// CodeContentPolicy is the error code of a request vetoed by policy.
const CodeContentPolicy = "content_policy_violation"

// Veto returns the 400 content_policy_violation error that refuses a
// request; the message reaches the client.
func Veto(format string, args ...any) *openai.Error {
	return openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, CodeContentPolicy, fmt.Sprintf(format, args...))
}

// Logger returns the plugin-side logger (hclog JSON on stderr, merged by
// the host into its own log).
func Logger() hclog.Logger { return rpc.Logger() }

// Serve runs a middleware plugin until the host goes away. It never
// returns.
func Serve(m Middleware) {
	rpc.Serve(PluginName, &Plugin{Impl: m})
}

// Hooks lists the hooks m implements and, when it is a HookSelector,
// enables.
func Hooks(m Middleware) (out []string) {
	defer func() {
		if sel, ok := m.(HookSelector); ok {
			enabled := sel.EnabledHooks()
			out = slices.DeleteFunc(out, func(h string) bool { return !slices.Contains(enabled, h) })
		}
	}()
	if _, ok := m.(RequestHook); ok {
		out = append(out, HookRequest)
	}
	if _, ok := m.(ChunkHook); ok {
		out = append(out, HookChunk)
	}
	if _, ok := m.(ResponseHook); ok {
		out = append(out, HookResponse)
	}
	return out
}
