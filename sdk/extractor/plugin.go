package extractor

import (
	"context"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
	extractorv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/extractor/v1"
)

// PluginName is the go-plugin name of the extractor service.
const PluginName = "extractor"

// Handshake is the go-plugin handshake shared by host and plugins.
var Handshake = rpc.Handshake

// Plugin adapts an Extractor to go-plugin. Plugin authors use Serve; the
// host and sdktest use Plugin with a nil Impl to dispense a *Client.
type Plugin struct {
	goplugin.NetRPCUnsupportedPlugin
	Impl Extractor
}

var _ goplugin.GRPCPlugin = (*Plugin)(nil)

// GRPCServer registers the extractor service.
func (p *Plugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	extractorv1.RegisterExtractorServer(s, &server{impl: p.Impl})
	return nil
}

// GRPCClient returns a *Client.
func (p *Plugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewClient(c), nil
}

// ClientPlugins is the VersionedPlugins map the host dials extractor
// plugins with.
func ClientPlugins() map[int]goplugin.PluginSet {
	return map[int]goplugin.PluginSet{rpc.ProtocolVersion: {PluginName: &Plugin{}}}
}

// DialOptions are the gRPC dial options the host uses for plugins.
func DialOptions() []grpc.DialOption { return rpc.DialOptions() }
