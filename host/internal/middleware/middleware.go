// Package middleware runs the middleware plugins that the config puts
// around chat requests: the API key's list, then the route's, in order.
//
// Every hook call runs under the instance's hook_timeout and fails
// closed. A veto (a 4xx *openai.Error from the plugin) reaches the client
// as it is; any other failure answers the request with an OpenAI-shaped
// 5xx and never lets it through unchecked. A hook that overran its budget
// or whose process died gets the process killed and replaced, so that it
// costs that one request only.
package middleware

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/plugins"
	sdk "github.com/llmproxy/llmproxy/sdk/middleware"
	"github.com/llmproxy/llmproxy/sdk/openai"
)

// DefaultHookTimeout is the budget of one hook call when a middleware
// instance sets no hook_timeout.
const DefaultHookTimeout = 2 * time.Second

// readyWait is how long a request waits for a middleware instance that
// is being replaced before it is answered 503.
const readyWait = 10 * time.Second

// Instances finds middleware instances by name; *plugins.Manager is one.
type Instances interface {
	Get(name string) *plugins.Instance
}

// Runner knows which middleware instances run for which key and route.
type Runner struct {
	instances Instances
	log       hclog.Logger
	byKey     map[string][]string
	byRoute   map[string][]string
	budget    map[string]time.Duration
}

// New returns the Runner of cfg, or nil when no key or route names a
// middleware (the request path then skips it entirely).
func New(cfg *config.File, instances Instances, log hclog.Logger) (*Runner, error) {
	r := &Runner{instances: instances, log: log, byKey: map[string][]string{}, byRoute: map[string][]string{}, budget: map[string]time.Duration{}}
	for _, in := range cfg.Middleware {
		d, err := config.Duration(in.HookTimeout, DefaultHookTimeout)
		if err != nil {
			return nil, fmt.Errorf("middleware %q: hook_timeout: %w", in.Name, err)
		}
		if d <= 0 {
			return nil, fmt.Errorf("middleware %q: hook_timeout must be positive", in.Name)
		}
		r.budget[in.Name] = d
	}
	used := false
	for _, k := range cfg.APIKeys {
		if len(k.Middleware) > 0 {
			r.byKey[k.Name], used = k.Middleware, true
		}
	}
	for _, rt := range cfg.Routes {
		if len(rt.Middleware) > 0 {
			r.byRoute[rt.Model], used = rt.Middleware, true
		}
	}
	if !used {
		return nil, nil
	}
	return r, nil
}

// Chain is the middlewares of one request.
type Chain struct {
	r     *Runner
	names []string
	call  sdk.Call
	index int64
}

// For returns the chain of a request by the named key to the named
// route, or nil when none applies. A nil *Runner returns nil.
func (r *Runner) For(key, route, requestID string, stream bool) *Chain {
	if r == nil {
		return nil
	}
	names := slices.Concat(r.byKey[key], r.byRoute[route])
	if len(names) == 0 {
		return nil
	}
	return &Chain{r: r, names: names, call: sdk.Call{RequestID: requestID, KeyName: key, Stream: stream}}
}

// Request runs every request hook in order and returns the body to
// route.
func (c *Chain) Request(ctx context.Context, body []byte) ([]byte, error) {
	return c.run(ctx, sdk.HookRequest, body, func(ctx context.Context, p *plugins.MiddlewareProcess, b []byte) ([]byte, error) {
		return p.OnRequest(ctx, &c.call, b)
	})
}

// Chunk runs every chunk hook in order on one streamed chunk. Calls for
// one stream must not overlap.
func (c *Chain) Chunk(ctx context.Context, chunk []byte) ([]byte, error) {
	if c == nil {
		return chunk, nil
	}
	i := c.index
	c.index++
	return c.run(ctx, sdk.HookChunk, chunk, func(ctx context.Context, p *plugins.MiddlewareProcess, b []byte) ([]byte, error) {
		return p.OnChunk(ctx, &c.call, i, b)
	})
}

// Response runs every response hook in order on a non-streamed answer.
func (c *Chain) Response(ctx context.Context, body []byte) ([]byte, error) {
	return c.run(ctx, sdk.HookResponse, body, func(ctx context.Context, p *plugins.MiddlewareProcess, b []byte) ([]byte, error) {
		return p.OnResponse(ctx, &c.call, b)
	})
}

type hookFunc func(ctx context.Context, p *plugins.MiddlewareProcess, b []byte) ([]byte, error)

func (c *Chain) run(ctx context.Context, hook string, b []byte, f hookFunc) ([]byte, error) {
	if c == nil {
		return b, nil
	}
	for _, name := range c.names {
		in := c.r.instances.Get(name)
		if in == nil {
			return nil, failed(http.StatusInternalServerError, "middleware_unavailable", "middleware %s is not configured", name)
		}
		p, err := in.Middleware(ctx, readyWait)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, unavailable(name, err)
		}
		if !slices.Contains(p.Hooks, hook) {
			continue
		}
		if b, err = c.call1(ctx, name, hook, p, b, f); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// call1 runs one hook of one middleware under its budget.
func (c *Chain) call1(ctx context.Context, name, hook string, p *plugins.MiddlewareProcess, b []byte, f hookFunc) ([]byte, error) {
	budget := c.r.budget[name]
	hctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	out, err := f(hctx, p, b)
	if err == nil {
		return out, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if overran(hctx, err) {
		c.r.log.Error("middleware hook overran its budget; process replaced", "middleware", name, "hook", hook,
			"request_id", c.call.RequestID, "budget", budget)
		p.Replace(fmt.Sprintf("%s hook took longer than %s", hook, budget))
		return nil, failed(http.StatusBadGateway, "middleware_timeout", "middleware %s did not answer its %s hook within %s", name, hook, budget)
	}
	var oe *openai.Error
	if errors.As(err, &oe) {
		switch {
		case oe.Status >= 400 && oe.Status < 500:
			// A veto: the plugin's answer to this request.
			return nil, oe
		case oe.Code == "plugin_error":
			c.r.log.Error("middleware hook failed", "middleware", name, "hook", hook, "request_id", c.call.RequestID, "error", oe.Message)
			return nil, failed(http.StatusInternalServerError, "middleware_error", "middleware %s failed in its %s hook", name, hook)
		}
	}
	// The process broke mid-call (it died, or the connection did).
	c.r.log.Error("middleware process failed; replacing it", "middleware", name, "hook", hook, "request_id", c.call.RequestID, "error", err)
	p.Replace(fmt.Sprintf("%s hook failed: %v", hook, err))
	return nil, failed(http.StatusBadGateway, "middleware_unavailable", "middleware %s stopped during its %s hook", name, hook)
}

// overran reports whether a hook call failed because its budget ran
// out. The plugin sees the same deadline and may answer a moment before
// the host's own timer fires, with a deadline error of its own.
func overran(hctx context.Context, err error) bool {
	if errors.Is(hctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var oe *openai.Error
	if errors.As(err, &oe) && oe.Code == "plugin_timeout" {
		return true
	}
	dl, ok := hctx.Deadline()
	return ok && time.Until(dl) < 5*time.Millisecond
}

func failed(status int, code, format string, args ...any) *openai.Error {
	return openai.NewError(status, openai.TypeServer, code, fmt.Sprintf(format, args...))
}

// unavailable is the 503 of a middleware instance that is not ready.
func unavailable(name string, err error) error {
	var oe *openai.Error
	if errors.As(err, &oe) {
		e := openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "middleware_unavailable",
			fmt.Sprintf("middleware %s is not ready: %s", name, oe.Message))
		e.RetryAfter = time.Second
		return e
	}
	return failed(http.StatusServiceUnavailable, "middleware_unavailable", "middleware %s is not ready: %v", name, err)
}
