package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// Version is the azure plugin's version.
const Version = "0.1.0"

// maxResponse caps a JSON response body read from Azure.
const maxResponse = 64 << 20

// maxErrorBody caps an error body read from Azure.
const maxErrorBody = 1 << 20

// Azure is the Azure OpenAI provider: it sends OpenAI-format requests to a
// resource's deployments, authenticated by a resource key or a Microsoft
// Entra ID token, and turns Azure's quirks back into plain OpenAI.
type Azure struct {
	inst atomic.Pointer[instance]
}

var (
	_ provider.Provider      = (*Azure)(nil)
	_ provider.Embedder      = (*Azure)(nil)
	_ provider.ModelLister   = (*Azure)(nil)
	_ provider.Passthrougher = (*Azure)(nil)
	_ provider.HealthChecker = (*Azure)(nil)
)

// instance is one validated configuration; Configure swaps it atomically,
// and calls in flight finish with the one they started with.
type instance struct {
	endpoint    *url.URL
	apiVersion  string
	deployments map[string]string
	timeout     time.Duration
	documents   string
	auth        authorizer
	client      *http.Client
}

// Describe implements provider.Provider.
func (a *Azure) Describe(context.Context) (*provider.Description, error) {
	return &provider.Description{
		Name:         "azure",
		Version:      Version,
		Capabilities: []string{provider.CapDocuments},
		ConfigSchema: configSchema(),
		Credentials:  credentials(),
	}, nil
}

// Configure implements provider.Provider. It validates the whole config
// first and swaps it in only when it is good.
func (a *Azure) Configure(_ context.Context, cfg *provider.Config) error {
	in, err := newInstance(cfg)
	if err != nil {
		return err
	}
	if old := a.inst.Swap(in); old != nil {
		old.client.CloseIdleConnections()
	}
	return nil
}

// instance returns the current configuration, or a 503 before Configure.
func (a *Azure) instance() (*instance, error) {
	in := a.inst.Load()
	if in == nil {
		return nil, openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "not_configured",
			"the azure provider has not been configured")
	}
	return in, nil
}

// deployment returns the deployment that serves model.
func (in *instance) deployment(model string) string {
	if d, ok := in.deployments[model]; ok {
		return d
	}
	return model
}

// url returns the data-plane URL of path (below the endpoint) with the
// api-version query.
func (in *instance) url(path ...string) string {
	u := in.endpoint.JoinPath(path...)
	u.RawQuery = url.Values{"api-version": {in.apiVersion}}.Encode()
	return u.String()
}

// deploymentURL returns the URL of op ("chat/completions", "embeddings")
// on the deployment serving model.
func (in *instance) deploymentURL(model, op string) string {
	return in.url("openai", "deployments", in.deployment(model), op)
}

// send makes an authenticated request and returns the response when its
// status is 2xx; any other status is returned as the *openai.Error it
// stands for. The caller closes the body.
func (in *instance) send(ctx context.Context, method, target string, body []byte, stream bool) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("building azure request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if stream {
		req.Header.Set("Accept", "text/event-stream")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	req.Header.Set("User-Agent", "llmproxy-provider-azure/"+Version)
	if err := in.auth.authorize(ctx, req.Header); err != nil {
		return nil, err
	}
	if m, ok := provider.MetaFromContext(ctx); ok && m.RequestID != "" {
		req.Header.Set("x-ms-client-request-id", m.RequestID)
	}
	resp, err := in.client.Do(req)
	if err != nil {
		return nil, transportError(ctx, "azure request", err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if resp.StatusCode == http.StatusUnauthorized {
			in.auth.invalidate()
		}
		return nil, upstreamError(resp.StatusCode, resp.Header, b)
	}
	return resp, nil
}

// call makes a JSON request bounded by the instance timeout and returns
// the response body.
func (in *instance) call(ctx context.Context, method, target string, body []byte) ([]byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	resp, err := in.send(ctx, method, target, body, false)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, nil, transportError(ctx, "reading azure response", err)
	}
	if len(b) > maxResponse {
		return nil, nil, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "response_too_large",
			fmt.Sprintf("azure response exceeds %d bytes", maxResponse))
	}
	return b, resp.Header, nil
}

// relayedHeaders are the upstream headers worth passing to the client.
var relayedHeaders = []string{
	"apim-request-id",
	"x-ms-region",
	"x-ratelimit-remaining-requests",
	"x-ratelimit-remaining-tokens",
}

func relayHeaders(h http.Header) map[string]string {
	out := map[string]string{}
	for _, k := range relayedHeaders {
		if v := h.Get(k); v != "" {
			out[k] = v
		}
	}
	return out
}

// Health implements provider.HealthChecker: it lists the resource's models,
// which proves the endpoint, the api-version and the credentials.
func (a *Azure) Health(ctx context.Context) error {
	in, err := a.instance()
	if err != nil {
		return err
	}
	if _, _, err := in.call(ctx, http.MethodGet, in.url("openai", "models"), nil); err != nil {
		return fmt.Errorf("azure health check: %w", err)
	}
	return nil
}
