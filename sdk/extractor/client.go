package extractor

import (
	"context"
	"errors"

	"google.golang.org/grpc"

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
	extractorv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/extractor/v1"
	pluginv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/plugin/v1"
)

// Client is the host's handle on a running extractor plugin. go-plugin
// dispenses it for PluginName; sdktest drives plugins through it too.
// Errors it returns are *openai.Error values (or context errors): the
// plugin's own (422 document_unreadable), 500 plugin_error for a panic,
// or 502 plugin_unavailable when the process died mid-call.
type Client struct {
	rpc extractorv1.ExtractorClient
}

// NewClient returns a Client over an established gRPC connection to an
// extractor plugin.
func NewClient(cc grpc.ClientConnInterface) *Client {
	return &Client{rpc: extractorv1.NewExtractorClient(cc)}
}

// Describe asks the plugin what it is and which types it extracts.
func (c *Client) Describe(ctx context.Context) (*Description, error) {
	r, err := c.rpc.Describe(ctx, &extractorv1.DescribeRequest{})
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	return &Description{Name: r.Name, Version: r.Version, MIMETypes: r.MimeTypes}, nil
}

// Extract sends one document and returns its text. The deadline of ctx
// travels to the plugin.
func (c *Client) Extract(ctx context.Context, doc *Document) (*Text, error) {
	meta := &pluginv1.Meta{RequestId: doc.Meta.RequestID}
	if d, ok := ctx.Deadline(); ok {
		meta.DeadlineUnixNano = d.UnixNano()
	}
	if !doc.Meta.Deadline.IsZero() && (meta.DeadlineUnixNano == 0 || doc.Meta.Deadline.UnixNano() < meta.DeadlineUnixNano) {
		meta.DeadlineUnixNano = doc.Meta.Deadline.UnixNano()
	}
	r, err := c.rpc.Extract(ctx, &extractorv1.ExtractRequest{
		Meta: meta, Name: doc.Name, MimeType: doc.MIMEType, Data: doc.Data,
		Limits: &extractorv1.Limits{
			MaxTextBytes: doc.Limits.MaxTextBytes, MaxPages: doc.Limits.MaxPages, MaxDecodedBytes: doc.Limits.MaxDecodedBytes,
		},
	})
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	return &Text{Text: r.Text, Pages: r.Pages, Truncated: r.Truncated}, nil
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
