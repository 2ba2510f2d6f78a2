package secrets

import (
	"context"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
	secretsv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/secrets/v1"
)

// PluginName is the go-plugin name of the secrets service.
const PluginName = "secrets"

// Plugin adapts a Store to go-plugin. Plugin authors use Serve; the host
// and tests use Plugin with a nil Impl to dispense a *Client.
type Plugin struct {
	goplugin.NetRPCUnsupportedPlugin
	Impl Store
}

var _ goplugin.GRPCPlugin = (*Plugin)(nil)

// GRPCServer registers the secrets service.
func (p *Plugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	secretsv1.RegisterSecretsServer(s, &server{impl: p.Impl})
	return nil
}

// GRPCClient returns a *Client.
func (p *Plugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewClient(c), nil
}

// ClientPlugins is the VersionedPlugins map the host dials secrets
// plugins with.
func ClientPlugins() map[int]goplugin.PluginSet {
	return map[int]goplugin.PluginSet{rpc.ProtocolVersion: {PluginName: &Plugin{}}}
}
