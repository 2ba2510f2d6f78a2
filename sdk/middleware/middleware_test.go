package middleware_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/middleware"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
)

// upper rewrites "cat" to "dog" in requests, vetoes "forbidden", panics
// on "PANIC" and upper-cases chunks; it has no response hook.
type upper struct{ seen *middleware.Call }

func (upper) Describe(context.Context) (*middleware.Description, error) {
	return &middleware.Description{Name: "upper", Version: "1.0.0"}, nil
}

func (upper) Configure(_ context.Context, cfg *middleware.Config) error {
	var c struct {
		Fail bool `json:"fail"`
	}
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	if c.Fail {
		return errors.New("fail is set")
	}
	return nil
}

func (u *upper) OnRequest(_ context.Context, call *middleware.Call, body []byte) ([]byte, error) {
	u.seen = call
	switch {
	case bytes.Contains(body, []byte("PANIC")):
		panic("boom")
	case bytes.Contains(body, []byte("forbidden")):
		return nil, middleware.Veto("the prompt names a forbidden topic")
	case bytes.Contains(body, []byte("cat")):
		return bytes.ReplaceAll(body, []byte("cat"), []byte("dog")), nil
	}
	return nil, nil
}

func (upper) OnChunk(_ context.Context, _ *middleware.Call, _ int64, chunk []byte) ([]byte, error) {
	return bytes.ToUpper(chunk), nil
}

func TestHooks(t *testing.T) {
	u := &upper{}
	c := sdktest.ConnectMiddleware(t, u)
	ctx := context.Background()
	d, err := c.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "upper" || !slices.Equal(d.Hooks, []string{middleware.HookRequest, middleware.HookChunk}) {
		t.Fatalf("described %+v", d)
	}
	if diags, err := c.Configure(ctx, &middleware.Config{Instance: "u", JSON: []byte(`{"fail":true}`)}); err != nil || !diags.HasErrors() {
		t.Fatalf("Configure(fail) = %v, %v; want diagnostics", diags, err)
	}
	if c.Hooks() != nil {
		t.Errorf("hooks %v before a successful Configure", c.Hooks())
	}
	if diags, err := c.Configure(ctx, &middleware.Config{Instance: "u", JSON: []byte(`{"fail":false}`)}); err != nil || diags.HasErrors() {
		t.Fatalf("Configure = %v, %v", diags, err)
	}
	if !slices.Equal(c.Hooks(), []string{middleware.HookRequest, middleware.HookChunk}) {
		t.Errorf("hooks after Configure = %v", c.Hooks())
	}
	call := &middleware.Call{RequestID: "req-1", KeyName: "team", Stream: true}
	tests := []struct {
		name   string
		body   string
		want   string
		status int
		code   string
	}{
		{name: "rewritten", body: `{"q":"cat"}`, want: `{"q":"dog"}`},
		{name: "unchanged", body: `{"q":"bird"}`, want: `{"q":"bird"}`},
		{name: "vetoed", body: `{"q":"forbidden"}`, status: 400, code: middleware.CodeContentPolicy},
		{name: "panic", body: `{"q":"PANIC"}`, status: 500, code: "plugin_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.OnRequest(ctx, call, []byte(tt.body))
			if tt.status != 0 {
				var oe *openai.Error
				if !errors.As(err, &oe) || oe.Status != tt.status || oe.Code != tt.code {
					t.Fatalf("err = %v, want %d %s", err, tt.status, tt.code)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if u.seen == nil || *u.seen != *call {
		t.Errorf("plugin saw call %+v, want %+v", u.seen, call)
	}
	if got, err := c.OnChunk(ctx, call, 0, []byte(`{"a":"b"}`)); err != nil || string(got) != `{"A":"B"}` {
		t.Errorf("OnChunk = %q, %v", got, err)
	}
	if got, err := c.OnResponse(ctx, call, []byte(`{"a":"b"}`)); err != nil || string(got) != `{"a":"b"}` {
		t.Errorf("OnResponse without a hook = %q, %v; want it unchanged", got, err)
	}
}

// selective implements every hook but enables only the request hook.
type selective struct{ upper }

func (selective) OnResponse(_ context.Context, _ *middleware.Call, b []byte) ([]byte, error) {
	return b, nil
}
func (selective) EnabledHooks() []string { return []string{middleware.HookRequest} }

func TestHookSelector(t *testing.T) {
	if got := middleware.Hooks(&selective{}); !slices.Equal(got, []string{middleware.HookRequest}) {
		t.Errorf("Hooks = %v, want only the enabled request hook", got)
	}
}
