package provider

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/llmproxy/llmproxy/sdk/internal/datapath"
	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
	"github.com/llmproxy/llmproxy/sdk/internal/tracing"
	pluginv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/plugin/v1"
	providerv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/provider/v1"
)

// server adapts a Provider to the generated gRPC service.
type server struct {
	providerv1.UnimplementedProviderServer
	impl Provider
	data *datapath.Server
}

// dataHandler serves the chat calls that arrive over the data path.
type dataHandler struct{ s *server }

var _ datapath.Handler = dataHandler{}

// Call serves a ChatCompletion.
func (d dataHandler) Call(ctx context.Context, payload []byte) (proto.Message, error) {
	var req providerv1.ChatRequest
	if err := proto.Unmarshal(payload, &req); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "bad chat request: %v", err)
	}
	return d.s.ChatCompletion(ctx, &req)
}

// Stream serves a ChatCompletionStream.
func (d dataHandler) Stream(ctx context.Context, payload []byte, send func(proto.Message, bool) error) error {
	var r providerv1.ChatRequest
	if err := proto.Unmarshal(payload, &r); err != nil {
		return status.Errorf(codes.InvalidArgument, "bad chat request: %v", err)
	}
	req := requestFromProto(&r)
	ctx, cancel := withMeta(ctx, req.Meta)
	defer cancel()
	ctx, end := tracing.Start(ctx, req.Meta.Trace, "chat", req.Meta.Model, req.Meta.Instance)
	err := d.s.impl.ChatCompletionStream(ctx, req, &chunkStream{
		send:     func(c *providerv1.ChatChunk) error { return send(c, false) },
		sendMore: func(c *providerv1.ChatChunk) error { return send(c, true) },
	})
	end(err)
	return rpc.ToStatus(err)
}

func (s *server) Describe(ctx context.Context, _ *providerv1.DescribeRequest) (*providerv1.DescribeResponse, error) {
	d, err := s.impl.Describe(ctx)
	if err != nil {
		return nil, rpc.ToStatus(err)
	}
	out := &providerv1.DescribeResponse{
		Name:         d.Name,
		Version:      d.Version,
		Capabilities: capabilities(s.impl, d.Capabilities),
		ConfigSchema: rpc.SchemaToProto(d.ConfigSchema),
		Credentials:  rpc.CredentialsToProto(d.Credentials),
		// The interceptors of rpc.Serve send response headers as each call
		// starts, and the data path sends accept frames.
		AcknowledgesCalls: true,
	}
	if s.data != nil {
		out.DataAddress, out.DataToken = s.data.Address, s.data.Token
	}
	for _, m := range d.Models {
		out.Models = append(out.Models, &providerv1.Model{Id: m.ID, OwnedBy: m.OwnedBy, Created: m.Created})
	}
	return out, nil
}

// capabilities adds the capabilities implied by the implemented interfaces.
func capabilities(p Provider, declared []string) []string {
	has := map[string]bool{}
	out := []string{}
	add := func(c string) {
		if !has[c] {
			has[c] = true
			out = append(out, c)
		}
	}
	add(CapChat)
	add(CapChatStream)
	if _, ok := p.(Embedder); ok {
		add(CapEmbeddings)
	}
	if _, ok := p.(ModelLister); ok {
		add(CapModels)
	}
	if _, ok := p.(Passthrougher); ok {
		add(CapPassthrough)
	}
	if _, ok := p.(HealthChecker); ok {
		add(CapHealth)
	}
	if _, ok := p.(Planner); ok {
		add(CapForwardPlan)
	}
	for _, c := range declared {
		add(c)
	}
	return out
}

func (s *server) Configure(ctx context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	err := s.impl.Configure(ctx, &Config{
		Instance:    req.Instance,
		JSON:        req.ConfigJson,
		Credentials: req.Credentials,
		Settings:    req.Settings,
	})
	return &pluginv1.ConfigureResponse{Diagnostics: rpc.DiagnosticsToProto(err)}, nil
}

func metaFromProto(m *pluginv1.Meta) Meta {
	if m == nil {
		return Meta{}
	}
	out := Meta{
		RequestID:      m.RequestId,
		Instance:       m.Instance,
		Model:          m.Model,
		RequestedModel: m.RequestedModel,
		Trace:          m.Trace,
	}
	if m.DeadlineUnixNano != 0 {
		out.Deadline = time.Unix(0, m.DeadlineUnixNano)
	}
	return out
}

func requestFromProto(r *providerv1.ChatRequest) *Request {
	req := &Request{Meta: metaFromProto(r.Meta), Body: r.Body}
	for _, d := range r.Documents {
		req.Documents = append(req.Documents, Document{
			ID: d.Id, Name: d.Name, MIMEType: d.MimeType, Data: d.Data, Text: d.Text, Source: d.Source,
		})
	}
	return req
}

// withDeadline applies the request deadline to ctx (gRPC already carries
// it; this keeps the two consistent when the host sent none over gRPC).
func withMeta(ctx context.Context, m Meta) (context.Context, context.CancelFunc) {
	ctx = ContextWithMeta(ctx, m)
	if !m.Deadline.IsZero() {
		return context.WithDeadline(ctx, m.Deadline)
	}
	return context.WithCancel(ctx)
}

func (s *server) ChatCompletion(ctx context.Context, r *providerv1.ChatRequest) (*providerv1.ChatResponse, error) {
	req := requestFromProto(r)
	ctx, cancel := withMeta(ctx, req.Meta)
	defer cancel()
	ctx, end := tracing.Start(ctx, req.Meta.Trace, "chat", req.Meta.Model, req.Meta.Instance)
	resp, err := s.impl.ChatCompletion(ctx, req)
	end(err)
	if err != nil {
		return nil, rpc.ToStatus(err)
	}
	return &providerv1.ChatResponse{Body: resp.Body, Header: resp.Header}, nil
}

// chunkStream is the ChunkWriter of a stream, over gRPC or the data path.
type chunkStream struct {
	send func(*providerv1.ChatChunk) error
	// sendMore, when not nil, sends a chunk that the transport may hold
	// until the next one (see WriteChunkMore).
	sendMore func(*providerv1.ChatChunk) error
	started  bool
	// msg is reused for every chunk: both transports have marshalled it
	// when send returns.
	msg providerv1.ChatChunk
}

func (c *chunkStream) WriteChunk(b []byte) error {
	c.started = true
	c.msg.Data = b
	err := c.send(&c.msg)
	c.msg.Data = nil
	return err
}

func (c *chunkStream) writeChunkMore(b []byte) error {
	if c.sendMore == nil {
		return c.WriteChunk(b)
	}
	c.started = true
	c.msg.Data = b
	err := c.sendMore(&c.msg)
	c.msg.Data = nil
	return err
}

func (c *chunkStream) writeHeader(h map[string]string) error {
	if c.started {
		return errors.New("provider: StreamHeader called after the first chunk")
	}
	// The host reads the headers with the first chunk, so they may wait
	// for it (and go out in the same write) where the transport allows.
	if c.sendMore != nil {
		return c.sendMore(&providerv1.ChatChunk{Header: h})
	}
	return c.send(&providerv1.ChatChunk{Header: h})
}

func (s *server) ChatCompletionStream(r *providerv1.ChatRequest, stream providerv1.Provider_ChatCompletionStreamServer) error {
	req := requestFromProto(r)
	ctx, cancel := withMeta(stream.Context(), req.Meta)
	defer cancel()
	ctx, end := tracing.Start(ctx, req.Meta.Trace, "chat", req.Meta.Model, req.Meta.Instance)
	err := s.impl.ChatCompletionStream(ctx, req, &chunkStream{send: stream.Send})
	end(err)
	return rpc.ToStatus(err)
}

func (s *server) Embeddings(ctx context.Context, r *providerv1.EmbeddingsRequest) (*providerv1.EmbeddingsResponse, error) {
	e, ok := s.impl.(Embedder)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "embeddings")
	}
	req := &Request{Meta: metaFromProto(r.Meta), Body: r.Body}
	ctx, cancel := withMeta(ctx, req.Meta)
	defer cancel()
	ctx, end := tracing.Start(ctx, req.Meta.Trace, "embeddings", req.Meta.Model, req.Meta.Instance)
	resp, err := e.Embeddings(ctx, req)
	end(err)
	if err != nil {
		return nil, rpc.ToStatus(err)
	}
	return &providerv1.EmbeddingsResponse{Body: resp.Body, Header: resp.Header}, nil
}

func (s *server) ListModels(ctx context.Context, r *providerv1.ListModelsRequest) (*providerv1.ListModelsResponse, error) {
	l, ok := s.impl.(ModelLister)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "list models")
	}
	models, err := l.ListModels(ctx, metaFromProto(r.Meta))
	if err != nil {
		return nil, rpc.ToStatus(err)
	}
	out := &providerv1.ListModelsResponse{}
	for _, m := range models {
		out.Models = append(out.Models, &providerv1.Model{Id: m.ID, OwnedBy: m.OwnedBy, Created: m.Created})
	}
	return out, nil
}

// Health runs the HealthChecker within three quarters of the host's
// deadline. A check that takes longer (a slow upstream) is answered "not
// ok" in time, so that the host marks the instance degraded rather than
// counting a missed check, which it reserves for a plugin that does not
// answer at all.
func (s *server) Health(ctx context.Context, _ *pluginv1.HealthRequest) (*pluginv1.HealthResponse, error) {
	h, ok := s.impl.(HealthChecker)
	if !ok {
		return &pluginv1.HealthResponse{Ok: true}, nil
	}
	if err := rpc.CheckHealth(ctx, h.Health); err != nil {
		return &pluginv1.HealthResponse{Ok: false, Message: err.Error()}, nil
	}
	return &pluginv1.HealthResponse{Ok: true}, nil
}

func (s *server) Passthrough(r *providerv1.PassthroughRequest, stream providerv1.Provider_PassthroughServer) error {
	p, ok := s.impl.(Passthrougher)
	if !ok {
		return status.Error(codes.Unimplemented, "transparent mode")
	}
	meta := metaFromProto(r.Meta)
	ctx, cancel := withMeta(stream.Context(), meta)
	defer cancel()
	u, err := url.ParseRequestURI(r.Path)
	if err != nil || u.RawQuery != "" || u.Host != "" {
		return status.Errorf(codes.InvalidArgument, "bad native path %q", r.Path)
	}
	u.RawQuery = r.RawQuery
	hr, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(r.Body))
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "bad native request: %v", err)
	}
	hr.RequestURI = u.RequestURI()
	hr.ContentLength = int64(len(r.Body))
	hr.Header = headerFromProto(r.Header)
	w := &passthroughWriter{stream: stream, header: http.Header{}}
	p.Passthrough(w, hr)
	return w.finish()
}

// passthroughWriter is the http.ResponseWriter a Passthrougher writes to;
// it sends the status and header first, then each Write as a body piece.
type passthroughWriter struct {
	stream      providerv1.Provider_PassthroughServer
	header      http.Header
	wroteHeader bool
	err         error
}

var (
	_ http.ResponseWriter = (*passthroughWriter)(nil)
	_ http.Flusher        = (*passthroughWriter)(nil)
)

func (w *passthroughWriter) Header() http.Header { return w.header }

func (w *passthroughWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	w.err = w.stream.Send(&providerv1.PassthroughResponse{Status: int32(code), Header: headerToProto(w.header)})
}

func (w *passthroughWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if w.err != nil {
		return 0, w.err
	}
	// The buffer is sent before Write returns, so callers may reuse b.
	if err := w.stream.Send(&providerv1.PassthroughResponse{Body: b}); err != nil {
		w.err = err
		return 0, err
	}
	return len(b), nil
}

// Flush is a no-op: every Write is already sent.
func (w *passthroughWriter) Flush() { w.WriteHeader(http.StatusOK) }

func (w *passthroughWriter) finish() error {
	w.WriteHeader(http.StatusOK)
	if w.err != nil && w.err != io.EOF {
		return w.err
	}
	return nil
}

func headerToProto(h http.Header) []*providerv1.Header {
	out := make([]*providerv1.Header, 0, len(h))
	for k, v := range h {
		out = append(out, &providerv1.Header{Name: k, Values: v})
	}
	return out
}

func headerFromProto(hs []*providerv1.Header) http.Header {
	h := make(http.Header, len(hs))
	for _, x := range hs {
		h[http.CanonicalHeaderKey(x.Name)] = append(h[http.CanonicalHeaderKey(x.Name)], x.Values...)
	}
	return h
}

// ForwardPlan serves the provider's forwarding plan; a version of zero
// tells the host there is none.
func (s *server) ForwardPlan(ctx context.Context, _ *providerv1.ForwardPlanRequest) (*providerv1.ForwardPlanResponse, error) {
	pl, ok := s.impl.(Planner)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "forwarding plan")
	}
	p, err := pl.Plan(ctx)
	if err != nil {
		return nil, rpc.ToStatus(err)
	}
	if p == nil {
		return &providerv1.ForwardPlanResponse{}, nil
	}
	return planToProto(p), nil
}
