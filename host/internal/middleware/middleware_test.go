package middleware

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/plugins"
	"github.com/llmproxy/llmproxy/sdk/openai"
)

// none finds no instance.
type none struct{}

func (none) Get(string) *plugins.Instance { return nil }

func parse(t *testing.T, src string) *config.File {
	t.Helper()
	f, diags := config.Parse([]byte(src), "test.hcl", t.TempDir())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return f
}

const cfg = `
api_key "team" {
  key        = "sk-1"
  middleware = ["log", "pii"]
}
api_key "other" {
  key = "sk-2"
}
provider "echo" {
  type = "echo"
}
middleware "pii" {
  type         = "guardrail"
  hook_timeout = "250ms"
}
middleware "log" {
  type = "logger"
}
middleware "extra" {
  type = "guardrail"
}
route "guarded" {
  middleware = ["extra"]
  target "echo" {}
}
route "plain" {
  target "echo" {}
}
`

func TestChainOrder(t *testing.T) {
	r, err := New(parse(t, cfg), none{}, hclog.NewNullLogger())
	if err != nil || r == nil {
		t.Fatalf("New = %v, %v", r, err)
	}
	tests := []struct {
		key, route string
		want       []string
	}{
		{"team", "guarded", []string{"log", "pii", "extra"}},
		{"team", "plain", []string{"log", "pii"}},
		{"other", "guarded", []string{"extra"}},
		{"other", "plain", nil},
		{"", "plain", nil},
	}
	for _, tt := range tests {
		c := r.For(tt.key, tt.route, "req", false)
		var got []string
		if c != nil {
			got = c.names
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("For(%s, %s) = %v, want %v", tt.key, tt.route, got, tt.want)
		}
	}
	if r.budget["pii"] != 250*time.Millisecond || r.budget["log"] != DefaultHookTimeout {
		t.Errorf("budgets %v", r.budget)
	}
}

func TestNoMiddleware(t *testing.T) {
	r, err := New(parse(t, "provider \"echo\" {\n  type = \"echo\"\n}\nmiddleware \"unused\" {\n  type = \"logger\"\n}\n"), none{}, hclog.NewNullLogger())
	if err != nil || r != nil {
		t.Fatalf("New = %v, %v; want nil when no key or route names a middleware", r, err)
	}
	// A nil runner and a nil chain pass everything through.
	c := r.For("k", "r", "req", true)
	body := []byte(`{"model":"m"}`)
	for _, f := range []func(context.Context, []byte) ([]byte, error){c.Request, c.Chunk, c.Response} {
		if got, err := f(context.Background(), body); err != nil || string(got) != string(body) {
			t.Errorf("nil chain: %q, %v", got, err)
		}
	}
}

func TestMissingInstanceFailsClosed(t *testing.T) {
	r, _ := New(parse(t, cfg), none{}, hclog.NewNullLogger())
	_, err := r.For("other", "guarded", "req", false).Request(context.Background(), []byte(`{}`))
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.Status != 500 || oe.Code != "middleware_unavailable" {
		t.Fatalf("err = %v; want 500 middleware_unavailable, never the request let through", err)
	}
}
