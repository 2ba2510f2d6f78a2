package secrets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
	pluginv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/plugin/v1"
	secretsv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/secrets/v1"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// Client is the host's handle on a running secrets plugin. Errors that
// mean "the store does not hold this" wrap ErrUnavailable; others are
// *openai.Error values (or context errors).
type Client struct {
	rpc secretsv1.SecretsClient
}

// NewClient returns a Client over an established gRPC connection to a
// secrets plugin.
func NewClient(cc grpc.ClientConnInterface) *Client {
	return &Client{rpc: secretsv1.NewSecretsClient(cc)}
}

// Describe asks the plugin what it is.
func (c *Client) Describe(ctx context.Context) (*Description, error) {
	r, err := c.rpc.Describe(ctx, &secretsv1.DescribeRequest{})
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	refs := rpc.SchemaFromProto(&pluginv1.Schema{Attributes: r.ReferenceAttributes})
	return &Description{
		Name:         r.Name,
		Version:      r.Version,
		Capabilities: r.Capabilities,
		ConfigSchema: rpc.SchemaFromProto(r.ConfigSchema),
		Credentials:  rpc.CredentialsFromProto(r.Credentials),
		References:   refs.Attributes,
	}, nil
}

// Configure sends the store's config; the diagnostics say what is wrong.
// The error is for transport failures only.
func (c *Client) Configure(ctx context.Context, cfg *Config) (schema.Diagnostics, error) {
	r, err := c.rpc.Configure(ctx, &pluginv1.ConfigureRequest{
		Instance:    cfg.Instance,
		ConfigJson:  cfg.JSON,
		Credentials: cfg.Credentials,
		Settings:    cfg.Settings,
	})
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	return rpc.DiagnosticsFromProto(r.Diagnostics), nil
}

// Resolve reads one reference.
func (c *Client) Resolve(ctx context.Context, ref Reference) (*Secret, error) {
	r, err := c.rpc.Resolve(ctx, &secretsv1.ResolveRequest{Reference: ref})
	return secretFromProto(r, err)
}

// Renew extends a lease. A store that cannot renew answers with an error
// wrapping errors.ErrUnsupported.
func (c *Client) Renew(ctx context.Context, leaseID string, increment time.Duration) (*Secret, error) {
	r, err := c.rpc.Renew(ctx, &secretsv1.RenewRequest{LeaseId: leaseID, IncrementSeconds: int64(increment / time.Second)})
	return secretFromProto(r, err)
}

// Revoke ends a lease early.
func (c *Client) Revoke(ctx context.Context, leaseID string) error {
	_, err := c.rpc.Revoke(ctx, &secretsv1.RevokeRequest{LeaseId: leaseID})
	return fromStatus(err)
}

// Watch watches ref and calls changed with each new version until ctx
// ends (nil) or the watch breaks (its error). A store that cannot watch
// answers with an error wrapping errors.ErrUnsupported.
func (c *Client) Watch(ctx context.Context, ref Reference, changed func(version string)) error {
	stream, err := c.rpc.Watch(ctx, &secretsv1.WatchRequest{Reference: ref})
	if err != nil {
		return fromStatus(err)
	}
	for {
		ev, err := stream.Recv()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, io.EOF):
			return errors.New("the watch stream ended")
		case err != nil:
			return fromStatus(err)
		}
		changed(ev.Version)
	}
}

// Health reports the plugin's own view of its backend.
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

func secretFromProto(r *secretsv1.ResolveResponse, err error) (*Secret, error) {
	if err != nil {
		return nil, fromStatus(err)
	}
	s := &Secret{Values: r.Values, Version: r.Version, LeaseID: r.LeaseId, Renewable: r.Renewable}
	if r.ExpiresUnixNano != 0 {
		s.Expires = time.Unix(0, r.ExpiresUnixNano)
	}
	if r.RefreshAfterUnixNano != 0 {
		s.RefreshAfter = time.Unix(0, r.RefreshAfterUnixNano)
	}
	return s, nil
}

func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.NotFound:
			return fmt.Errorf("%s: %w", st.Message(), ErrUnavailable)
		case codes.Unimplemented:
			return fmt.Errorf("%s: %w", st.Message(), errors.ErrUnsupported)
		}
	}
	return rpc.FromStatus(err)
}
