package provider

import (
	"context"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/llmproxy/llmproxy/sdk/internal/datapath"
	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
	providerv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/provider/v1"
)

// PluginName is the go-plugin name of the provider service.
const PluginName = "provider"

// Handshake is the go-plugin handshake shared by host and plugins.
var Handshake = rpc.Handshake

// Plugin adapts a Provider to go-plugin. Plugin authors use Serve; the
// host and sdktest use Plugin with a nil Impl to dispense a *Client.
type Plugin struct {
	goplugin.NetRPCUnsupportedPlugin
	Impl Provider

	data *datapath.Server
}

var _ goplugin.GRPCPlugin = (*Plugin)(nil)

// GRPCServer registers the provider service and opens the data path for
// chat calls (see sdk/internal/datapath); without it the host simply
// calls over gRPC.
func (p *Plugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	srv := &server{impl: p.Impl}
	if ds, err := datapath.Listen(dataHandler{srv}); err == nil {
		srv.data = ds
		p.data = ds
		rpc.OnExit(func() { ds.Close() })
	} else {
		rpc.Logger().Warn("no data path; unary calls go over gRPC", "error", err)
	}
	providerv1.RegisterProviderServer(s, srv)
	return nil
}

// Close releases the data path's socket. Serve does this when the plugin
// exits; tests serving a Plugin in-process call it when they end.
func (p *Plugin) Close() error {
	if p.data != nil {
		return p.data.Close()
	}
	return nil
}

// GRPCClient returns a *Client.
func (p *Plugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &Client{rpc: providerv1.NewProviderClient(c)}, nil
}

// ClientPlugins is the VersionedPlugins map the host dials providers with.
func ClientPlugins() map[int]goplugin.PluginSet {
	return map[int]goplugin.PluginSet{rpc.ProtocolVersion: {PluginName: &Plugin{}}}
}

// DialOptions are the gRPC dial options the host uses for plugins.
func DialOptions() []grpc.DialOption { return rpc.DialOptions() }
