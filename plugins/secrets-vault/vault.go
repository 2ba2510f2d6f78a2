// Package main is the llmproxy-secrets-vault plugin: it resolves
// credential references against HashiCorp Vault (or OpenBao) through the
// official Go client, github.com/hashicorp/vault/api.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/secrets"
)

// Credential names the plugin asks the host for.
const (
	CredentialToken    = "token"
	CredentialSecretID = "secret_id"
)

// Auth methods.
const (
	AuthToken      = "token"
	AuthAppRole    = "approle"
	AuthKubernetes = "kubernetes"
)

// DefaultServiceAccountTokenPath is where Kubernetes mounts the pod's
// service-account token.
const DefaultServiceAccountTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// DefaultTimeout bounds one call to Vault.
const DefaultTimeout = 10 * time.Second

// Vault is the secrets store. Its session (client, login, token
// lifetime) is swapped atomically on Configure.
type Vault struct {
	cur atomic.Pointer[session]
	now func() time.Time
}

var (
	_ secrets.Store         = (*Vault)(nil)
	_ secrets.Renewer       = (*Vault)(nil)
	_ secrets.Revoker       = (*Vault)(nil)
	_ secrets.HealthChecker = (*Vault)(nil)
)

// New returns an unconfigured Vault store.
func New() *Vault { return &Vault{now: time.Now} }

type config struct {
	Address   string `json:"address"`
	Auth      string `json:"auth"`
	Role      string `json:"role"`
	RoleID    string `json:"role_id"`
	Mount     string `json:"mount"`
	Namespace string `json:"namespace"`
	TokenPath string `json:"service_account_token_path"`
	Timeout   string `json:"timeout"`
	Poll      string `json:"poll_interval"`
}

// DefaultPollInterval is how often the host is asked to read a KV secret
// again, to see a new version.
const DefaultPollInterval = time.Minute

// Describe implements secrets.Store.
func (v *Vault) Describe(context.Context) (*secrets.Description, error) {
	return &secrets.Description{
		Name:    "vault",
		Version: "0.1.0",
		ConfigSchema: schema.Schema{Attributes: []schema.Attribute{
			{Name: "address", Type: "string", Required: true, Description: "Vault's address, e.g. https://vault.internal:8200."},
			{Name: "auth", Type: "string", Description: `How the plugin logs in: "token" (default; credential token), "approle" (role_id here, credential secret_id) or "kubernetes" (role, the pod's service-account token).`},
			{Name: "role", Type: "string", Description: "Vault role for Kubernetes auth."},
			{Name: "role_id", Type: "string", Description: "AppRole role id."},
			{Name: "mount", Type: "string", Description: "Mount path of the auth method (default: approle or kubernetes)."},
			{Name: "namespace", Type: "string", Description: "Vault Enterprise / HCP namespace."},
			{Name: "service_account_token_path", Type: "string", Description: "Service-account token file for Kubernetes auth, read at every login (default " + DefaultServiceAccountTokenPath + ")."},
			{Name: "timeout", Type: "string", Description: `Limit on one call to Vault, a Go duration (default "10s").`},
			{Name: "poll_interval", Type: "string", Description: `How often a KV v2 secret is read again to see a new version (default "1m"); leased secrets are re-read before their lease ends instead.`},
		}},
		Credentials: []schema.Credential{
			{Name: CredentialToken, Description: "Vault token, for auth = \"token\"."},
			{Name: CredentialSecretID, Description: "AppRole secret id, for auth = \"approle\"."},
		},
		References: []schema.Attribute{
			{Name: "path", Type: "string", Required: true, Description: "Path to read, e.g. secret/data/openai (KV v2) or aws/creds/bedrock (AWS engine)."},
			{Name: "version", Type: "string", Description: "KV v2 version to read (default: the latest)."},
		},
	}, nil
}

// Configure implements secrets.Store. It checks the settings and builds a
// new client; the login happens at the first call, so that a Vault that
// is down at start delays the credentials rather than failing the config.
func (v *Vault) Configure(_ context.Context, cfg *secrets.Config) error {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	var diags schema.Diagnostics
	if c.Auth == "" {
		c.Auth = AuthToken
	}
	timeout := diags.Duration("timeout", c.Timeout, DefaultTimeout)
	poll := diags.Duration("poll_interval", c.Poll, DefaultPollInterval)
	switch c.Auth {
	case AuthToken:
		if cfg.Credentials[CredentialToken] == "" {
			diags = append(diags, schema.Diagnostic{Summary: `auth = "token" needs the credential token`, Path: []string{"auth"}})
		}
	case AuthAppRole:
		if c.RoleID == "" {
			diags = append(diags, schema.Diagnostic{Summary: `auth = "approle" needs role_id`, Path: []string{"role_id"}})
		}
		if cfg.Credentials[CredentialSecretID] == "" {
			diags = append(diags, schema.Diagnostic{Summary: `auth = "approle" needs the credential secret_id`, Path: []string{"auth"}})
		}
	case AuthKubernetes:
		if c.Role == "" {
			diags = append(diags, schema.Diagnostic{Summary: `auth = "kubernetes" needs role`, Path: []string{"role"}})
		}
		if c.TokenPath == "" {
			c.TokenPath = DefaultServiceAccountTokenPath
		}
	default:
		diags = append(diags, schema.Diagnostic{Summary: `auth must be "token", "approle" or "kubernetes"`, Detail: fmt.Sprintf("got %q", c.Auth), Path: []string{"auth"}})
	}
	if c.Mount == "" {
		c.Mount = c.Auth
	}
	vc := vault.DefaultConfig()
	vc.Address = c.Address
	vc.Timeout = timeout
	// The host retries with its own backoff; the client's retries would
	// only stretch each failure by seconds.
	vc.MaxRetries = 0
	if vc.Error != nil {
		diags = append(diags, schema.Diagnostic{Summary: "invalid Vault client settings", Detail: vc.Error.Error()})
	}
	client, err := vault.NewClient(vc)
	if err != nil {
		diags = append(diags, schema.Diagnostic{Summary: "address is not usable", Detail: err.Error(), Path: []string{"address"}})
	}
	if diags.HasErrors() {
		return diags
	}
	client.ClearToken()
	if c.Namespace != "" {
		client.SetNamespace(c.Namespace)
	}
	v.cur.Store(&session{cfg: c, poll: poll, client: client, token: cfg.Credentials[CredentialToken], secretID: cfg.Credentials[CredentialSecretID], now: v.now})
	return nil
}

// session is one configuration's client and login state.
type session struct {
	cfg      config
	poll     time.Duration
	client   *vault.Client
	token    string // the configured token (auth = token)
	secretID string
	now      func() time.Time

	mu        sync.Mutex
	loggedIn  bool
	renewable bool
	// refreshAt is when the token is renewed or a new login made, at two
	// thirds of its lifetime; zero for tokens that do not expire.
	refreshAt time.Time
}

func (v *Vault) session() (*session, error) {
	s := v.cur.Load()
	if s == nil {
		return nil, errors.New("vault: not configured")
	}
	return s, nil
}

// ensureToken makes sure the client holds a live token: it logs in the
// first time, and renews the token (or logs in again when it cannot be
// renewed) at two thirds of its lifetime.
func (s *session) ensureToken(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loggedIn && (s.refreshAt.IsZero() || s.now().Before(s.refreshAt)) {
		return nil
	}
	if s.loggedIn && s.renewable {
		if sec, err := s.client.Auth().Token().RenewSelfWithContext(ctx, 0); err == nil && sec != nil && sec.Auth != nil {
			s.schedule(sec.Auth.LeaseDuration, sec.Auth.Renewable)
			return nil
		}
	}
	return s.login(ctx)
}

// login obtains a token with the configured method; the caller holds mu.
func (s *session) login(ctx context.Context) error {
	if s.cfg.Auth == AuthToken {
		s.client.SetToken(s.token)
		sec, err := s.client.Auth().Token().LookupSelfWithContext(ctx)
		if err != nil {
			return fmt.Errorf("vault: token lookup: %w", clean(err))
		}
		ttl, _ := sec.TokenTTL()
		renewable, _ := sec.TokenIsRenewable()
		s.loggedIn = true
		s.schedule(int(ttl/time.Second), renewable)
		return nil
	}
	var body map[string]any
	switch s.cfg.Auth {
	case AuthAppRole:
		body = map[string]any{"role_id": s.cfg.RoleID, "secret_id": s.secretID}
	case AuthKubernetes:
		// Projected service-account tokens rotate: read the file at
		// every login.
		jwt, err := os.ReadFile(s.cfg.TokenPath)
		if err != nil {
			return fmt.Errorf("vault: read the service-account token: %w", err)
		}
		body = map[string]any{"role": s.cfg.Role, "jwt": strings.TrimSpace(string(jwt))}
	}
	// A login must not carry an old token.
	s.client.ClearToken()
	sec, err := s.client.Logical().WriteWithContext(ctx, "auth/"+s.cfg.Mount+"/login", body)
	if err != nil {
		return fmt.Errorf("vault: %s login: %w", s.cfg.Auth, clean(err))
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return fmt.Errorf("vault: %s login returned no token", s.cfg.Auth)
	}
	s.client.SetToken(sec.Auth.ClientToken)
	s.loggedIn = true
	s.schedule(sec.Auth.LeaseDuration, sec.Auth.Renewable)
	return nil
}

func (s *session) schedule(leaseSeconds int, renewable bool) {
	s.renewable = renewable
	if leaseSeconds <= 0 {
		s.refreshAt = time.Time{}
		return
	}
	s.refreshAt = s.now().Add(time.Duration(leaseSeconds) * time.Second * 2 / 3)
}

// forget drops the login after Vault refused the token, so that the next
// call logs in again.
func (s *session) forget() {
	s.mu.Lock()
	s.loggedIn = false
	s.mu.Unlock()
}

// Resolve implements secrets.Store. A KV v2 path yields the secret's
// fields and its version; any other path (the AWS engine's aws/creds/…)
// yields the response data, with the lease's expiry.
func (v *Vault) Resolve(ctx context.Context, ref secrets.Reference) (*secrets.Secret, error) {
	s, err := v.session()
	if err != nil {
		return nil, err
	}
	path := strings.Trim(ref["path"], "/")
	if path == "" {
		return nil, errors.New("vault: the reference needs a path")
	}
	var query map[string][]string
	if ver := ref["version"]; ver != "" {
		if _, err := strconv.Atoi(ver); err != nil {
			return nil, fmt.Errorf("vault: version %q is not a number", ver)
		}
		query = map[string][]string{"version": {ver}}
	}
	var sec *vault.Secret
	for attempt := 0; ; attempt++ {
		if err := s.ensureToken(ctx); err != nil {
			return nil, err
		}
		sec, err = s.client.Logical().ReadWithDataWithContext(ctx, path, query)
		var re *vault.ResponseError
		if attempt == 0 && errors.As(err, &re) && re.StatusCode == http.StatusForbidden && s.cfg.Auth != AuthToken {
			// The token was revoked or expired early: log in once more.
			s.forget()
			continue
		}
		break
	}
	var re *vault.ResponseError
	switch {
	case errors.As(err, &re) && re.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("no secret at %s: %w", path, secrets.ErrUnavailable)
	case err != nil:
		return nil, fmt.Errorf("vault: read %s: %w", path, clean(err))
	case sec == nil:
		return nil, fmt.Errorf("no secret at %s: %w", path, secrets.ErrUnavailable)
	}
	return v.toSecret(path, sec, s.poll)
}

func (v *Vault) toSecret(path string, sec *vault.Secret, poll time.Duration) (*secrets.Secret, error) {
	out := &secrets.Secret{LeaseID: sec.LeaseID, Renewable: sec.Renewable}
	data := sec.Data
	if inner, meta, ok := kvV2(sec.Data); ok {
		if inner == nil {
			return nil, fmt.Errorf("the latest version at %s is deleted: %w", path, secrets.ErrUnavailable)
		}
		data = inner
		out.Version = fmt.Sprint(meta["version"])
		out.RefreshAfter = v.now().Add(poll)
	}
	values, err := stringValues(data)
	if err != nil {
		return nil, fmt.Errorf("vault: %s: %w", path, err)
	}
	out.Values = values
	if sec.LeaseDuration > 0 {
		out.Expires = v.now().Add(time.Duration(sec.LeaseDuration) * time.Second)
	}
	if out.Version == "" {
		out.Version = sec.LeaseID
	}
	return out, nil
}

// kvV2 recognises a KV v2 read: {"data": {...}|null, "metadata": {...}}.
func kvV2(d map[string]any) (data, meta map[string]any, ok bool) {
	meta, mok := d["metadata"].(map[string]any)
	raw, dok := d["data"]
	if !mok || !dok || len(d) != 2 {
		return nil, nil, false
	}
	if raw == nil {
		return nil, meta, true
	}
	data, ok = raw.(map[string]any)
	return data, meta, ok
}

// stringValues turns a secret's fields into strings: strings as they are,
// anything else as JSON; nulls are left out.
func stringValues(d map[string]any) (map[string]string, error) {
	out := make(map[string]string, len(d))
	for k, x := range d {
		switch t := x.(type) {
		case nil:
		case string:
			out[k] = t
		default:
			b, err := json.Marshal(t)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", k, err)
			}
			out[k] = string(b)
		}
	}
	return out, nil
}

// Renew implements secrets.Renewer.
func (v *Vault) Renew(ctx context.Context, leaseID string, increment time.Duration) (*secrets.Secret, error) {
	s, err := v.session()
	if err != nil {
		return nil, err
	}
	if err := s.ensureToken(ctx); err != nil {
		return nil, err
	}
	sec, err := s.client.Sys().RenewWithContext(ctx, leaseID, int(increment/time.Second))
	if err != nil {
		return nil, fmt.Errorf("vault: renew: %w", clean(err))
	}
	out := &secrets.Secret{LeaseID: sec.LeaseID, Renewable: sec.Renewable, Version: sec.LeaseID}
	if sec.LeaseDuration > 0 {
		out.Expires = v.now().Add(time.Duration(sec.LeaseDuration) * time.Second)
	}
	return out, nil
}

// Revoke implements secrets.Revoker.
func (v *Vault) Revoke(ctx context.Context, leaseID string) error {
	s, err := v.session()
	if err != nil {
		return err
	}
	if err := s.ensureToken(ctx); err != nil {
		return err
	}
	if err := s.client.Sys().RevokeWithContext(ctx, leaseID); err != nil {
		return fmt.Errorf("vault: revoke: %w", clean(err))
	}
	return nil
}

// Health implements secrets.HealthChecker: Vault answers and the token is
// valid.
func (v *Vault) Health(ctx context.Context) error {
	s, err := v.session()
	if err != nil {
		return err
	}
	if err := s.ensureToken(ctx); err != nil {
		return err
	}
	if _, err := s.client.Auth().Token().LookupSelfWithContext(ctx); err != nil {
		s.forget()
		return fmt.Errorf("vault: token lookup: %w", clean(err))
	}
	return nil
}

// clean keeps what a Vault error says without anything a request could
// have carried: a *vault.ResponseError prints its status and Vault's
// error strings, which never hold the token.
func clean(err error) error {
	var re *vault.ResponseError
	if errors.As(err, &re) {
		return fmt.Errorf("%s %s: status %d: %s", re.HTTPMethod, re.URL, re.StatusCode, strings.Join(re.Errors, "; "))
	}
	return err
}
