package plugins

import (
	"context"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

var handshake = provider.Handshake

func dialOptions() []grpc.DialOption { return provider.DialOptions() }

// providerDriver runs provider plugins.
type providerDriver struct{}

var _ driver = providerDriver{}

func (providerDriver) kind() string                        { return "provider" }
func (providerDriver) plugins() map[int]goplugin.PluginSet { return provider.ClientPlugins() }

func (providerDriver) describe(ctx context.Context, raw any) (described, error) {
	d, err := raw.(*provider.Client).Describe(ctx)
	if err != nil {
		return described{}, err
	}
	return described{name: d.Name, version: d.Version, schema: d.ConfigSchema, credentials: d.Credentials, full: d}, nil
}

func (providerDriver) configure(ctx context.Context, raw any, instance string, cfg []byte, creds, settings map[string]string) (schema.Diagnostics, error) {
	return raw.(*provider.Client).Configure(ctx, &provider.Config{Instance: instance, JSON: cfg, Credentials: creds, Settings: settings})
}

func (providerDriver) health(ctx context.Context, raw any) error {
	return raw.(*provider.Client).Health(ctx)
}

// Provider returns the instance's provider client and description, or a
// 503 *openai.Error saying why the instance cannot serve.
func (in *Instance) Provider() (*provider.Client, *provider.Description, error) {
	l, err := in.client()
	if err != nil {
		return nil, nil, err
	}
	c, ok := l.raw.(*provider.Client)
	if !ok {
		return nil, nil, errNotProvider(in.Name)
	}
	return c, l.desc.full.(*provider.Description), nil
}
