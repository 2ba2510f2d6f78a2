package plugins

import (
	"context"
	"net/http"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/llmproxy/llmproxy/sdk/middleware"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// MiddlewareKind is the plugin kind of middleware: binaries named
// llmproxy-middleware-<type>.
const MiddlewareKind = "middleware"

// middlewareDriver runs middleware plugins. A middleware instance is
// supervised like a provider instance (one process, health checks,
// restarts with backoff); on top of that, the request path replaces a
// process whose hook overran its budget or died, through Replace.
type middlewareDriver struct{}

var _ driver = middlewareDriver{}

func (middlewareDriver) kind() string                        { return MiddlewareKind }
func (middlewareDriver) plugins() map[int]goplugin.PluginSet { return middleware.ClientPlugins() }

func (middlewareDriver) describe(ctx context.Context, raw any) (described, error) {
	d, err := raw.(*middleware.Client).Describe(ctx)
	if err != nil {
		return described{}, err
	}
	return described{name: d.Name, version: d.Version, schema: d.ConfigSchema, credentials: d.Credentials, full: d}, nil
}

func (middlewareDriver) configure(ctx context.Context, raw any, instance string, cfg []byte, creds, settings map[string]string) (schema.Diagnostics, error) {
	return raw.(*middleware.Client).Configure(ctx, &middleware.Config{Instance: instance, JSON: cfg, Credentials: creds, Settings: settings})
}

func (middlewareDriver) health(ctx context.Context, raw any) error {
	return raw.(*middleware.Client).Health(ctx)
}

// MiddlewareProcess is one running process of a middleware instance.
type MiddlewareProcess struct {
	*middleware.Client
	// Hooks are the hooks the plugin implements and its config enables.
	Hooks []string
	in    *Instance
	l     *live
}

// Middleware returns the instance's running middleware process. When
// the instance is (re)starting it waits up to wait for it to become
// ready, then answers the 503 *openai.Error saying why it is not.
func (in *Instance) Middleware(ctx context.Context, wait time.Duration) (*MiddlewareProcess, error) {
	deadline := time.Now().Add(wait)
	for {
		l, err := in.client()
		if err == nil {
			c, ok := l.raw.(*middleware.Client)
			if !ok {
				return nil, openai.NewError(http.StatusInternalServerError, openai.TypeServer, "not_a_middleware",
					"instance "+in.Name+" is not a middleware instance")
			}
			hooks := c.Hooks()
			if hooks == nil {
				hooks = l.desc.full.(*middleware.Described).Hooks
			}
			return &MiddlewareProcess{Client: c, Hooks: hooks, in: in, l: l}, nil
		}
		if st := in.Status(); st.State == Failed || st.State == Disabled || st.State == Stopped || time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Replace kills the process at once (a hook overran its budget, or the
// process broke mid-call) and has the supervisor start a new one.
// Requests that come meanwhile wait for the new process; only the
// request that saw the failure is lost.
func (p *MiddlewareProcess) Replace(reason string) {
	in := p.in
	if in.cur.CompareAndSwap(p.l, nil) {
		in.setStatus(Restarting, reason)
	}
	if rc := p.l.client.ReattachConfig(); rc != nil && rc.Pid > 0 {
		killPID(rc.Pid)
	}
	in.Poke()
}
