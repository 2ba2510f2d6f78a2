package main

import (
	"context"
	"encoding/json"
	"io"
	"testing"

	"github.com/llmproxy/llmproxy/plugins/provider-azure/azurefake"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// Test credentials of the fake resource and its Entra tenant.
const (
	testKey      = "test-azure-key-0123456789"
	testTenant   = "11111111-2222-3333-4444-555555555555"
	testClientID = "llmproxy-test-app"
	testSecret   = "test-client-secret-abcdef"
)

func fakeOptions() azurefake.Options {
	return azurefake.Options{APIKey: testKey, TenantID: testTenant, ClientID: testClientID, ClientSecret: testSecret}
}

// startFake starts a fake that stops when the test ends.
func startFake(t testing.TB, opts azurefake.Options) *azurefake.Server {
	t.Helper()
	f := azurefake.New(opts).Start()
	t.Cleanup(f.Close)
	return f
}

// apiKeyConfig configures an instance with api-key auth against f.
func apiKeyConfig(f *azurefake.Server, extra string) *provider.Config {
	return &provider.Config{
		Instance:    "azure_test",
		JSON:        []byte(`{"endpoint":"` + f.URL() + `","deployments":{"gpt-4o":"gpt-4o","gpt-4o-mini":"gpt-4o"}` + extra + `}`),
		Credentials: map[string]string{CredAPIKey: testKey},
	}
}

// entraConfig configures an instance with Entra client-credentials auth
// against f, which is also the authority.
func entraConfig(f *azurefake.Server) *provider.Config {
	return &provider.Config{
		Instance: "azure_entra",
		JSON: []byte(`{"endpoint":"` + f.URL() + `","auth":"entra","tenant_id":"` + testTenant +
			`","client_id":"` + testClientID + `","authority_host":"` + f.URL() + `"}`),
		Credentials: map[string]string{CredClientSecret: testSecret},
	}
}

// configured returns an Azure provider configured with cfg.
func configured(t testing.TB, cfg *provider.Config) *Azure {
	t.Helper()
	a := &Azure{}
	if err := a.Configure(context.Background(), cfg); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return a
}

// chunkRecorder is a provider.ChunkWriter that keeps the chunks.
type chunkRecorder struct{ chunks [][]byte }

func (c *chunkRecorder) WriteChunk(b []byte) error {
	c.chunks = append(c.chunks, append([]byte(nil), b...))
	return nil
}

// collectStream reads a stream through the gRPC client.
func collectStream(ctx context.Context, c *provider.Client, req *provider.Request) ([]json.RawMessage, error) {
	st, err := c.ChatCompletionStream(ctx, req)
	if err != nil {
		return nil, err
	}
	var out []json.RawMessage
	for {
		b, err := st.Recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, append(json.RawMessage(nil), b...))
	}
}

func chatRequest(model, body string) *provider.Request {
	return &provider.Request{Meta: provider.Meta{RequestID: "req-test", Instance: "azure_test", Model: model, RequestedModel: model}, Body: []byte(body)}
}

func asOpenAIError(t testing.TB, err error) *openai.Error {
	t.Helper()
	oe, ok := err.(*openai.Error)
	if !ok {
		t.Fatalf("want *openai.Error, got %T %v", err, err)
	}
	return oe
}
