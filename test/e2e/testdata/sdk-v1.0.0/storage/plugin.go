package storage

import (
	"context"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
	storagev1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/storage/v1"
)

// PluginName is the go-plugin name of the storage service.
const PluginName = "storage"

// Handshake is the go-plugin handshake shared by host and plugins.
var Handshake = rpc.Handshake

// Plugin adapts a Storage to go-plugin. Plugin authors use Serve; the
// host and sdktest use Plugin with a nil Impl to dispense a *Client.
type Plugin struct {
	goplugin.NetRPCUnsupportedPlugin
	Impl Storage
}

var _ goplugin.GRPCPlugin = (*Plugin)(nil)

// GRPCServer registers the storage service.
func (p *Plugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	storagev1.RegisterStorageServer(s, &server{impl: p.Impl})
	return nil
}

// GRPCClient returns a *Client.
func (p *Plugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewClient(c), nil
}

// ClientPlugins is the VersionedPlugins map the host dials storage plugins
// with.
func ClientPlugins() map[int]goplugin.PluginSet {
	return map[int]goplugin.PluginSet{rpc.ProtocolVersion: {PluginName: &Plugin{}}}
}

// DialOptions are the gRPC dial options the host uses for plugins.
func DialOptions() []grpc.DialOption { return rpc.DialOptions() }
