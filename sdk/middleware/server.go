package middleware

import (
	"context"
	"fmt"
	"runtime/debug"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
	middlewarev1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/middleware/v1"
	pluginv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/plugin/v1"
)

// server adapts a Middleware to the generated gRPC service.
type server struct {
	middlewarev1.UnimplementedMiddlewareServer
	impl Middleware
}

func (s *server) Describe(ctx context.Context, _ *middlewarev1.DescribeRequest) (*middlewarev1.DescribeResponse, error) {
	d, err := s.impl.Describe(ctx)
	if err != nil {
		return nil, rpc.ToStatus(err)
	}
	return &middlewarev1.DescribeResponse{
		Name: d.Name, Version: d.Version, Hooks: Hooks(s.impl),
		ConfigSchema: rpc.SchemaToProto(d.ConfigSchema),
		Credentials:  rpc.CredentialsToProto(d.Credentials),
	}, nil
}

func (s *server) Configure(ctx context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	err := s.impl.Configure(ctx, &Config{Instance: req.Instance, JSON: req.ConfigJson, Credentials: req.Credentials, Settings: req.Settings})
	return &pluginv1.ConfigureResponse{Diagnostics: rpc.DiagnosticsToProto(err)}, nil
}

func (s *server) Health(context.Context, *pluginv1.HealthRequest) (*pluginv1.HealthResponse, error) {
	return &pluginv1.HealthResponse{Ok: true}, nil
}

// hook runs f, recovering a panic of the plugin's code itself so that it
// is answered the same way whether or not the gRPC server's interceptors
// run (as in tests that serve the plugin in-process).
func hook(ctx context.Context, c *middlewarev1.Call, name string, in []byte, f func(context.Context, *Call) ([]byte, error)) (res *middlewarev1.HookResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			rpc.Logger().Error("middleware panicked", "hook", name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			res, err = nil, status.Errorf(codes.Internal, "middleware panicked in its %s hook: %v", name, r)
		}
	}()
	call := &Call{}
	if c != nil {
		call.KeyName, call.Stream = c.KeyName, c.Stream
		if m := c.Meta; m != nil {
			call.RequestID = m.RequestId
		}
	}
	out, err := f(ctx, call)
	if err != nil {
		return nil, rpc.ToStatus(err)
	}
	if out == nil {
		return &middlewarev1.HookResult{}, nil
	}
	return &middlewarev1.HookResult{Body: out, Replaced: true}, nil
}

func (s *server) OnRequest(ctx context.Context, req *middlewarev1.RequestHook) (*middlewarev1.HookResult, error) {
	h, ok := s.impl.(RequestHook)
	if !ok {
		return &middlewarev1.HookResult{}, nil
	}
	return hook(ctx, req.Call, HookRequest, req.Body, func(ctx context.Context, c *Call) ([]byte, error) {
		return h.OnRequest(ctx, c, req.Body)
	})
}

func (s *server) OnChunk(ctx context.Context, req *middlewarev1.ChunkHook) (*middlewarev1.HookResult, error) {
	h, ok := s.impl.(ChunkHook)
	if !ok {
		return &middlewarev1.HookResult{}, nil
	}
	return hook(ctx, req.Call, HookChunk, req.Chunk, func(ctx context.Context, c *Call) ([]byte, error) {
		return h.OnChunk(ctx, c, req.Index, req.Chunk)
	})
}

func (s *server) OnResponse(ctx context.Context, req *middlewarev1.ResponseHook) (*middlewarev1.HookResult, error) {
	h, ok := s.impl.(ResponseHook)
	if !ok {
		return &middlewarev1.HookResult{}, nil
	}
	return hook(ctx, req.Call, HookResponse, req.Body, func(ctx context.Context, c *Call) ([]byte, error) {
		return h.OnResponse(ctx, c, req.Body)
	})
}
