package provider

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"sync/atomic"

	"github.com/llmproxy/llmproxy/sdk/internal/datapath"
	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
	"github.com/llmproxy/llmproxy/sdk/openai"
	pluginv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/plugin/v1"
	providerv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/provider/v1"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// Client is the host's handle on a running provider plugin. go-plugin
// dispenses it for PluginName; sdktest drives plugins through it too.
// Errors it returns are *openai.Error values (or context errors), whatever
// went wrong on the way: an upstream error, a plugin panic, or a plugin
// that died mid-call (502 plugin_unavailable).
type Client struct {
	rpc providerv1.ProviderClient
	// data is the plugin's data path for unary chat calls, set by
	// Describe when the plugin announces one.
	data atomic.Pointer[datapath.Client]
	// acks is set by Describe when the plugin acknowledges calls.
	acks atomic.Bool
	// plan is the plugin's forwarding plan, when it announces one.
	plan planState
}

// AcknowledgesCalls reports whether the plugin, as last described,
// confirms each call as soon as it starts running it; only then does the
// hook of WithAccepted run before the answer arrives.
func (c *Client) AcknowledgesCalls() bool { return c.acks.Load() }

// WithAccepted returns a context whose calls through a Client run f as soon
// as the plugin confirms that it is running the call (before the upstream
// answers), or when the answer arrives from a plugin that confirms nothing
// earlier. The host uses it to tell a plugin that cannot be reached from
// an upstream that is slow. f may run more than once, from any goroutine.
func WithAccepted(ctx context.Context, f func()) context.Context {
	return rpc.WithAccepted(ctx, f)
}

func (c *Client) dataPath() *datapath.Client { return c.data.Load() }

// dropDataPath stops using a data path whose socket cannot be reached
// (a sandbox without unix sockets, say); calls go over gRPC from then on.
func (c *Client) dropDataPath(d *datapath.Client) {
	c.data.CompareAndSwap(d, nil)
}

// Close releases the data path's pooled connections and socket directory;
// the host calls it once the plugin process is gone.
func (c *Client) Close() {
	if d := c.data.Load(); d != nil {
		d.Close()
	}
}

// Describe asks the plugin what it is.
func (c *Client) Describe(ctx context.Context) (*Description, error) {
	r, err := c.rpc.Describe(ctx, &providerv1.DescribeRequest{})
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	c.acks.Store(r.AcknowledgesCalls)
	c.plan.announced.Store(slices.Contains(r.Capabilities, CapForwardPlan))
	if r.DataAddress != "" && len(r.DataToken) > 0 {
		if cur := c.data.Load(); cur == nil || cur.Addr() != r.DataAddress {
			if old := c.data.Swap(datapath.NewClient(r.DataAddress, r.DataToken, r.AcknowledgesCalls)); old != nil {
				old.CloseIdle()
			}
		}
	}
	d := &Description{
		Name:         r.Name,
		Version:      r.Version,
		Capabilities: r.Capabilities,
		ConfigSchema: rpc.SchemaFromProto(r.ConfigSchema),
		Credentials:  rpc.CredentialsFromProto(r.Credentials),
	}
	for _, m := range r.Models {
		d.Models = append(d.Models, openai.Model{ID: m.Id, Object: openai.ObjectModel, OwnedBy: m.OwnedBy, Created: m.Created})
	}
	return d, nil
}

// Configure sends an instance's config; the diagnostics say what is wrong.
// The error is for transport failures only. When the plugin announces a
// forwarding plan and accepts the config, Configure asks for the plan
// that goes with it (see Plan).
func (c *Client) Configure(ctx context.Context, cfg *Config) (schema.Diagnostics, error) {
	r, err := c.rpc.Configure(ctx, &pluginv1.ConfigureRequest{
		Instance:    cfg.Instance,
		ConfigJson:  cfg.JSON,
		Credentials: cfg.Credentials,
		Settings:    cfg.Settings,
	})
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	diags := rpc.DiagnosticsFromProto(r.Diagnostics)
	if c.plan.announced.Load() && !diags.HasErrors() {
		c.plan.gen.Add(1)
		c.refreshPlan(ctx, false)
	}
	return diags, nil
}

func metaToProto(m *Meta) *pluginv1.Meta {
	p := &pluginv1.Meta{
		RequestId:      m.RequestID,
		Instance:       m.Instance,
		Model:          m.Model,
		RequestedModel: m.RequestedModel,
		Trace:          m.Trace,
	}
	if !m.Deadline.IsZero() {
		p.DeadlineUnixNano = m.Deadline.UnixNano()
	}
	return p
}

func chatToProto(req *Request) *providerv1.ChatRequest {
	p := &providerv1.ChatRequest{Meta: metaToProto(&req.Meta), Body: req.Body}
	for _, d := range req.Documents {
		p.Documents = append(p.Documents, &providerv1.Document{
			Id: d.ID, Name: d.Name, MimeType: d.MIMEType, Data: d.Data, Text: d.Text, Source: d.Source,
		})
	}
	return p
}

// ChatCompletion runs a non-streamed chat request, over the plugin's data
// path when it has one.
func (c *Client) ChatCompletion(ctx context.Context, req *Request) (*Response, error) {
	var r *providerv1.ChatResponse
	var err error
	d := c.dataPath()
	if d != nil {
		r = &providerv1.ChatResponse{}
		if err = d.Call(ctx, chatToProto(req), r); errors.Is(err, datapath.ErrDial) {
			c.dropDataPath(d)
			d = nil
		}
	}
	if d == nil {
		r, err = c.rpc.ChatCompletion(ctx, chatToProto(req))
	}
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	return &Response{Body: r.Body, Header: r.Header}, nil
}

// ChunkStream is a streamed chat response as the host reads it.
type ChunkStream struct {
	recv func() (*providerv1.ChatChunk, error)
	// next, when set, reads the chunks instead of recv (NewChunkStream).
	next func() ([]byte, error)
	// buffered, when not nil, reports whether the next message has
	// arrived (see More).
	buffered func() bool
	header   map[string]string
}

// More reports whether the next Recv returns at once because the plugin
// already sent what it returns (the data path can tell; over gRPC More is
// always false). A caller relaying chunks to a client may then hold its
// write and send both chunks together.
func (s *ChunkStream) More() bool {
	return s.buffered != nil && s.buffered()
}

// Recv returns the next chunk JSON, io.EOF after the last one, or the
// error that ended the stream. Header messages are collected for Header.
func (s *ChunkStream) Recv() ([]byte, error) {
	if s.next != nil {
		return s.next()
	}
	for {
		m, err := s.recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			return nil, rpc.FromStatus(err)
		}
		if len(m.Header) > 0 && len(m.Data) == 0 {
			if s.header == nil {
				s.header = map[string]string{}
			}
			for k, v := range m.Header {
				s.header[k] = v
			}
			continue
		}
		return m.Data, nil
	}
}

// NewChunkStream returns a ChunkStream that reads its chunks from next
// (io.EOF after the last one, or the error that ended the stream), whose
// More is more (nil: always false) and whose Header is header. The host
// uses it for the streams it forwards on a plugin's plan, so that they
// take the same way to the client as the plugin's. A chunk next returns
// may be reused by the following call.
func NewChunkStream(next func() ([]byte, error), more func() bool, header map[string]string) *ChunkStream {
	return &ChunkStream{next: next, buffered: more, header: header}
}

// Header returns the upstream headers the plugin relayed before the first
// chunk; read it after the first Recv.
func (s *ChunkStream) Header() map[string]string { return s.header }

// ChatCompletionStream starts a streamed chat request, over the plugin's
// data path when it has one. Cancel ctx to stop it; the plugin's upstream
// call is cancelled with it.
func (c *Client) ChatCompletionStream(ctx context.Context, req *Request) (*ChunkStream, error) {
	if d := c.dataPath(); d != nil {
		ds, err := d.Stream(ctx, chatToProto(req))
		switch {
		case errors.Is(err, datapath.ErrDial):
			c.dropDataPath(d)
		case err != nil:
			return nil, rpc.FromStatus(err)
		default:
			return &ChunkStream{recv: func() (*providerv1.ChatChunk, error) {
				m := &providerv1.ChatChunk{}
				return m, ds.Recv(m)
			}, buffered: ds.Buffered}, nil
		}
	}
	s, err := c.rpc.ChatCompletionStream(ctx, chatToProto(req))
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	return &ChunkStream{recv: s.Recv}, nil
}

// Embeddings runs an embeddings request.
func (c *Client) Embeddings(ctx context.Context, req *Request) (*Response, error) {
	r, err := c.rpc.Embeddings(ctx, &providerv1.EmbeddingsRequest{Meta: metaToProto(&req.Meta), Body: req.Body})
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	return &Response{Body: r.Body, Header: r.Header}, nil
}

// ListModels asks the plugin for its upstream's models.
func (c *Client) ListModels(ctx context.Context, meta Meta) ([]openai.Model, error) {
	r, err := c.rpc.ListModels(ctx, &providerv1.ListModelsRequest{Meta: metaToProto(&meta)})
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	out := make([]openai.Model, 0, len(r.Models))
	for _, m := range r.Models {
		out = append(out, openai.Model{ID: m.Id, Object: openai.ObjectModel, OwnedBy: m.OwnedBy, Created: m.Created})
	}
	return out, nil
}

// Health reports the plugin's own view of its upstream.
func (c *Client) Health(ctx context.Context) error {
	r, err := c.rpc.Health(ctx, &pluginv1.HealthRequest{})
	if err != nil {
		return rpc.FromStatus(err)
	}
	if !r.Ok {
		return errors.New(r.Message)
	}
	return nil
}

// PassthroughRequest is a native request in transparent mode.
type PassthroughRequest struct {
	Meta     Meta
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
}

// PassthroughStream is a native response: Status and Header first, then
// body pieces from Recv.
type PassthroughStream struct {
	Status int
	Header http.Header
	s      providerv1.Provider_PassthroughClient
	first  []byte
}

// Recv returns the next piece of the body, or io.EOF at its end.
func (s *PassthroughStream) Recv() ([]byte, error) {
	if s.first != nil {
		b := s.first
		s.first = nil
		return b, nil
	}
	m, err := s.s.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, rpc.FromStatus(err)
	}
	return m.Body, nil
}

// Passthrough sends a native request and waits for the response status.
func (c *Client) Passthrough(ctx context.Context, req *PassthroughRequest) (*PassthroughStream, error) {
	s, err := c.rpc.Passthrough(ctx, &providerv1.PassthroughRequest{
		Meta:     metaToProto(&req.Meta),
		Method:   req.Method,
		Path:     req.Path,
		RawQuery: req.RawQuery,
		Header:   headerToProto(req.Header),
		Body:     req.Body,
	})
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	m, err := s.Recv()
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	out := &PassthroughStream{Status: int(m.Status), Header: headerFromProto(m.Header), s: s}
	if out.Status == 0 {
		out.Status = http.StatusOK
	}
	if len(m.Body) > 0 {
		out.first = m.Body
	}
	return out, nil
}
