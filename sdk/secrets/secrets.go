// Package secrets is the SDK for secrets plugins: secret stores (Vault,
// cloud secret managers, the Kubernetes API, a company's own vault) that
// resolve the references of credential sources for the llmproxy host.
//
// An operator declares a store once and refers to it from any credential:
//
//	secrets "vault" {
//	  type = "vault"
//	  config { address = env("VAULT_ADDR") auth = "approle" role_id = "..." }
//	  credential "secret_id" { from "file" { path = "/etc/llmproxy/secret-id" } }
//	}
//	provider "openai" {
//	  credential "api_key" {
//	    from "vault" { path = "secret/data/openai", field = "api_key" }
//	    from "env"   { name = "OPENAI_API_KEY" }
//	  }
//	}
//
// The host starts llmproxy-secrets-<type>, calls Describe and Configure
// as for every plugin kind, then Resolve with the attributes of each
// `from` block. A Secret carries its values, a version and, when it does
// not last forever, when it expires: the host resolves it again at about
// two thirds of its lifetime and pushes the new values to the provider
// plugins that use them. Resolve returns ErrUnavailable (wrapped or not)
// when the store does not hold the reference, so that the host tries the
// next source; any other error is reported as a failure of the store and
// ends the chain.
//
// A plugin is a type implementing Store, served with Serve:
//
//	func main() { secrets.Serve(&Vault{}) }
package secrets

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// ErrUnavailable means the store does not hold the reference here (no
// such path, no such key): the host tries the next source of the chain.
// Wrap it to say more: fmt.Errorf("no secret at %s: %w", p, ErrUnavailable).
var ErrUnavailable = errors.New("unavailable")

// Store is what every secrets plugin implements.
//
// Describe returns the plugin's name, version, config schema, the
// credentials it needs (e.g. a Vault token) and the attributes its
// references take; it must work before Configure. Configure receives the
// secrets block's config and credentials; it may be called again with new
// credentials and must then swap them without failing calls in flight.
// Resolve reads one reference. Every method must honour ctx, and no
// method may log a secret value.
type Store interface {
	Describe(ctx context.Context) (*Description, error)
	Configure(ctx context.Context, cfg *Config) error
	Resolve(ctx context.Context, ref Reference) (*Secret, error)
}

// Renewer is implemented by stores whose leases can be extended. Renew
// extends the lease by about increment (the store may grant less) and
// returns the secret with its new expiry; the values stay the same.
type Renewer interface {
	Renew(ctx context.Context, leaseID string, increment time.Duration) (*Secret, error)
}

// Revoker is implemented by stores whose leases can be ended early; the
// host revokes a lease it no longer uses.
type Revoker interface {
	Revoke(ctx context.Context, leaseID string) error
}

// Watcher is implemented by stores that can watch a reference (a
// Kubernetes secret): Watch calls changed with the version it starts
// from, then with the new version each time the value changes, and the
// host resolves the reference again at once instead of waiting for the
// next poll. (The first call covers a change between the host's last read
// and the start of the watch; the host compares values, so it costs one
// read.) Watch returns nil when ctx ends
// and an error when the watch broke; the host then opens a new one after
// a backoff. changed is never called concurrently.
type Watcher interface {
	Watch(ctx context.Context, ref Reference, changed func(version string)) error
}

// HealthChecker is implemented by stores that can tell whether their
// backend is reachable and their own login still valid.
type HealthChecker interface {
	Health(ctx context.Context) error
}

// Capabilities a Description may list; the SDK fills them in from the
// implemented interfaces.
const (
	CapRenew  = "renew"
	CapRevoke = "revoke"
	CapHealth = "health"
	CapWatch  = "watch"
)

// Description is what Describe returns.
type Description struct {
	// Name is the store type, e.g. "vault"; it matches the binary name
	// llmproxy-secrets-<name>.
	Name         string
	Version      string
	Capabilities []string
	ConfigSchema schema.Schema
	Credentials  []schema.Credential
	// References are the attributes a `from` block of this store takes,
	// e.g. path (required) and version. "field" is always accepted: the
	// host uses it to pick one of the values.
	References []schema.Attribute
}

// Config is what Configure receives.
type Config = schema.Config

// Reference is the attributes of one `from` block, e.g.
// {"path": "secret/data/openai"}.
type Reference map[string]string

// Secret is a resolved reference.
type Secret struct {
	// Values are the secret's fields. A reference with a field picks one;
	// one without a field needs exactly one value.
	Values map[string]string
	// Version identifies the value (a KV version, a lease id); it changes
	// when the value does.
	Version string
	// Expires is when the values stop working; zero means they do not
	// expire by themselves.
	Expires time.Time
	// LeaseID names the lease for Renew and Revoke, if any.
	LeaseID   string
	Renewable bool
	// RefreshAfter asks the host to resolve the reference again after
	// this time although it does not expire: a poll, for values that
	// change in place. Zero means no poll.
	RefreshAfter time.Time
}

// PollEvery asks the host to read the secret again d from now, unless
// the secret expires within d: its expiry already makes the host read it
// again then.
func (s *Secret) PollEvery(d time.Duration) {
	if s.Expires.IsZero() || time.Until(s.Expires) > d {
		s.RefreshAfter = time.Now().Add(d)
	}
}

// Probe is a health check by a read, for HealthChecker implementations:
// it resolves ref with s and returns the error of a failed read. A store
// that answers that it does not hold ref (ErrUnavailable) was reached and
// accepted the plugin's login, so that answer is healthy too.
func Probe(ctx context.Context, s Store, ref Reference) error {
	_, err := s.Resolve(ctx, ref)
	if err == nil || errors.Is(err, ErrUnavailable) {
		return nil
	}
	return err
}

// Logger returns the plugin's logger. Its output (hclog JSON on stderr)
// is merged into the host's log; never write to stdout.
func Logger() hclog.Logger { return rpc.Logger() }

// Serve serves s as a secrets plugin and does not return. It performs the
// go-plugin handshake, recovers panics into errors, and exits when the
// host goes away.
func Serve(s Store) {
	rpc.Serve(PluginName, &Plugin{Impl: s})
}
