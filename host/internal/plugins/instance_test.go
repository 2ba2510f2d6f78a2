package plugins

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// healthDriver is a driver whose health answers come from a function; the
// other methods are never called by the code under test.
type healthDriver struct {
	answer func(ctx context.Context) error
}

var _ driver = healthDriver{}

func (healthDriver) kind() string                        { return "provider" }
func (healthDriver) plugins() map[int]goplugin.PluginSet { return nil }
func (healthDriver) describe(context.Context, any) (described, error) {
	return described{}, errors.New("not used")
}
func (healthDriver) configure(context.Context, any, string, []byte, map[string]string, map[string]string) (schema.Diagnostics, error) {
	return nil, errors.New("not used")
}
func (d healthDriver) health(ctx context.Context, _ any) error { return d.answer(ctx) }

func testInstance(h func(context.Context) error) *Instance {
	in := newInstance(config.Instance{Name: "x", Type: "echo"}, healthDriver{answer: h}, &Options{
		Logger: hclog.NewNullLogger(), HealthTimeout: 50 * time.Millisecond, HealthFailures: 3,
	})
	in.setStatus(Ready, "")
	return in
}

func TestHealthChecks(t *testing.T) {
	var answer func(context.Context) error
	in := testInstance(func(ctx context.Context) error { return answer(ctx) })
	l := &live{}
	missed := 0
	steps := []struct {
		name    string
		answer  func(context.Context) error
		state   State
		reason  string // fragment
		replace bool
	}{
		{"healthy", func(context.Context) error { return nil }, Ready, "", false},
		{"checker says no", func(context.Context) error { return errors.New("upstream 503") }, Degraded, "health check failed: upstream 503", false},
		{"healthy again", func(context.Context) error { return nil }, Ready, "", false},
		{"no answer", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, Degraded, "missed 1 of 3", false},
		{"plugin gone", func(context.Context) error {
			return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "plugin_unavailable", "connection refused")
		}, Degraded, "missed 2 of 3", false},
		{"third miss", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, Degraded, "", true},
	}
	for _, s := range steps {
		answer = s.answer
		reason := in.checkHealth(l, &missed)
		if (reason != "") != s.replace {
			t.Fatalf("%s: replace reason %q, want replace=%v", s.name, reason, s.replace)
		}
		if s.replace {
			if !strings.Contains(reason, "missed 3 health checks") {
				t.Errorf("%s: reason %q", s.name, reason)
			}
			continue
		}
		st := in.Status()
		if st.State != s.state || !strings.Contains(st.Reason, s.reason) || in.Degraded() != (s.state == Degraded) {
			t.Errorf("%s: status %+v (degraded %v), want %s with %q", s.name, st, in.Degraded(), s.state, s.reason)
		}
	}
}

func TestUpstreamCredentials(t *testing.T) {
	in := testInstance(func(context.Context) error { return nil })
	in.Served()
	if in.Degraded() {
		t.Fatal("degraded before anything happened")
	}
	in.UpstreamRejectedCredentials()
	st := in.Status()
	if st.State != Degraded || st.Reason != "upstream rejected credentials" || !st.Serving() {
		t.Errorf("after a 401: %+v", st)
	}
	// A health check that passes does not clear what the upstream said.
	missed := 0
	in.checkHealth(&live{}, &missed)
	if !in.Degraded() {
		t.Error("a passing health check cleared the credentials degradation")
	}
	in.Unresponsive("plugin did not take a call within 1s")
	if st := in.Status(); !strings.Contains(st.Reason, "upstream rejected credentials; plugin did not take a call") &&
		!strings.Contains(st.Reason, "plugin did not take a call within 1s; upstream rejected credentials") {
		t.Errorf("both reasons: %q", st.Reason)
	}
	in.checkHealth(&live{}, &missed)
	in.Served()
	if st := in.Status(); st.State != Ready || st.Reason != "" {
		t.Errorf("after a health check and a success: %+v", st)
	}
	// Degradation only decorates a ready instance.
	in.UpstreamRejectedCredentials()
	in.setStatus(Restarting, "plugin process exited")
	if st := in.Status(); st.State != Restarting || st.Serving() {
		t.Errorf("restarting instance reported as %+v", st)
	}
}
