package provider_test

import (
	"context"
	"errors"
	"io"
	"testing"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
)

// headerProvider streams two chunks after relaying one header, then tries
// to send a header too late.
type headerProvider struct {
	lateErr chan error
}

func (headerProvider) Describe(context.Context) (*provider.Description, error) {
	return &provider.Description{Name: "header", Version: "test"}, nil
}
func (headerProvider) Configure(context.Context, *provider.Config) error { return nil }
func (headerProvider) ChatCompletion(context.Context, *provider.Request) (*provider.Response, error) {
	return nil, openai.InvalidRequest("", "streams only")
}
func (p headerProvider) ChatCompletionStream(_ context.Context, _ *provider.Request, w provider.ChunkWriter) error {
	if err := provider.StreamHeader(w, map[string]string{"x-ratelimit-remaining-requests": "41"}); err != nil {
		return err
	}
	for _, c := range []string{`{"n":1}`, `{"n":2}`} {
		if err := w.WriteChunk([]byte(c)); err != nil {
			return err
		}
	}
	p.lateErr <- provider.StreamHeader(w, map[string]string{"late": "1"})
	return nil
}

func TestStreamHeader(t *testing.T) {
	p := headerProvider{lateErr: make(chan error, 1)}
	c := sdktest.ConnectProvider(t, p)
	st, err := c.ChatCompletionStream(context.Background(), &provider.Request{Body: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	var chunks []string
	for {
		b, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, string(b))
		if len(chunks) == 1 && st.Header()["x-ratelimit-remaining-requests"] != "41" {
			t.Errorf("header after the first chunk = %v", st.Header())
		}
	}
	if len(chunks) != 2 || chunks[0] != `{"n":1}` {
		t.Errorf("chunks = %q; header messages must not show up as chunks", chunks)
	}
	if err := <-p.lateErr; err == nil {
		t.Error("a header after the first chunk must be refused")
	}
	if _, late := st.Header()["late"]; late {
		t.Error("late header was delivered")
	}
}

func TestUnreachableDataPathFallsBackToGRPC(t *testing.T) {
	p := headerProvider{lateErr: make(chan error, 1)}
	plug := &provider.Plugin{Impl: p}
	client, _ := goplugin.TestPluginGRPCConn(t, false, map[string]goplugin.Plugin{provider.PluginName: plug})
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(provider.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	c := raw.(*provider.Client)
	if _, err := c.Describe(context.Background()); err != nil {
		t.Fatal(err)
	}
	plug.Close() // the data path's socket is gone; gRPC still serves
	_, err = c.ChatCompletion(context.Background(), &provider.Request{Body: []byte(`{}`)})
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.Status != 400 {
		t.Fatalf("want the plugin's own 400 over gRPC, got %v", err)
	}
	st, err := c.ChatCompletionStream(context.Background(), &provider.Request{Body: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := st.Recv(); err != nil || string(b) != `{"n":1}` {
		t.Fatalf("stream over gRPC: %q %v", b, err)
	}
}
