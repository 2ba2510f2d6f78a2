package plugins

import (
	"context"
	"errors"
	"fmt"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/llmproxy/llmproxy/host/internal/credentials"
	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/secrets"
)

// secretsDriver runs secrets plugins: the stores that `secrets` blocks
// declare and credential sources name.
type secretsDriver struct{}

var _ driver = secretsDriver{}

func (secretsDriver) kind() string                        { return "secrets" }
func (secretsDriver) plugins() map[int]goplugin.PluginSet { return secrets.ClientPlugins() }

func (secretsDriver) describe(ctx context.Context, raw any) (described, error) {
	d, err := raw.(*secrets.Client).Describe(ctx)
	if err != nil {
		return described{}, err
	}
	return described{name: d.Name, version: d.Version, schema: d.ConfigSchema, credentials: d.Credentials, full: d}, nil
}

func (secretsDriver) configure(ctx context.Context, raw any, instance string, cfg []byte, creds, settings map[string]string) (schema.Diagnostics, error) {
	return raw.(*secrets.Client).Configure(ctx, &secrets.Config{Instance: instance, JSON: cfg, Credentials: creds, Settings: settings})
}

func (secretsDriver) health(ctx context.Context, raw any) error {
	return raw.(*secrets.Client).Health(ctx)
}

// backendWait is how long a resolution waits for a secrets instance that
// is still starting, e.g. when the host and all its plugins start at once.
const backendWait = 15 * time.Second

// backend adapts a secrets instance to credentials.Backend.
type backend struct{ in *Instance }

var (
	_ credentials.LeaseBackend = backend{}
	_ credentials.WatchBackend = backend{}
)

// Resolve reads ref through the secrets plugin. A store that does not
// hold ref yields an error wrapping credentials.ErrNotFound; a store that
// is not running, or that failed, yields any other error.
func (b backend) Resolve(ctx context.Context, ref map[string]string) (credentials.Secret, error) {
	deadline := time.Now().Add(backendWait)
	for {
		l, err := b.in.client()
		if err == nil {
			s, err := l.raw.(*secrets.Client).Resolve(ctx, ref)
			switch {
			case errors.Is(err, secrets.ErrUnavailable):
				return credentials.Secret{}, fmt.Errorf("%w: %w", err, credentials.ErrNotFound)
			case err != nil:
				return credentials.Secret{}, fmt.Errorf("secrets %s: %w", b.in.Name, err)
			}
			return secretOf(s), nil
		}
		st := b.in.status.Load()
		if st.State == Disabled {
			// A store switched off here has nothing here: the next
			// source is tried.
			return credentials.Secret{}, fmt.Errorf("secrets %s is disabled: %w", b.in.Name, credentials.ErrNotFound)
		}
		if (st.State != Starting && st.State != Restarting) || time.Now().After(deadline) {
			return credentials.Secret{}, fmt.Errorf("secrets %s: %w", b.in.Name, err)
		}
		select {
		case <-ctx.Done():
			return credentials.Secret{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func secretOf(s *secrets.Secret) credentials.Secret {
	return credentials.Secret{Values: s.Values, Version: s.Version, Expires: s.Expires, RefreshAfter: s.RefreshAfter, LeaseID: s.LeaseID, Renewable: s.Renewable}
}

// Renew extends a lease through the secrets plugin. A plugin without
// Renew answers with an error wrapping errors.ErrUnsupported.
func (b backend) Renew(ctx context.Context, leaseID string, increment time.Duration) (credentials.Secret, error) {
	l, err := b.in.client()
	if err != nil {
		return credentials.Secret{}, fmt.Errorf("secrets %s: %w", b.in.Name, err)
	}
	s, err := l.raw.(*secrets.Client).Renew(ctx, leaseID, increment)
	if err != nil {
		return credentials.Secret{}, fmt.Errorf("secrets %s: %w", b.in.Name, err)
	}
	return secretOf(s), nil
}

// Revoke ends a lease through the secrets plugin.
func (b backend) Revoke(ctx context.Context, leaseID string) error {
	l, err := b.in.client()
	if err != nil {
		return fmt.Errorf("secrets %s: %w", b.in.Name, err)
	}
	if err := l.raw.(*secrets.Client).Revoke(ctx, leaseID); err != nil {
		return fmt.Errorf("secrets %s: %w", b.in.Name, err)
	}
	return nil
}

// Watch watches ref through the secrets plugin until ctx ends. A plugin
// without Watch answers with an error wrapping errors.ErrUnsupported.
func (b backend) Watch(ctx context.Context, ref map[string]string, changed func(version string)) error {
	if b.in.status.Load().State == Disabled {
		return fmt.Errorf("secrets %s is disabled: %w", b.in.Name, errors.ErrUnsupported)
	}
	l, err := b.in.client()
	if err != nil {
		return fmt.Errorf("secrets %s: %w", b.in.Name, err)
	}
	if err := l.raw.(*secrets.Client).Watch(ctx, ref, changed); err != nil {
		return fmt.Errorf("secrets %s: %w", b.in.Name, err)
	}
	return nil
}
