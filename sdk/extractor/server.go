package extractor

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
	extractorv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/extractor/v1"
	pluginv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/plugin/v1"
)

// server adapts an Extractor to the generated gRPC service.
type server struct {
	extractorv1.UnimplementedExtractorServer
	impl Extractor

	// types are the MIME types of the first successful Describe.
	mu    sync.Mutex
	types []string
}

// handles reports whether the plugin described mimeType.
func (s *server) handles(ctx context.Context, mimeType string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.types == nil {
		d, err := s.impl.Describe(ctx)
		if err != nil {
			return false, err
		}
		s.types = slices.Clone(d.MIMETypes)
	}
	return slices.Contains(s.types, mimeType), nil
}

func (s *server) Describe(ctx context.Context, _ *extractorv1.DescribeRequest) (*extractorv1.DescribeResponse, error) {
	d, err := s.impl.Describe(ctx)
	if err != nil {
		return nil, rpc.ToStatus(err)
	}
	return &extractorv1.DescribeResponse{Name: d.Name, Version: d.Version, MimeTypes: d.MIMETypes}, nil
}

// Extract recovers a panic of the plugin's code itself, so that it is
// answered the same way whether or not the gRPC server's interceptors
// run (as in tests that serve the plugin in-process).
func (s *server) Extract(ctx context.Context, req *extractorv1.ExtractRequest) (resp *extractorv1.ExtractResponse, err error) {
	defer func() {
		if r := recover(); r != nil {
			rpc.Logger().Error("extractor panicked", "document", req.Name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			resp, err = nil, status.Errorf(codes.Internal, "extractor panicked on %q: %v", req.Name, r)
		}
	}()
	doc := &Document{Name: req.Name, MIMEType: req.MimeType, Data: req.Data}
	if l := req.Limits; l != nil {
		doc.Limits = Limits{MaxTextBytes: l.MaxTextBytes, MaxPages: l.MaxPages, MaxDecodedBytes: l.MaxDecodedBytes}
	}
	doc.Limits = doc.Limits.WithDefaults()
	if m := req.Meta; m != nil {
		doc.Meta.RequestID = m.RequestId
		if m.DeadlineUnixNano != 0 {
			doc.Meta.Deadline = time.Unix(0, m.DeadlineUnixNano)
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, doc.Meta.Deadline)
			defer cancel()
		}
	}
	ok, err := s.handles(ctx, req.MimeType)
	if err != nil {
		return nil, rpc.ToStatus(err)
	}
	if !ok {
		return nil, rpc.ToStatus(Unreadable("this extractor does not handle %q", req.MimeType))
	}
	t, err := s.impl.Extract(ctx, doc)
	if err != nil {
		return nil, rpc.ToStatus(err)
	}
	if t == nil {
		return nil, rpc.ToStatus(fmt.Errorf("extractor returned no text and no error"))
	}
	text, cut := Truncate(t.Text, doc.Limits.MaxTextBytes)
	return &extractorv1.ExtractResponse{Text: text, Pages: t.Pages, Truncated: t.Truncated || cut}, nil
}

func (s *server) Health(context.Context, *pluginv1.HealthRequest) (*pluginv1.HealthResponse, error) {
	return &pluginv1.HealthResponse{Ok: true}, nil
}

// Truncate cuts s to at most max bytes at a UTF-8 boundary and reports
// whether it did. Invalid UTF-8 is dropped first, so the result is
// always valid UTF-8 (protobuf strings must be).
func Truncate(s string, max int64) (string, bool) {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "")
	}
	if max <= 0 || int64(len(s)) <= max {
		return s, false
	}
	i := int(max)
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i], true
}
