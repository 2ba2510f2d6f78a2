// Package sdktest holds the conformance suites a plugin runs from its own
// tests. The suites drive the plugin through the real gRPC adapters, so
// they check what the host will see, not just the Go methods.
//
//	func TestConformance(t *testing.T) {
//		sdktest.RunProvider(t, sdktest.ProviderSuite{
//			Provider: &Echo{},
//			Config:   &provider.Config{Instance: "echo", JSON: []byte(`{}`)},
//			Model:    "echo",
//		})
//	}
package sdktest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// ProviderSuite configures RunProvider.
type ProviderSuite struct {
	// Provider is the plugin under test, usually pointed at a fake upstream.
	Provider provider.Provider
	// Client, when set, is a connection to a plugin running as its own
	// process, such as one written in another language and started with
	// go-plugin as the host starts it; the suite then drives it instead of
	// Provider, and the optional checks follow its Describe capabilities.
	Client *provider.Client
	// Config is passed to Configure before the data-plane checks.
	Config *provider.Config
	// Model is a chat model the configured upstream serves.
	Model string
	// Deterministic says the upstream answers the same request the same
	// way, so that a stream must concatenate to the non-streamed answer.
	Deterministic bool
	// EmbeddingModel, when set and the provider implements Embedder, is
	// used to check /v1/embeddings.
	EmbeddingModel string
}

// ConnectProvider serves p over an in-process gRPC connection and returns
// the host-side client, closed when the test ends.
func ConnectProvider(t testing.TB, p provider.Provider) *provider.Client {
	t.Helper()
	plug := &provider.Plugin{Impl: p}
	client, _ := goplugin.TestPluginGRPCConn(t, false, map[string]goplugin.Plugin{provider.PluginName: plug})
	raw, err := client.Dispense(provider.PluginName)
	if err != nil {
		t.Fatalf("dispense provider: %v", err)
	}
	c := raw.(*provider.Client)
	t.Cleanup(func() {
		c.Close()
		client.Close()
		plug.Close()
	})
	// Describe announces the data path; the suite's unary calls use it
	// as the host's do.
	if _, err := c.Describe(context.Background()); err != nil {
		t.Fatalf("Describe: %v", err)
	}
	return c
}

// RunProvider runs the provider conformance suite.
func RunProvider(t *testing.T, s ProviderSuite) {
	c := s.Client
	if c == nil {
		c = ConnectProvider(t, s.Provider)
	}
	ctx := context.Background()

	var desc *provider.Description
	t.Run("Describe", func(t *testing.T) {
		d, err := c.Describe(ctx)
		if err != nil {
			t.Fatalf("Describe: %v", err)
		}
		desc = d
		if d.Name == "" || d.Version == "" {
			t.Errorf("Describe must name the provider and its version, got %q %q", d.Name, d.Version)
		}
		checkSchema(t, "config", d.ConfigSchema)
		if !contains(d.Capabilities, provider.CapChat) || !contains(d.Capabilities, provider.CapChatStream) {
			t.Errorf("capabilities %v lack chat/chat_stream", d.Capabilities)
		}
	})
	if desc == nil {
		return
	}

	t.Run("Configure", func(t *testing.T) {
		diags, err := c.Configure(ctx, s.Config)
		if err != nil {
			t.Fatalf("Configure: %v", err)
		}
		if diags.HasErrors() {
			t.Fatalf("Configure rejected the suite's config: %v", diags)
		}
		diags, err = c.Configure(ctx, &provider.Config{Instance: s.Config.Instance, JSON: []byte(`{"this is":`)})
		if err != nil {
			t.Fatalf("Configure with broken JSON: %v", err)
		}
		if !diags.HasErrors() {
			t.Errorf("Configure accepted a broken config JSON")
		}
		// Leave the provider configured for the rest of the suite.
		if diags, err := c.Configure(ctx, s.Config); err != nil || diags.HasErrors() {
			t.Fatalf("re-Configure: %v %v", err, diags)
		}
	})

	body := func(extra string) []byte {
		return []byte(`{"model":` + quote(s.Model) + `,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Say hello to the conformance suite."}]` + extra + `}`)
	}
	req := func(b []byte) *provider.Request {
		return &provider.Request{Meta: provider.Meta{RequestID: "req-conformance", Instance: s.Config.Instance, Model: s.Model, RequestedModel: s.Model}, Body: b}
	}

	var unary *openai.ChatCompletion
	t.Run("ChatCompletion", func(t *testing.T) {
		resp, err := c.ChatCompletion(ctx, req(body("")))
		if err != nil {
			t.Fatalf("ChatCompletion: %v", err)
		}
		var cc openai.ChatCompletion
		if err := json.Unmarshal(resp.Body, &cc); err != nil {
			t.Fatalf("response is not a chat.completion: %v\n%s", err, resp.Body)
		}
		checkCompletion(t, &cc)
		unary = &cc
	})

	t.Run("ChatCompletionStream", func(t *testing.T) {
		for _, usage := range []bool{false, true} {
			extra := `,"stream":true`
			if usage {
				extra += `,"stream_options":{"include_usage":true}`
			}
			acc, err := collect(ctx, c, req(body(extra)))
			if err != nil {
				t.Fatalf("stream (include_usage=%v): %v", usage, err)
			}
			cc := acc.Completion()
			if len(cc.Choices) == 0 || cc.Choices[0].FinishReason == "" {
				t.Errorf("stream (include_usage=%v) ended without a finish_reason", usage)
			}
			if cc.Choices[0].Message.Role != openai.RoleAssistant {
				t.Errorf("first delta role = %q, want assistant", cc.Choices[0].Message.Role)
			}
			if usage && (acc.UsageChunks != 1 || cc.Usage == nil || cc.Usage.TotalTokens == 0) {
				t.Errorf("include_usage: want exactly one usage chunk with tokens, got %d chunks, usage %+v", acc.UsageChunks, cc.Usage)
			}
			if !usage && acc.UsageChunks != 0 {
				t.Errorf("usage chunk sent although include_usage was not set")
			}
			if s.Deterministic && unary != nil && str(cc.Choices[0].Message.Content) != str(unary.Choices[0].Message.Content) {
				t.Errorf("stream content %q differs from non-stream content %q",
					str(cc.Choices[0].Message.Content), str(unary.Choices[0].Message.Content))
			}
		}
	})

	t.Run("InvalidRequest", func(t *testing.T) {
		_, err := c.ChatCompletion(ctx, req([]byte(`{"model":`+quote(s.Model)+`,"messages":[]}`)))
		wantStatus(t, err, http.StatusBadRequest)
		_, err = c.ChatCompletion(ctx, req([]byte(`{"model":`)))
		wantStatus(t, err, http.StatusBadRequest)
	})

	t.Run("Cancel", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		st, err := c.ChatCompletionStream(cctx, req(body(`,"stream":true`)))
		if err != nil {
			cancel()
			t.Fatalf("stream: %v", err)
		}
		cancel()
		done := make(chan error, 1)
		go func() {
			for {
				if _, err := st.Recv(); err != nil {
					done <- err
					return
				}
			}
		}()
		select {
		case err := <-done:
			if err != io.EOF && !errors.Is(err, context.Canceled) {
				var oe *openai.Error
				if !errors.As(err, &oe) {
					t.Errorf("cancelled stream ended with %v", err)
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatal("cancelled stream did not end")
		}
	})

	if s.offers(desc, provider.CapEmbeddings) && s.EmbeddingModel != "" {
		t.Run("Embeddings", func(t *testing.T) {
			r := req([]byte(`{"model":` + quote(s.EmbeddingModel) + `,"input":["one","two"]}`))
			r.Meta.Model = s.EmbeddingModel
			resp, err := c.Embeddings(ctx, r)
			if err != nil {
				t.Fatalf("Embeddings: %v", err)
			}
			var er openai.EmbeddingsResponse
			if err := json.Unmarshal(resp.Body, &er); err != nil {
				t.Fatalf("embeddings response: %v\n%s", err, resp.Body)
			}
			if er.Object != openai.ObjectList || len(er.Data) != 2 || er.Data[1].Index != 1 {
				t.Errorf("embeddings response: want a list of 2 indexed vectors, got %s", resp.Body)
			}
		})
	}

	if s.offers(desc, provider.CapModels) {
		t.Run("ListModels", func(t *testing.T) {
			models, err := c.ListModels(ctx, provider.Meta{Instance: s.Config.Instance})
			if err != nil {
				t.Fatalf("ListModels: %v", err)
			}
			for _, m := range models {
				if m.ID == "" {
					t.Errorf("model without id in %v", models)
				}
			}
		})
	}

	t.Run("Health", func(t *testing.T) {
		if err := c.Health(ctx); err != nil {
			t.Errorf("Health after a good Configure: %v", err)
		}
	})
}

// offers reports whether the plugin under test implements an optional
// capability: by its Go interfaces in process, by its Describe answer when
// it runs as its own process.
func (s *ProviderSuite) offers(desc *provider.Description, capability string) bool {
	if s.Client != nil {
		return contains(desc.Capabilities, capability)
	}
	switch capability {
	case provider.CapEmbeddings:
		_, ok := s.Provider.(provider.Embedder)
		return ok
	case provider.CapModels:
		_, ok := s.Provider.(provider.ModelLister)
		return ok
	}
	return false
}

func collect(ctx context.Context, c *provider.Client, r *provider.Request) (*openai.Accumulator, error) {
	st, err := c.ChatCompletionStream(ctx, r)
	if err != nil {
		return nil, err
	}
	acc := &openai.Accumulator{}
	for {
		b, err := st.Recv()
		if err == io.EOF {
			return acc, nil
		}
		if err != nil {
			return nil, err
		}
		if err := acc.Add(b); err != nil {
			return nil, err
		}
	}
}

func checkCompletion(t *testing.T, cc *openai.ChatCompletion) {
	t.Helper()
	if cc.Object != openai.ObjectChatCompletion || cc.ID == "" || cc.Created == 0 {
		t.Errorf("object/id/created = %q/%q/%d", cc.Object, cc.ID, cc.Created)
	}
	if len(cc.Choices) == 0 {
		t.Fatalf("no choices")
	}
	ch := cc.Choices[0]
	if ch.Message.Role != openai.RoleAssistant || ch.FinishReason == "" {
		t.Errorf("choice 0: role %q finish_reason %q", ch.Message.Role, ch.FinishReason)
	}
	if cc.Usage == nil || cc.Usage.TotalTokens != cc.Usage.PromptTokens+cc.Usage.CompletionTokens {
		t.Errorf("usage missing or inconsistent: %+v", cc.Usage)
	}
}

func checkSchema(t *testing.T, where string, s schema.Schema) {
	t.Helper()
	seen := map[string]bool{}
	for _, a := range s.Attributes {
		if a.Name == "" || seen[a.Name] {
			t.Errorf("%s: attribute name %q empty or repeated", where, a.Name)
		}
		seen[a.Name] = true
		expr, diags := hclsyntax.ParseExpression([]byte(a.Type), "type", hcl.InitialPos)
		if diags.HasErrors() {
			t.Errorf("%s.%s: type %q does not parse: %v", where, a.Name, a.Type, diags)
			continue
		}
		if _, diags := typeexpr.TypeConstraint(expr); diags.HasErrors() {
			t.Errorf("%s.%s: type %q is not an HCL type: %v", where, a.Name, a.Type, diags)
		}
	}
	for _, b := range s.Blocks {
		if b.Name == "" || seen[b.Name] {
			t.Errorf("%s: block name %q empty or repeated", where, b.Name)
		}
		seen[b.Name] = true
		switch b.Nesting {
		case schema.NestingSingle, schema.NestingList, schema.NestingMap:
		default:
			t.Errorf("%s.%s: nesting %q", where, b.Name, b.Nesting)
		}
		checkSchema(t, where+"."+b.Name, b.Schema)
	}
}

func wantStatus(t *testing.T, err error, status int) {
	t.Helper()
	var oe *openai.Error
	if !errors.As(err, &oe) {
		t.Fatalf("want an *openai.Error with status %d, got %v", status, err)
	}
	if oe.Status != status {
		t.Errorf("status = %d, want %d (%v)", oe.Status, status, oe)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return strings.TrimSpace(*p)
}
