package rpc

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
)

// acceptedKey carries the hook of WithAccepted.
type acceptedKey struct{}

// WithAccepted returns a context whose calls to a plugin run f once the
// plugin acknowledges that it is running the call: gRPC response headers,
// which the SDK's server sends as soon as a call starts, or an accept frame
// on the data path. f may run more than once and from another goroutine.
func WithAccepted(ctx context.Context, f func()) context.Context {
	return context.WithValue(ctx, acceptedKey{}, f)
}

// Accepted runs the hook of WithAccepted, if ctx has one.
func Accepted(ctx context.Context) {
	if f, ok := ctx.Value(acceptedKey{}).(func()); ok {
		f()
	}
}

// acceptStats reports the arrival of response headers to the hook of
// WithAccepted. It is the only way to see headers of a unary call before
// the call returns.
type acceptStats struct{}

var _ stats.Handler = acceptStats{}

func (acceptStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (acceptStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if h, ok := s.(*stats.InHeader); ok && h.Client {
		Accepted(ctx)
	}
}

func (acceptStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (acceptStats) HandleConn(context.Context, stats.ConnStats) {}

// acceptedHeader is the metadata of the early response headers.
var acceptedHeader = metadata.Pairs("llmproxy-accepted", "1")

// acceptUnary sends response headers before running a unary call, so that
// the host learns at once that the plugin is running it.
func acceptUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	grpc.SendHeader(ctx, acceptedHeader)
	return h(ctx, req)
}

// acceptStream does the same for streams.
func acceptStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ss.SendHeader(acceptedHeader)
	return h(srv, ss)
}
