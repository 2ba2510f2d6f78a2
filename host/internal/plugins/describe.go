package plugins

import (
	"context"
	"fmt"
	"os/exec"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/llmproxy/llmproxy/sdk/schema"
)

// Description is what a plugin binary says about itself in Describe: what
// `llmproxy validate` needs to check an instance without running it.
type Description struct {
	// Name and Version are the plugin's own.
	Name, Version string
	// Schema is the shape of an instance's config block.
	Schema schema.Schema
	// Credentials are the secrets an instance may or must be given.
	Credentials []schema.Credential
}

// Describe starts the plugin binary at path (kind "provider" or
// "storage") with an empty environment, asks it Describe and stops it
// again. Nothing is configured and no credential is handed over.
func Describe(ctx context.Context, kind, path string, log hclog.Logger) (*Description, error) {
	var drv driver
	switch kind {
	case "provider":
		drv = providerDriver{}
	case "storage":
		drv = storageDriver{}
	default:
		return nil, fmt.Errorf("unknown plugin kind %q", kind)
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	bindToHost(cmd)
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  handshake,
		VersionedPlugins: drv.plugins(),
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		Logger:           log,
		StartTimeout:     15 * time.Second,
		GRPCDialOptions:  dialOptions(),
	})
	defer client.Kill()
	proto, err := client.Client()
	if err != nil {
		return nil, fmt.Errorf("start plugin %s: %w", path, err)
	}
	raw, err := proto.Dispense(kind)
	if err != nil {
		return nil, fmt.Errorf("plugin %s does not serve the %s service (protocol v%d): %w", path, kind, handshake.ProtocolVersion, err)
	}
	if c, ok := raw.(interface{ Close() }); ok {
		defer c.Close()
	}
	d, err := drv.describe(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: describe: %w", path, err)
	}
	return &Description{Name: d.name, Version: d.version, Schema: d.schema, Credentials: d.credentials}, nil
}
