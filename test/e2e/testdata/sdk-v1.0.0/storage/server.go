package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
	"github.com/llmproxy/llmproxy/sdk/openai"
	pluginv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/plugin/v1"
	storagev1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/storage/v1"
)

// server adapts a Storage to the generated gRPC service.
type server struct {
	storagev1.UnimplementedStorageServer
	impl Storage
}

func (s *server) Describe(ctx context.Context, _ *storagev1.DescribeRequest) (*storagev1.DescribeResponse, error) {
	d, err := s.impl.Describe(ctx)
	if err != nil {
		return nil, rpc.ToStatus(err)
	}
	return &storagev1.DescribeResponse{
		Name:         d.Name,
		Version:      d.Version,
		Capabilities: capabilities(s.impl, d.Capabilities),
		ConfigSchema: rpc.SchemaToProto(d.ConfigSchema),
		Credentials:  rpc.CredentialsToProto(d.Credentials),
	}, nil
}

// capabilities adds the capabilities implied by the implemented
// interfaces to the declared ones.
func capabilities(s Storage, declared []string) []string {
	has := map[string]bool{}
	out := []string{}
	add := func(c string) {
		if !has[c] {
			has[c] = true
			out = append(out, c)
		}
	}
	if _, ok := s.(Presigner); ok {
		add(CapPresign)
	}
	if _, ok := s.(HealthChecker); ok {
		add(CapHealth)
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

// withMeta puts the request's Meta into ctx and applies its deadline.
func withMeta(ctx context.Context, p *pluginv1.Meta) (context.Context, context.CancelFunc) {
	m := metaFromProto(p)
	ctx = ContextWithMeta(ctx, m)
	if !m.Deadline.IsZero() {
		return context.WithDeadline(ctx, m.Deadline)
	}
	return context.WithCancel(ctx)
}

func validate(bucket, key string) error {
	if err := ValidateBucket(bucket); err != nil {
		return err
	}
	return ValidateKey(key)
}

func (s *server) Put(stream storagev1.Storage_PutServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil {
		return status.Error(codes.InvalidArgument, "the first Put message must carry the object header")
	}
	if err := validate(h.Bucket, h.Key); err != nil {
		return rpc.ToStatus(err)
	}
	if h.Size < -1 {
		return rpc.ToStatus(openai.InvalidRequest("size", fmt.Sprintf("invalid object size %d", h.Size)))
	}
	ctx, cancel := withMeta(stream.Context(), h.Meta)
	defer cancel()
	body := &putReader{stream: stream, size: h.Size}
	obj := &Object{Bucket: h.Bucket, Key: h.Key, ContentType: h.ContentType, Size: h.Size, Metadata: h.Metadata}
	info, err := s.impl.Put(ctx, obj, body)
	if err != nil {
		return rpc.ToStatus(err)
	}
	if !body.eof {
		// The plugin returned early: the body must have been fully read
		// for the stored object to be the one sent.
		var b [1]byte
		if n, err := body.Read(b[:]); n > 0 || err != io.EOF {
			return status.Errorf(codes.Internal, "storage plugin stored %s/%s without reading the whole body", h.Bucket, h.Key)
		}
	}
	return stream.SendAndClose(&storagev1.PutResponse{Info: infoToProto(info)})
}

// putReader reads body pieces from a Put stream and enforces the
// announced size.
type putReader struct {
	stream storagev1.Storage_PutServer
	size   int64
	n      int64
	piece  []byte
	eof    bool
	err    error
}

func (r *putReader) Read(p []byte) (int, error) {
	for len(r.piece) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		m, err := r.stream.Recv()
		if errors.Is(err, io.EOF) {
			if r.size >= 0 && r.n != r.size {
				r.err = sizeMismatch(r.size, r.n)
				return 0, r.err
			}
			r.eof = true
			r.err = io.EOF
			return 0, io.EOF
		}
		if err != nil {
			r.err = fmt.Errorf("receive object body: %w", err)
			return 0, r.err
		}
		if m.GetHeader() != nil {
			r.err = openai.InvalidRequest("", "Put stream carried a second header")
			return 0, r.err
		}
		r.piece = m.GetData()
		r.n += int64(len(r.piece))
		if r.size >= 0 && r.n > r.size {
			r.piece = nil
			r.err = sizeMismatch(r.size, r.n)
			return 0, r.err
		}
	}
	n := copy(p, r.piece)
	r.piece = r.piece[n:]
	return n, nil
}

func sizeMismatch(want, got int64) *openai.Error {
	return openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, CodeSizeMismatch,
		fmt.Sprintf("object body is not the announced %d bytes (got at least %d)", want, got))
}

func (s *server) Get(req *storagev1.GetRequest, stream storagev1.Storage_GetServer) error {
	if err := validate(req.Bucket, req.Key); err != nil {
		return rpc.ToStatus(err)
	}
	ctx, cancel := withMeta(stream.Context(), req.Meta)
	defer cancel()
	info, rc, err := s.impl.Get(ctx, &GetRequest{Bucket: req.Bucket, Key: req.Key, Range: rangeFromProto(req.Range)})
	if err != nil {
		return rpc.ToStatus(err)
	}
	defer rc.Close()
	if err := stream.Send(&storagev1.GetResponse{Info: infoToProto(info)}); err != nil {
		return err
	}
	buf := make([]byte, PieceSize)
	for {
		n, err := io.ReadFull(rc, buf)
		if n > 0 {
			// Send marshals the message before it returns, so buf may
			// be reused for the next piece.
			if serr := stream.Send(&storagev1.GetResponse{Data: buf[:n]}); serr != nil {
				return serr
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return nil
		default:
			return rpc.ToStatus(fmt.Errorf("read %s/%s: %w", req.Bucket, req.Key, err))
		}
	}
}

func (s *server) Head(ctx context.Context, req *storagev1.HeadRequest) (*storagev1.HeadResponse, error) {
	if err := validate(req.Bucket, req.Key); err != nil {
		return nil, rpc.ToStatus(err)
	}
	ctx, cancel := withMeta(ctx, req.Meta)
	defer cancel()
	info, err := s.impl.Head(ctx, req.Bucket, req.Key)
	if err != nil {
		return nil, rpc.ToStatus(err)
	}
	return &storagev1.HeadResponse{Info: infoToProto(info)}, nil
}

func (s *server) List(ctx context.Context, req *storagev1.ListRequest) (*storagev1.ListResponse, error) {
	if err := ValidateBucket(req.Bucket); err != nil {
		return nil, rpc.ToStatus(err)
	}
	if req.MaxKeys < 0 || req.MaxKeys > DefaultMaxKeys {
		return nil, rpc.ToStatus(openai.InvalidRequest("max_keys",
			fmt.Sprintf("max_keys must be between 0 and %d, got %d", DefaultMaxKeys, req.MaxKeys)))
	}
	ctx, cancel := withMeta(ctx, req.Meta)
	defer cancel()
	max := int(req.MaxKeys)
	if max == 0 {
		max = DefaultMaxKeys
	}
	res, err := s.impl.List(ctx, &ListRequest{
		Bucket: req.Bucket, Prefix: req.Prefix, Delimiter: req.Delimiter, PageToken: req.PageToken, MaxKeys: max,
	})
	if err != nil {
		return nil, rpc.ToStatus(err)
	}
	out := &storagev1.ListResponse{CommonPrefixes: res.CommonPrefixes, NextPageToken: res.NextPageToken}
	for i := range res.Objects {
		out.Objects = append(out.Objects, infoToProto(&res.Objects[i]))
	}
	return out, nil
}

func (s *server) Delete(ctx context.Context, req *storagev1.DeleteRequest) (*storagev1.DeleteResponse, error) {
	if err := validate(req.Bucket, req.Key); err != nil {
		return nil, rpc.ToStatus(err)
	}
	ctx, cancel := withMeta(ctx, req.Meta)
	defer cancel()
	if err := s.impl.Delete(ctx, req.Bucket, req.Key); err != nil {
		return nil, rpc.ToStatus(err)
	}
	return &storagev1.DeleteResponse{}, nil
}

func (s *server) Presign(ctx context.Context, req *storagev1.PresignRequest) (*storagev1.PresignResponse, error) {
	p, ok := s.impl.(Presigner)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "presigned URLs")
	}
	if err := validate(req.Bucket, req.Key); err != nil {
		return nil, rpc.ToStatus(err)
	}
	method := strings.ToUpper(req.Method)
	if method != http.MethodGet && method != http.MethodPut {
		e := openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, CodeUnsupportedMethod,
			fmt.Sprintf("presign method must be GET or PUT, got %q", req.Method))
		e.Param = "method"
		return nil, rpc.ToStatus(e)
	}
	if req.TtlSeconds <= 0 {
		return nil, rpc.ToStatus(openai.InvalidRequest("ttl", fmt.Sprintf("ttl must be positive, got %d s", req.TtlSeconds)))
	}
	ctx, cancel := withMeta(ctx, req.Meta)
	defer cancel()
	u, err := p.Presign(ctx, &PresignRequest{
		Bucket: req.Bucket, Key: req.Key, Method: method,
		TTL: time.Duration(req.TtlSeconds) * time.Second, ContentType: req.ContentType,
	})
	if err != nil {
		return nil, rpc.ToStatus(err)
	}
	return &storagev1.PresignResponse{
		Url: u.URL, Method: u.Method, Headers: headerToProto(u.Header), ExpiresAtUnix: u.Expires.Unix(),
	}, nil
}

func (s *server) Health(ctx context.Context, _ *pluginv1.HealthRequest) (*pluginv1.HealthResponse, error) {
	h, ok := s.impl.(HealthChecker)
	if !ok {
		return &pluginv1.HealthResponse{Ok: true}, nil
	}
	if err := h.Health(ctx); err != nil {
		return &pluginv1.HealthResponse{Ok: false, Message: err.Error()}, nil
	}
	return &pluginv1.HealthResponse{Ok: true}, nil
}
