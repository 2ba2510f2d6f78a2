package provider_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
)

// planProvider hands out the plan its Configure builds from the key; make
// changes the plan it builds.
type planProvider struct {
	mu    sync.Mutex
	key   string
	make  func(key string) (*provider.Plan, error)
	asked int
}

func (*planProvider) Describe(context.Context) (*provider.Description, error) {
	return &provider.Description{Name: "planned", Version: "test"}, nil
}

func (p *planProvider) Configure(_ context.Context, cfg *provider.Config) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.key = cfg.Credentials["api_key"]
	return nil
}

func (*planProvider) ChatCompletion(context.Context, *provider.Request) (*provider.Response, error) {
	return nil, openai.InvalidRequest("", "planned only")
}

func (*planProvider) ChatCompletionStream(context.Context, *provider.Request, provider.ChunkWriter) error {
	return openai.InvalidRequest("", "planned only")
}

func (p *planProvider) Plan(context.Context) (*provider.Plan, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked++
	return p.make(p.key)
}

func (p *planProvider) timesAsked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.asked
}

func goodPlan(key string) (*provider.Plan, error) {
	return &provider.Plan{
		Name:         "planned",
		URLs:         map[string]string{provider.OpChat: "http://127.0.0.1:9/v1/chat/completions"},
		Header:       map[string]string{"authorization": "Bearer " + key, "X-Extra": "1"},
		ModelRewrite: provider.RewriteModel,
		ErrorMapping: provider.MappingOpenAI,
	}, nil
}

func configure(t *testing.T, c *provider.Client, key string) {
	t.Helper()
	diags, err := c.Configure(context.Background(), &provider.Config{Instance: "p", JSON: []byte(`{}`), Credentials: map[string]string{"api_key": key}})
	if err != nil || diags.HasErrors() {
		t.Fatalf("Configure: %v %v", diags, err)
	}
}

func TestPlanFollowsConfigure(t *testing.T) {
	p := &planProvider{make: goodPlan}
	c := sdktest.ConnectProvider(t, p)
	d, err := c.Describe(context.Background())
	if err != nil || !slices.Contains(d.Capabilities, provider.CapForwardPlan) {
		t.Fatalf("capabilities %v (%v) lack %s", d.Capabilities, err, provider.CapForwardPlan)
	}
	if c.Plan() != nil {
		t.Fatal("a plan before Configure")
	}
	for _, key := range []string{"sk-one", "sk-two"} {
		configure(t, c, key)
		pl := c.Plan()
		if pl == nil {
			t.Fatalf("no plan after Configure: %v", c.PlanError())
		}
		want := [][2]string{{"Authorization", "Bearer " + key}, {"X-Extra", "1"}}
		if got := pl.HeaderList(); !slices.Equal(got, want) {
			t.Errorf("headers = %v, want %v", got, want)
		}
		if u, ok := pl.URL(provider.OpChat); !ok || u.Path != "/v1/chat/completions" {
			t.Errorf("chat URL = %v, %v", u, ok)
		}
		if _, ok := pl.URL(provider.OpEmbeddings); ok {
			t.Errorf("the plan covers embeddings, which it does not list")
		}
		if pl.Version != provider.PlanVersion || pl.Timeout != 10*time.Minute {
			t.Errorf("version %d, timeout %v; want the defaults", pl.Version, pl.Timeout)
		}
	}
}

func TestPlanRefused(t *testing.T) {
	tests := []struct {
		name   string
		change func(*provider.Plan)
		want   string
	}{
		{"newer version", func(p *provider.Plan) { p.Version = provider.PlanVersion + 1 }, "version"},
		{"unknown rewrite", func(p *provider.Plan) { p.ModelRewrite = "messages" }, "rewrite"},
		{"unknown error mapping", func(p *provider.Plan) { p.ErrorMapping = "bedrock" }, "error mapping"},
		{"no error mapping", func(p *provider.Plan) { p.ErrorMapping = "" }, "error mapping"},
		{"not http", func(p *provider.Plan) { p.URLs[provider.OpChat] = "unix:///run/x.sock" }, "http"},
		{"user info", func(p *provider.Plan) { p.URLs[provider.OpChat] = "http://u:p@127.0.0.1/v1" }, "http"},
		{"header with a line break", func(p *provider.Plan) { p.Header["X-Bad"] = "a\r\nb" }, "header"},
		{"expired", func(p *provider.Plan) { p.Expires = time.Now().Add(-time.Second) }, "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &planProvider{make: func(key string) (*provider.Plan, error) {
				pl, _ := goodPlan(key)
				tt.change(pl)
				return pl, nil
			}}
			c := sdktest.ConnectProvider(t, p)
			configure(t, c, "sk-x")
			if c.Plan() != nil {
				t.Fatal("the host took a plan it does not know")
			}
			if err := c.PlanError(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("PlanError = %v, want one about %s", err, tt.want)
			}
		})
	}
}

func TestPlanNoneAndFailure(t *testing.T) {
	fail := true
	p := &planProvider{make: func(key string) (*provider.Plan, error) {
		if fail {
			return nil, errors.New("token service down")
		}
		return nil, nil
	}}
	c := sdktest.ConnectProvider(t, p)
	configure(t, c, "sk-x")
	if c.Plan() != nil || c.PlanError() == nil || !strings.Contains(c.PlanError().Error(), "token service down") {
		t.Errorf("plan %v, error %v; want none and the plugin's error", c.Plan(), c.PlanError())
	}
	fail = false
	configure(t, c, "sk-x")
	if c.Plan() != nil || c.PlanError() != nil {
		t.Errorf("plan %v, error %v; want none and no error", c.Plan(), c.PlanError())
	}
}

// TestPlanExpiry checks that a plan with an expiry is renewed in the
// background once two thirds of its life have passed, and not used once
// it has expired without a successor.
func TestPlanExpiry(t *testing.T) {
	var renew bool
	p := &planProvider{}
	p.make = func(key string) (*provider.Plan, error) {
		pl, _ := goodPlan(key)
		if p.asked > 1 && !renew {
			return nil, errors.New("no new token")
		}
		pl.Expires = time.Now().Add(300 * time.Millisecond)
		return pl, nil
	}
	c := sdktest.ConnectProvider(t, p)
	renew = true
	configure(t, c, "sk-x")
	first := c.Plan()
	if first == nil {
		t.Fatalf("no plan: %v", c.PlanError())
	}
	deadline := time.Now().Add(2 * time.Second)
	for c.Plan() == first && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := c.Plan(); got == nil || got == first || p.timesAsked() < 2 {
		t.Fatalf("plan not renewed near its expiry (asked %d times)", p.timesAsked())
	}
	p.mu.Lock()
	renew = false
	p.mu.Unlock()
	second := c.Plan()
	// The next renewal fails: the plan is kept until it expires, then
	// dropped.
	deadline = time.Now().Add(2 * time.Second)
	for c.PlanError() == nil && time.Now().Before(deadline) {
		c.Plan() // a renewal is asked for by the calls that need the plan
		time.Sleep(10 * time.Millisecond)
	}
	if c.PlanError() == nil {
		t.Fatal("no failed renewal")
	}
	if got := c.Plan(); got != second && time.Now().Before(second.Expires) {
		t.Errorf("a failed renewal dropped a plan that is still valid")
	}
	time.Sleep(time.Until(second.Expires) + 10*time.Millisecond)
	if c.Plan() != nil {
		t.Error("an expired plan is still used")
	}
}

func TestNoPlanWithoutCapability(t *testing.T) {
	c := sdktest.ConnectProvider(t, headerProvider{lateErr: make(chan error, 1)})
	configure(t, c, "sk-x")
	if c.Plan() != nil || c.PlanError() != nil {
		t.Errorf("plan %v, error %v from a plugin that announces none", c.Plan(), c.PlanError())
	}
}
