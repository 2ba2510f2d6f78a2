package secrets_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/secrets"
)

// mapStore serves secrets from a map; "broken/" paths fail.
type mapStore struct {
	data map[string]map[string]string
}

func (m *mapStore) Describe(context.Context) (*secrets.Description, error) {
	return &secrets.Description{Name: "map", Version: "1.0.0",
		References: []schema.Attribute{{Name: "path", Type: "string", Required: true}}}, nil
}

func (m *mapStore) Configure(context.Context, *secrets.Config) error { return nil }

func (m *mapStore) Resolve(_ context.Context, ref secrets.Reference) (*secrets.Secret, error) {
	p := ref["path"]
	if strings.HasPrefix(p, "broken/") {
		return nil, errors.New("permission denied")
	}
	v, ok := m.data[p]
	if !ok {
		return nil, fmt.Errorf("no secret at %s: %w", p, secrets.ErrUnavailable)
	}
	return &secrets.Secret{Values: v, Version: "3", Expires: time.Unix(1900000000, 0), LeaseID: "lease/" + p, RefreshAfter: time.Unix(1800000000, 0)}, nil
}

func dial(t *testing.T, s secrets.Store) *secrets.Client {
	t.Helper()
	client, _ := goplugin.TestPluginGRPCConn(t, false, map[string]goplugin.Plugin{secrets.PluginName: &secrets.Plugin{Impl: s}})
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(secrets.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(*secrets.Client)
}

func TestClientRoundTrip(t *testing.T) {
	c := dial(t, &mapStore{data: map[string]map[string]string{"kv/openai": {"api_key": "sk-1"}}})
	ctx := context.Background()

	d, err := c.Describe(ctx)
	if err != nil || d.Name != "map" || len(d.References) != 1 || d.References[0].Name != "path" || !d.References[0].Required {
		t.Fatalf("Describe = %+v, %v", d, err)
	}
	if len(d.Capabilities) != 0 {
		t.Errorf("capabilities %v; want none for a plain store", d.Capabilities)
	}

	tests := []struct {
		path            string
		want            string
		unavailable     bool
		failedSubstring string
	}{
		{path: "kv/openai", want: "sk-1"},
		{path: "kv/missing", unavailable: true},
		{path: "broken/x", failedSubstring: "permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			s, err := c.Resolve(ctx, secrets.Reference{"path": tt.path})
			switch {
			case tt.unavailable:
				if !errors.Is(err, secrets.ErrUnavailable) || !strings.Contains(err.Error(), "no secret at kv/missing") {
					t.Fatalf("err = %v; want unavailable with the store's message", err)
				}
			case tt.failedSubstring != "":
				var oe *openai.Error
				if errors.Is(err, secrets.ErrUnavailable) || !errors.As(err, &oe) || !strings.Contains(err.Error(), tt.failedSubstring) {
					t.Fatalf("err = %v; want a failure, not unavailable", err)
				}
			default:
				if err != nil || s.Values["api_key"] != tt.want || s.Version != "3" || !s.Expires.Equal(time.Unix(1900000000, 0)) || !s.RefreshAfter.Equal(time.Unix(1800000000, 0)) || s.LeaseID != "lease/kv/openai" {
					t.Fatalf("Resolve = %+v, %v", s, err)
				}
			}
		})
	}

	if _, err := c.Renew(ctx, "lease/kv/openai", time.Minute); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Renew on a store without Renewer: %v; want ErrUnsupported", err)
	}
	if err := c.Revoke(ctx, "lease/kv/openai"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Revoke on a store without Revoker: %v; want ErrUnsupported", err)
	}
	if err := c.Health(ctx); err != nil {
		t.Errorf("Health of a store without HealthChecker: %v", err)
	}
}

// renewingStore adds Renew and Revoke to mapStore.
type renewingStore struct {
	mapStore
	revoked []string
}

func (r *renewingStore) Renew(_ context.Context, lease string, inc time.Duration) (*secrets.Secret, error) {
	return &secrets.Secret{Values: map[string]string{"k": "v"}, LeaseID: lease, Renewable: true, Expires: time.Unix(1900000000, 0).Add(inc)}, nil
}

func (r *renewingStore) Revoke(_ context.Context, lease string) error {
	r.revoked = append(r.revoked, lease)
	return nil
}

func TestRenewAndRevoke(t *testing.T) {
	store := &renewingStore{}
	c := dial(t, store)
	ctx := context.Background()
	d, err := c.Describe(ctx)
	if err != nil || strings.Join(d.Capabilities, ",") != "renew,revoke" {
		t.Fatalf("capabilities %v, %v; want renew,revoke", d, err)
	}
	s, err := c.Renew(ctx, "aws/creds/x/1", time.Hour)
	if err != nil || !s.Renewable || !s.Expires.Equal(time.Unix(1900000000, 0).Add(time.Hour)) {
		t.Fatalf("Renew = %+v, %v", s, err)
	}
	if err := c.Revoke(ctx, "aws/creds/x/1"); err != nil || len(store.revoked) != 1 {
		t.Fatalf("Revoke: %v, %v", err, store.revoked)
	}
}

// watchingStore adds Watch to mapStore: it sends the versions it is
// given, then fails with fail (or waits for the end of ctx).
type watchingStore struct {
	mapStore
	versions []string
	fail     error
}

func (w *watchingStore) Watch(ctx context.Context, ref secrets.Reference, changed func(string)) error {
	if ref["path"] == "kv/missing" {
		return fmt.Errorf("no secret at kv/missing: %w", secrets.ErrUnavailable)
	}
	for _, v := range w.versions {
		changed(v)
	}
	if w.fail != nil {
		return w.fail
	}
	<-ctx.Done()
	return nil
}

func TestWatch(t *testing.T) {
	ctx := context.Background()
	if err := dial(t, &mapStore{}).Watch(ctx, secrets.Reference{"path": "kv/openai"}, func(string) {}); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Watch on a store without Watcher: %v; want ErrUnsupported", err)
	}

	store := &watchingStore{versions: []string{"4", "5"}, fail: errors.New("watch expired: 410 Gone")}
	c := dial(t, store)
	if d, err := c.Describe(ctx); err != nil || strings.Join(d.Capabilities, ",") != "watch" {
		t.Fatalf("capabilities %v, %v; want watch", d, err)
	}
	var got []string
	err := c.Watch(ctx, secrets.Reference{"path": "kv/openai"}, func(v string) { got = append(got, v) })
	if strings.Join(got, ",") != "4,5" || err == nil || !strings.Contains(err.Error(), "410 Gone") {
		t.Errorf("events %v, end %v; want 4,5 then the store's error", got, err)
	}
	if err := c.Watch(ctx, secrets.Reference{"path": "kv/missing"}, func(string) {}); !errors.Is(err, secrets.ErrUnavailable) {
		t.Errorf("Watch of a missing reference: %v; want unavailable", err)
	}

	store.fail = nil
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	events := make(chan string, 2)
	go func() { done <- c.Watch(wctx, secrets.Reference{"path": "kv/openai"}, func(v string) { events <- v }) }()
	<-events
	<-events
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watch after cancel: %v; want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after its context ended")
	}
}

func TestSecretPollEvery(t *testing.T) {
	const every = time.Minute
	now := time.Now()
	for _, tc := range []struct {
		name    string
		expires time.Time
		poll    bool
	}{
		{"no expiry", time.Time{}, true},
		{"expires after the poll", now.Add(time.Hour), true},
		{"expires before the poll", now.Add(30 * time.Second), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &secrets.Secret{Expires: tc.expires}
			s.PollEvery(every)
			if !tc.poll {
				if !s.RefreshAfter.IsZero() {
					t.Errorf("RefreshAfter %v, want none: the expiry comes first", s.RefreshAfter)
				}
				return
			}
			if d := time.Until(s.RefreshAfter); d <= every-5*time.Second || d > every {
				t.Errorf("RefreshAfter in %v, want %v", d, every)
			}
		})
	}
}

func TestProbe(t *testing.T) {
	s := &mapStore{data: map[string]map[string]string{"kv/probe": {"v": "1"}}}
	for _, tc := range []struct {
		path    string
		healthy bool
	}{
		{"kv/probe", true},
		{"kv/missing", true},
		{"broken/probe", false},
	} {
		err := secrets.Probe(context.Background(), s, secrets.Reference{"path": tc.path})
		if (err == nil) != tc.healthy {
			t.Errorf("%s: Probe = %v, want healthy %v", tc.path, err, tc.healthy)
		}
		if !tc.healthy && (err == nil || !strings.Contains(err.Error(), "permission denied")) {
			t.Errorf("%s: Probe = %v, want the read's error", tc.path, err)
		}
	}
}
