package sdktest

import (
	"testing"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/llmproxy/llmproxy/sdk/middleware"
)

// ConnectMiddleware serves m in-process over gRPC, the way the host
// reaches a middleware plugin, and returns the host's client for it.
func ConnectMiddleware(t testing.TB, m middleware.Middleware) *middleware.Client {
	t.Helper()
	client, _ := goplugin.TestPluginGRPCConn(t, false, map[string]goplugin.Plugin{
		middleware.PluginName: &middleware.Plugin{Impl: m},
	})
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(middleware.PluginName)
	if err != nil {
		t.Fatalf("dispense middleware: %v", err)
	}
	return raw.(*middleware.Client)
}
