package sdktest

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/llmproxy/llmproxy/sdk/secrets"
)

// SecretsSuite configures RunSecrets.
type SecretsSuite struct {
	// Store is the plugin under test, usually pointed at an in-repo fake
	// of its backend.
	Store secrets.Store
	// Config is passed to Configure before the data-plane checks.
	Config *secrets.Config
	// Present is a reference the backend holds, and Want its values.
	Present secrets.Reference
	Want    map[string]string
	// Missing is a reference the backend does not hold: it must be
	// unavailable, so that the host tries the next source.
	Missing secrets.Reference
	// Update, when set, stores a new version of Present and returns its
	// values: the suite checks that Resolve sees it with a new version,
	// and that a store that watches reports it.
	Update func(t *testing.T) map[string]string
	// Secrets are values (test credentials, the values of Present) that
	// no error may contain.
	Secrets []string
}

// ConnectSecrets serves s over an in-process gRPC connection and returns
// the host-side client, closed when the test ends.
func ConnectSecrets(t testing.TB, s secrets.Store) *secrets.Client {
	t.Helper()
	client, _ := goplugin.TestPluginGRPCConn(t, false, map[string]goplugin.Plugin{
		secrets.PluginName: &secrets.Plugin{Impl: s},
	})
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(secrets.PluginName)
	if err != nil {
		t.Fatalf("dispense secrets: %v", err)
	}
	return raw.(*secrets.Client)
}

// RunSecrets checks a secrets plugin through the gRPC client the host
// uses: Describe before Configure, Resolve of a present and a missing
// reference and of one without its required attributes, a stable
// version, concurrent reads, a new version (and its watch event, for a
// store that watches), Health, and that no error holds a secret.
func RunSecrets(t *testing.T, s SecretsSuite) {
	c := ConnectSecrets(t, s.Store)
	ctx := context.Background()
	clean := func(t *testing.T, err error) {
		t.Helper()
		if err == nil {
			return
		}
		for _, v := range s.Secrets {
			if v != "" && strings.Contains(err.Error(), v) {
				t.Errorf("an error holds a secret (%d bytes): %v", len(v), strings.ReplaceAll(err.Error(), v, "<secret>"))
			}
		}
	}

	d, err := c.Describe(ctx)
	if err != nil {
		t.Fatalf("Describe before Configure: %v", err)
	}
	if d.Name == "" || d.Version == "" || len(d.References) == 0 {
		t.Errorf("Describe = name %q, version %q, %d reference attributes; want all three", d.Name, d.Version, len(d.References))
	}
	var required []string
	for _, a := range d.References {
		if a.Name == "" {
			t.Error("a reference attribute without a name")
		}
		if a.Required {
			required = append(required, a.Name)
		}
	}
	caps := map[string]bool{}
	for _, c := range d.Capabilities {
		caps[c] = true
	}

	diags, err := c.Configure(ctx, s.Config)
	if err != nil || diags.HasErrors() {
		t.Fatalf("Configure: %v %v", diags, err)
	}

	first := wantValues(t, c, s.Present, s.Want, clean)

	t.Run("stable version", func(t *testing.T) {
		again := wantValues(t, c, s.Present, s.Want, clean)
		if first != nil && again != nil && again.Version != first.Version {
			t.Errorf("version %q then %q without a change", first.Version, again.Version)
		}
	})

	t.Run("missing is unavailable", func(t *testing.T) {
		_, err := c.Resolve(ctx, s.Missing)
		if !errors.Is(err, secrets.ErrUnavailable) {
			t.Errorf("Resolve(%v) = %v; want an error wrapping ErrUnavailable", s.Missing, err)
		}
		clean(t, err)
	})

	t.Run("required attributes", func(t *testing.T) {
		for _, name := range required {
			ref := maps.Clone(s.Present)
			delete(ref, name)
			_, err := c.Resolve(ctx, ref)
			if err == nil || errors.Is(err, secrets.ErrUnavailable) {
				t.Errorf("Resolve without %s = %v; want a failure, not unavailable", name, err)
			}
			clean(t, err)
		}
	})

	t.Run("concurrent reads", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sec, err := c.Resolve(ctx, s.Present)
				if err == nil && !maps.Equal(sec.Values, s.Want) {
					err = errors.New("values differ from Want")
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})

	if caps[secrets.CapHealth] {
		t.Run("health", func(t *testing.T) {
			err := c.Health(ctx)
			if err != nil {
				t.Errorf("Health: %v", err)
			}
			clean(t, err)
		})
	}

	if s.Update == nil {
		return
	}
	t.Run("new version", func(t *testing.T) {
		var events chan string
		cancel := func() {}
		if caps[secrets.CapWatch] {
			var wctx context.Context
			wctx, cancel = context.WithCancel(ctx)
			events = make(chan string, 16)
			go c.Watch(wctx, s.Present, func(v string) { events <- v })
			// The first event is the version the watch starts from.
			select {
			case <-events:
			case <-time.After(10 * time.Second):
				t.Fatal("the watch reported no starting version")
			}
		}
		defer cancel()
		want := s.Update(t)
		if events != nil {
			select {
			case v := <-events:
				if first != nil && v == first.Version {
					t.Errorf("the watch reported the old version %q", v)
				}
			case <-time.After(10 * time.Second):
				t.Error("the watch did not report the new version")
			}
		}
		sec := wantValues(t, c, s.Present, want, clean)
		if sec != nil && first != nil && sec.Version == first.Version {
			t.Errorf("the version stayed %q across an update", sec.Version)
		}
	})
}

// wantValues resolves ref and checks its values; nil when it failed.
func wantValues(t *testing.T, c *secrets.Client, ref secrets.Reference, want map[string]string, clean func(*testing.T, error)) *secrets.Secret {
	t.Helper()
	sec, err := c.Resolve(context.Background(), ref)
	clean(t, err)
	if err != nil {
		t.Errorf("Resolve(%v): %v", ref, err)
		return nil
	}
	if !maps.Equal(sec.Values, want) {
		keys := make([]string, 0, len(sec.Values))
		for k := range sec.Values {
			keys = append(keys, k)
		}
		t.Errorf("Resolve(%v) gave the values %v, not the ones stored", ref, keys)
	}
	if sec.Version == "" {
		t.Errorf("Resolve(%v) gave no version", ref)
	}
	if !sec.Expires.IsZero() && !sec.Expires.After(time.Now()) {
		t.Errorf("Resolve(%v) gave values that expired at %v", ref, sec.Expires)
	}
	return sec
}
