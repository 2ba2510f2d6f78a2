package middleware

import (
	"context"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
	middlewarev1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/middleware/v1"
)

// PluginName is the go-plugin name of the middleware service.
const PluginName = "middleware"

// Handshake is the go-plugin handshake shared by host and plugins.
var Handshake = rpc.Handshake

// Plugin adapts a Middleware to go-plugin. Plugin authors use Serve; the
// host and tests use Plugin with a nil Impl to dispense a *Client.
type Plugin struct {
	goplugin.NetRPCUnsupportedPlugin
	Impl Middleware
}

var _ goplugin.GRPCPlugin = (*Plugin)(nil)

// GRPCServer registers the middleware service.
func (p *Plugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	middlewarev1.RegisterMiddlewareServer(s, &server{impl: p.Impl})
	return nil
}

// GRPCClient returns a *Client.
func (p *Plugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewClient(c), nil
}

// ClientPlugins is the VersionedPlugins map the host dials middleware
// plugins with.
func ClientPlugins() map[int]goplugin.PluginSet {
	return map[int]goplugin.PluginSet{rpc.ProtocolVersion: {PluginName: &Plugin{}}}
}

// DialOptions are the gRPC dial options the host uses for plugins.
func DialOptions() []grpc.DialOption { return rpc.DialOptions() }
