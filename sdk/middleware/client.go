package middleware

import (
	"context"
	"errors"
	"sync/atomic"

	"google.golang.org/grpc"

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
	middlewarev1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/middleware/v1"
	pluginv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/plugin/v1"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// Client is the host's handle on a running middleware plugin. go-plugin
// dispenses it for PluginName. Errors of the hooks are *openai.Error
// values (or context errors): the plugin's own veto, 500 plugin_error for
// a panic, or 502 plugin_unavailable when the process died mid-call.
type Client struct {
	rpc middlewarev1.MiddlewareClient
	// hooks are the hooks enabled by the last successful Configure.
	hooks atomic.Pointer[[]string]
}

// NewClient returns a Client over an established gRPC connection to a
// middleware plugin.
func NewClient(cc grpc.ClientConnInterface) *Client {
	return &Client{rpc: middlewarev1.NewMiddlewareClient(cc)}
}

// Described is what the host learns from Describe, hooks included.
type Described struct {
	Description
	// Hooks are the hooks the plugin implements.
	Hooks []string
}

// Describe asks the plugin what it is and which hooks it implements.
func (c *Client) Describe(ctx context.Context) (*Described, error) {
	r, err := c.rpc.Describe(ctx, &middlewarev1.DescribeRequest{})
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	return &Described{Description: Description{
		Name: r.Name, Version: r.Version,
		ConfigSchema: rpc.SchemaFromProto(r.ConfigSchema),
		Credentials:  rpc.CredentialsFromProto(r.Credentials),
	}, Hooks: r.Hooks}, nil
}

// Configure sends an instance's config; the diagnostics say what is
// wrong. The error is for transport failures only. After a successful
// Configure it asks the plugin again which hooks are enabled (see
// HookSelector); Hooks then returns them.
func (c *Client) Configure(ctx context.Context, cfg *Config) (schema.Diagnostics, error) {
	r, err := c.rpc.Configure(ctx, &pluginv1.ConfigureRequest{
		Instance: cfg.Instance, ConfigJson: cfg.JSON, Credentials: cfg.Credentials, Settings: cfg.Settings,
	})
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	diags := rpc.DiagnosticsFromProto(r.Diagnostics)
	if diags.HasErrors() {
		return diags, nil
	}
	d, err := c.Describe(ctx)
	if err != nil {
		return diags, err
	}
	c.hooks.Store(&d.Hooks)
	return diags, nil
}

// Hooks returns the hooks the plugin enabled in its last successful
// Configure, or nil before one.
func (c *Client) Hooks() []string {
	if h := c.hooks.Load(); h != nil {
		return *h
	}
	return nil
}

func callToProto(call *Call) *middlewarev1.Call {
	return &middlewarev1.Call{Meta: &pluginv1.Meta{RequestId: call.RequestID}, KeyName: call.KeyName, Stream: call.Stream}
}

// result returns the hook's replacement, or in when it kept it.
func result(r *middlewarev1.HookResult, err error, in []byte) ([]byte, error) {
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	if !r.Replaced {
		return in, nil
	}
	return r.Body, nil
}

// OnRequest runs the plugin's request hook and returns the body to send
// on.
func (c *Client) OnRequest(ctx context.Context, call *Call, body []byte) ([]byte, error) {
	r, err := c.rpc.OnRequest(ctx, &middlewarev1.RequestHook{Call: callToProto(call), Body: body})
	return result(r, err, body)
}

// OnChunk runs the plugin's chunk hook and returns the chunk to send on.
func (c *Client) OnChunk(ctx context.Context, call *Call, index int64, chunk []byte) ([]byte, error) {
	r, err := c.rpc.OnChunk(ctx, &middlewarev1.ChunkHook{Call: callToProto(call), Chunk: chunk, Index: index})
	return result(r, err, chunk)
}

// OnResponse runs the plugin's response hook and returns the body to
// send on.
func (c *Client) OnResponse(ctx context.Context, call *Call, body []byte) ([]byte, error) {
	r, err := c.rpc.OnResponse(ctx, &middlewarev1.ResponseHook{Call: callToProto(call), Body: body})
	return result(r, err, body)
}

// Health reports whether the plugin answers.
func (c *Client) Health(ctx context.Context) error {
	r, err := c.rpc.Health(ctx, &pluginv1.HealthRequest{})
	if err != nil {
		return rpc.FromStatus(err)
	}
	if !r.Ok {
		return errors.New(r.Message)
	}
	return nil
}
