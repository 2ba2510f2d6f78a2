// Package provider is what a provider plugin author writes against.
//
// A provider plugin is a Go type that implements Provider, served by one
// call in main:
//
//	func main() { provider.Serve(&Echo{}) }
//
// Serve speaks the go-plugin handshake and the llmproxy.provider.v1 gRPC
// service; authors never see protobuf. Optional features are optional
// interfaces (Embedder, ModelLister, Passthrougher, HealthChecker): the SDK
// advertises each one the type implements, and the host falls back or
// answers "unsupported" for the others.
//
// The host calls Describe once after start, then Configure with the
// instance's config and credentials (again whenever credentials rotate),
// then the data-plane methods concurrently. Payloads are OpenAI-format
// JSON; Request.Chat decodes one into sdk/openai types for translators
// that need them, while a plugin forwarding OpenAI JSON can use the raw
// bytes as they are. Errors meant for the client are *openai.Error values,
// which carry the HTTP status, the OpenAI error type and code, and a retry
// delay; any other error reaches the client as 502.
package provider

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// Provider is the interface every provider plugin implements.
//
// Describe returns the plugin's name, version, config schema, the
// credentials it needs, and the models it knows; it must work before
// Configure. Configure receives an instance's decoded config block and
// resolved credentials; it validates them and returns schema.Diagnostics
// (or any error) when they are wrong. It may be called again at any time
// with new credentials and must then swap them without failing requests
// in flight. ChatCompletion answers a chat request with a chat.completion
// body. ChatCompletionStream writes chat.completion.chunk bodies to w as
// they arrive and returns when the stream is done: nil after the last chunk
// (which must carry a finish_reason, followed by a usage chunk when the
// request asked for one), or an error, which the host relays to the client
// as an SSE error event. Every method must honour ctx: it is cancelled when
// the client goes away, and the upstream call must be cancelled with it.
type Provider interface {
	Describe(ctx context.Context) (*Description, error)
	Configure(ctx context.Context, cfg *Config) error
	ChatCompletion(ctx context.Context, req *Request) (*Response, error)
	ChatCompletionStream(ctx context.Context, req *Request, w ChunkWriter) error
}

// Embedder is implemented by providers that serve /v1/embeddings. Its
// request and response bodies are OpenAI embeddings JSON.
type Embedder interface {
	Embeddings(ctx context.Context, req *Request) (*Response, error)
}

// ModelLister is implemented by providers that can list models live from
// their upstream. Without it the host lists Description.Models.
type ModelLister interface {
	ListModels(ctx context.Context, meta Meta) ([]openai.Model, error)
}

// Passthrougher is implemented by providers that support transparent mode
// (/-{type}/{instance}/{native path}). Passthrough serves the native
// request like an http.Handler: r carries the native method, path below
// the instance, query, headers (without the client's llmproxy credentials)
// and body; Meta is in r.Context() (see MetaFromContext). The plugin adds
// or re-signs the upstream credentials and writes the native response to
// w, flushing as it streams.
type Passthrougher interface {
	Passthrough(w http.ResponseWriter, r *http.Request)
}

// HealthChecker is implemented by providers that can tell whether their
// upstream is usable. The host calls it periodically; an error marks the
// instance unhealthy in /readyz without restarting the plugin.
type HealthChecker interface {
	Health(ctx context.Context) error
}

// ChunkWriter receives the chat.completion.chunk JSON objects of a stream,
// one per call, in order. WriteChunk fails when the host has gone away; the
// provider should then stop and return.
type ChunkWriter interface {
	WriteChunk(chunk []byte) error
}

// StreamHeader relays upstream response headers of a stream (rate-limit
// headers, say) to the client. Call it before the first chunk; later calls
// are refused, since the client's response has started. It is a no-op for
// writers that do not carry headers.
func StreamHeader(w ChunkWriter, h map[string]string) error {
	if hw, ok := w.(interface{ writeHeader(map[string]string) error }); ok && len(h) > 0 {
		return hw.writeHeader(h)
	}
	return nil
}

// WriteChunkMore writes chunk to w as w.WriteChunk does, telling the
// transport that another chunk follows at once, so that it may hold this
// one and send both to the host in one write (the data path does; gRPC
// and writers of other kinds send each chunk at once). Call it only when
// the next chunk is already at hand, say when the upstream's next event
// is complete in the read buffer: a held chunk waits for the next
// WriteChunk or the end of the stream.
func WriteChunkMore(w ChunkWriter, chunk []byte) error {
	if mw, ok := w.(interface{ writeChunkMore([]byte) error }); ok {
		return mw.writeChunkMore(chunk)
	}
	return w.WriteChunk(chunk)
}

// WriteChunk marshals c and writes it to w.
func WriteChunk(w ChunkWriter, c *openai.ChatChunk) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return w.WriteChunk(b)
}

// Capabilities a provider may advertise in Description.Capabilities. The
// SDK derives them from the interfaces the provider implements.
const (
	CapChat        = "chat"
	CapChatStream  = "chat_stream"
	CapEmbeddings  = "embeddings"
	CapModels      = "models"
	CapPassthrough = "passthrough"
	CapHealth      = "health"
	// CapDocuments says the provider maps document parts natively; the
	// provider adds it itself.
	CapDocuments = "documents"
)

// Description is what Describe returns.
type Description struct {
	// Name is the provider type, e.g. "openai"; it matches the binary name
	// llmproxy-provider-<name>.
	Name    string
	Version string
	// Capabilities are filled in by the SDK from the implemented
	// interfaces; a provider may add CapDocuments.
	Capabilities []string
	ConfigSchema schema.Schema
	Credentials  []schema.Credential
	// Models are the models the provider serves without an upstream call.
	Models []openai.Model
}

// Config is what Configure receives: the instance name, its config block
// as JSON (see Config.Decode), its credentials and host settings.
type Config = schema.Config

// Meta describes the client request a call serves.
type Meta struct {
	RequestID string
	Instance  string
	// Model is the upstream model to call, after the host's routing.
	Model string
	// RequestedModel is the model the client asked for.
	RequestedModel string
	Deadline       time.Time
	// Trace carries W3C trace context headers.
	Trace map[string]string
}

// Request is a data-plane request: chat or embeddings.
type Request struct {
	Meta Meta
	// Body is the client's OpenAI-format JSON.
	Body []byte
	// Documents are the resolved document parts the body refers to by id.
	Documents []Document
}

// Chat decodes Body as a chat request and validates it. Errors are 400
// invalid_request_error values ready to return. The model is set to
// Meta.Model when the host routed to a different upstream name.
func (r *Request) Chat() (*openai.ChatRequest, error) {
	var c openai.ChatRequest
	if err := json.Unmarshal(r.Body, &c); err != nil {
		return nil, openai.InvalidRequest("", "invalid chat request: "+err.Error())
	}
	if r.Meta.Model != "" {
		c.Model = r.Meta.Model
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Document returns the resolved document with the given id, or nil.
func (r *Request) Document(id string) *Document {
	for i := range r.Documents {
		if r.Documents[i].ID == id {
			return &r.Documents[i]
		}
	}
	return nil
}

// Document is a document part the host fetched and extracted.
type Document struct {
	ID       string
	Name     string
	MIMEType string
	Data     []byte
	// Text is the extracted text; empty when none could be extracted.
	Text string
	// Source is the URL or storage reference the document came from.
	Source string
}

// Response is a data-plane response body.
type Response struct {
	Body []byte
	// Header holds upstream headers worth relaying to the client.
	Header map[string]string
}

// JSONResponse marshals v into a Response.
func JSONResponse(v any) (*Response, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &Response{Body: b}, nil
}

type metaKey struct{}

// ContextWithMeta returns ctx carrying m.
func ContextWithMeta(ctx context.Context, m Meta) context.Context {
	return context.WithValue(ctx, metaKey{}, m)
}

// MetaFromContext returns the Meta carried by ctx.
func MetaFromContext(ctx context.Context) (Meta, bool) {
	m, ok := ctx.Value(metaKey{}).(Meta)
	return m, ok
}

// Logger returns the plugin's logger. Its output (hclog JSON on stderr)
// is merged into the host's log; never write to stdout.
func Logger() hclog.Logger { return rpc.Logger() }

// Serve serves p as a provider plugin and does not return. It performs the
// go-plugin handshake, recovers panics into errors, and exits when the host
// goes away.
func Serve(p Provider) {
	rpc.Serve(PluginName, &Plugin{Impl: p})
}
