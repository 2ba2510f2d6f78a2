package plugins

import (
	"context"
	"errors"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/llmproxy/llmproxy/sdk/schema"
)

// storageDriver runs storage plugins. Until the storage contract is
// served, storage instances report that they cannot start.
type storageDriver struct{}

var _ driver = storageDriver{}

func (storageDriver) kind() string                        { return "storage" }
func (storageDriver) plugins() map[int]goplugin.PluginSet { return map[int]goplugin.PluginSet{} }

func (storageDriver) describe(context.Context, any) (described, error) {
	return described{}, errors.New("storage plugins are not supported by this host build")
}

func (storageDriver) configure(context.Context, any, string, []byte, map[string]string, map[string]string) (schema.Diagnostics, error) {
	return nil, errors.New("storage plugins are not supported by this host build")
}

func (storageDriver) health(context.Context, any) error { return nil }
