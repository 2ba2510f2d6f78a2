package plugins

import (
	"context"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// SigningKeyCredential is the credential through which a storage plugin
// receives the key that signs URLs served by the host (the local
// backend). When an instance configures none, the host makes a random one
// at start, so such URLs stop working when the host restarts.
const SigningKeyCredential = "signing_key"

// storageDriver runs storage plugins.
type storageDriver struct{}

var _ driver = storageDriver{}

func (storageDriver) kind() string                        { return "storage" }
func (storageDriver) plugins() map[int]goplugin.PluginSet { return storage.ClientPlugins() }

func (storageDriver) describe(ctx context.Context, raw any) (described, error) {
	d, err := raw.(*storage.Client).Describe(ctx)
	if err != nil {
		return described{}, err
	}
	return described{name: d.Name, version: d.Version, schema: d.ConfigSchema, credentials: d.Credentials, full: d}, nil
}

func (storageDriver) configure(ctx context.Context, raw any, instance string, cfg []byte, creds, settings map[string]string) (schema.Diagnostics, error) {
	return raw.(*storage.Client).Configure(ctx, &storage.Config{Instance: instance, JSON: cfg, Credentials: creds, Settings: settings})
}

func (storageDriver) health(ctx context.Context, raw any) error {
	return raw.(*storage.Client).Health(ctx)
}

// Storage returns the instance's storage client, or a 503 *openai.Error
// saying why the instance cannot serve.
func (in *Instance) Storage() (*storage.Client, error) {
	l, err := in.client()
	if err != nil {
		return nil, err
	}
	c, ok := l.raw.(*storage.Client)
	if !ok {
		return nil, errNotProvider(in.Name)
	}
	return c, nil
}

// SigningKey returns the key that signs this storage instance's
// host-served URLs.
func (in *Instance) SigningKey() []byte { return []byte(in.signingKey.Load().(string)) }
