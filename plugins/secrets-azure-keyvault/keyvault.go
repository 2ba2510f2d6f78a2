// Package main is the llmproxy-secrets-azure-keyvault plugin: it reads
// secrets from Azure Key Vault through the official client,
// github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets, and
// logs in to Microsoft Entra ID with azidentity: a client secret, AKS
// workload identity (a federated token file) or a managed identity.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/secrets"
)

// Name is the store type: the plugin binary is llmproxy-secrets-<Name>.
const Name = "azure-keyvault"

// CredentialClientSecret is the credential the plugin asks the host for
// when it logs in with a client secret.
const CredentialClientSecret = "client_secret"

// Auth methods.
const (
	AuthClientSecret     = "client_secret"
	AuthWorkloadIdentity = "workload_identity"
	AuthManagedIdentity  = "managed_identity"
)

// Defaults.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultPollInterval = 5 * time.Minute
)

// ValueKey is the value name of a secret that is not a JSON object.
const ValueKey = "value"

// KeyVault is the secrets store. Its client is swapped atomically on
// Configure.
type KeyVault struct {
	cur atomic.Pointer[session]
}

var (
	_ secrets.Store         = (*KeyVault)(nil)
	_ secrets.HealthChecker = (*KeyVault)(nil)
)

type session struct {
	client  *azsecrets.Client
	vault   string
	timeout time.Duration
	poll    time.Duration
}

type config struct {
	VaultURL                string `json:"vault_url"`
	Auth                    string `json:"auth"`
	TenantID                string `json:"tenant_id"`
	ClientID                string `json:"client_id"`
	FederatedTokenFile      string `json:"federated_token_file"`
	AuthorityHost           string `json:"authority_host"`
	CAFile                  string `json:"ca_file"`
	VerifyChallengeResource *bool  `json:"verify_challenge_resource"`
	Timeout                 string `json:"timeout"`
	Poll                    string `json:"poll_interval"`
}

// Describe implements secrets.Store.
func (k *KeyVault) Describe(context.Context) (*secrets.Description, error) {
	return &secrets.Description{
		Name:    Name,
		Version: "0.1.0",
		ConfigSchema: schema.Schema{Attributes: []schema.Attribute{
			{Name: "vault_url", Type: "string", Required: true, Description: "The vault's URL, e.g. https://contoso.vault.azure.net."},
			{Name: "auth", Type: "string", Description: `How the plugin logs in to Entra ID: "client_secret" (tenant_id, client_id and the credential client_secret), "workload_identity" (a federated token file, as AKS injects it) or "managed_identity". Default: client_secret when that credential is set, else workload_identity when a federated token file is known, else managed_identity.`},
			{Name: "tenant_id", Type: "string", Description: "Entra tenant (default $AZURE_TENANT_ID)."},
			{Name: "client_id", Type: "string", Description: "Application (client) id; for managed_identity, a user-assigned identity (default $AZURE_CLIENT_ID)."},
			{Name: "federated_token_file", Type: "string", Description: "Federated token file for workload_identity (default $AZURE_FEDERATED_TOKEN_FILE)."},
			{Name: "authority_host", Type: "string", Description: "Entra login host (default $AZURE_AUTHORITY_HOST, else the public cloud's)."},
			{Name: "ca_file", Type: "string", Description: "PEM file of extra CAs trusted for the vault and the login host, besides the system's."},
			{Name: "verify_challenge_resource", Type: "bool", Description: "Whether the resource of the vault's authentication challenge must belong to the vault's domain (default true)."},
			{Name: "timeout", Type: "string", Description: `Limit on one read, a Go duration (default "10s").`},
			{Name: "poll_interval", Type: "string", Description: `How often a secret without an expiry is read again to see a new version (default "5m").`},
		}},
		Credentials: []schema.Credential{
			{Name: CredentialClientSecret, Description: `Client secret of the application, for auth = "client_secret".`},
		},
		References: []schema.Attribute{
			{Name: "secret", Type: "string", Required: true, Description: "Name of the secret."},
			{Name: "version", Type: "string", Description: "Version of the secret (default: the current one)."},
		},
	}, nil
}

// Configure implements secrets.Store. It checks the settings and builds
// the credential and client; the first login happens at the first read.
func (k *KeyVault) Configure(_ context.Context, cfg *secrets.Config) error {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	var diags schema.Diagnostics
	add := func(path, summary, detail string) {
		diags = append(diags, schema.Diagnostic{Summary: summary, Detail: detail, Path: []string{path}})
	}
	if u, err := url.Parse(c.VaultURL); c.VaultURL == "" || err != nil || u.Scheme != "https" || u.Host == "" {
		add("vault_url", "vault_url must be an https URL, e.g. https://contoso.vault.azure.net", "")
	}
	c.TenantID = orEnv(c.TenantID, "AZURE_TENANT_ID")
	c.ClientID = orEnv(c.ClientID, "AZURE_CLIENT_ID")
	c.FederatedTokenFile = orEnv(c.FederatedTokenFile, "AZURE_FEDERATED_TOKEN_FILE")
	c.AuthorityHost = orEnv(c.AuthorityHost, "AZURE_AUTHORITY_HOST")
	clientSecret := cfg.Credentials[CredentialClientSecret]
	if c.Auth == "" {
		switch {
		case clientSecret != "":
			c.Auth = AuthClientSecret
		case c.FederatedTokenFile != "":
			c.Auth = AuthWorkloadIdentity
		default:
			c.Auth = AuthManagedIdentity
		}
	}
	timeout := diags.Duration("timeout", c.Timeout, DefaultTimeout)
	poll := diags.Duration("poll_interval", c.Poll, DefaultPollInterval)
	switch c.Auth {
	case AuthClientSecret:
		if clientSecret == "" {
			add("auth", `auth = "client_secret" needs the credential client_secret`, "")
		}
		if c.TenantID == "" || c.ClientID == "" {
			add("auth", `auth = "client_secret" needs tenant_id and client_id`, "")
		}
	case AuthWorkloadIdentity:
		if c.TenantID == "" || c.ClientID == "" {
			add("auth", `auth = "workload_identity" needs tenant_id and client_id`, "")
		}
		if _, err := os.Stat(c.FederatedTokenFile); c.FederatedTokenFile == "" || err != nil {
			add("federated_token_file", "the federated token file cannot be read", fmt.Sprint(err))
		}
	case AuthManagedIdentity:
	default:
		add("auth", `auth must be "client_secret", "workload_identity" or "managed_identity"`, fmt.Sprintf("got %q", c.Auth))
	}
	if c.AuthorityHost != "" {
		if u, err := url.Parse(c.AuthorityHost); err != nil || u.Scheme != "https" || u.Host == "" {
			add("authority_host", "authority_host must be an https URL", "")
		}
	}
	transport, err := newTransport(c.CAFile)
	if err != nil {
		add("ca_file", "ca_file cannot be used", err.Error())
	}
	if diags.HasErrors() {
		return diags
	}

	opts := azcore.ClientOptions{
		Transport: transport,
		// The host retries with its own backoff and marks the instance
		// degraded meanwhile; the client's retries would only hide that.
		Retry:     policy.RetryOptions{MaxRetries: -1},
		Telemetry: policy.TelemetryOptions{ApplicationID: "llmproxy"},
	}
	if c.AuthorityHost != "" {
		opts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: strings.TrimSuffix(c.AuthorityHost, "/") + "/"}
	}
	// A login host other than a public cloud's is not in Entra's instance
	// discovery list (Azure Stack, a private cloud, a test authority).
	custom := c.AuthorityHost != ""
	var cred azcore.TokenCredential
	switch c.Auth {
	case AuthClientSecret:
		cred, err = azidentity.NewClientSecretCredential(c.TenantID, c.ClientID, clientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: custom})
	case AuthWorkloadIdentity:
		cred, err = azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: opts, ClientID: c.ClientID, TenantID: c.TenantID, TokenFilePath: c.FederatedTokenFile,
			DisableInstanceDiscovery: custom,
		})
	case AuthManagedIdentity:
		mo := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
		if c.ClientID != "" {
			mo.ID = azidentity.ClientID(c.ClientID)
		}
		cred, err = azidentity.NewManagedIdentityCredential(mo)
	}
	if err != nil {
		return schema.Diagnostics{{Summary: "cannot set up the Entra ID login", Detail: err.Error(), Path: []string{"auth"}}}
	}
	verify := c.VerifyChallengeResource == nil || *c.VerifyChallengeResource
	client, err := azsecrets.NewClient(c.VaultURL, cred, &azsecrets.ClientOptions{
		ClientOptions:                        opts,
		DisableChallengeResourceVerification: !verify,
	})
	if err != nil {
		return schema.Diagnostics{{Summary: "cannot build the Key Vault client", Detail: err.Error(), Path: []string{"vault_url"}}}
	}
	k.cur.Store(&session{client: client, vault: c.VaultURL, timeout: timeout, poll: poll})
	return nil
}

func orEnv(v, name string) string {
	if v != "" {
		return v
	}
	return os.Getenv(name)
}

// newTransport returns the HTTP client for the vault and the login host:
// the system's CAs plus those of caFile.
func newTransport(caFile string) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("no PEM certificate in " + caFile)
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: t}, nil
}

func (k *KeyVault) session() (*session, error) {
	s := k.cur.Load()
	if s == nil {
		return nil, errors.New("azure-keyvault: not configured")
	}
	return s, nil
}

// Resolve implements secrets.Store: one secret version. A secret whose
// content type is application/json and whose value is a JSON object of
// strings gives one value per member (pick one with field); any other
// secret gives one value, "value". The version is Key Vault's version
// id; the secret's expiry (exp) is the credential's.
func (k *KeyVault) Resolve(ctx context.Context, ref secrets.Reference) (*secrets.Secret, error) {
	s, err := k.session()
	if err != nil {
		return nil, err
	}
	name := ref["secret"]
	if !validName(name) {
		return nil, errors.New(`azure-keyvault: the reference needs secret = "<name>" (1-127 letters, digits and dashes)`)
	}
	version := ref["version"]
	if !validVersion(version) {
		return nil, errors.New("azure-keyvault: version must be a Key Vault version id (32 hex digits)")
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	r, err := s.client.GetSecret(ctx, name, version, nil)
	if err != nil {
		return nil, readError(name, err)
	}
	if r.Value == nil {
		return nil, fmt.Errorf("azure-keyvault: secret %s has no value", name)
	}
	out := &secrets.Secret{Values: Values(*r.Value, deref(r.ContentType))}
	if r.ID != nil {
		out.Version = r.ID.Version()
	}
	if a := r.Attributes; a != nil {
		if a.Enabled != nil && !*a.Enabled {
			return nil, fmt.Errorf("azure-keyvault: secret %s is disabled", name)
		}
		if a.Expires != nil {
			if !a.Expires.After(time.Now()) {
				return nil, fmt.Errorf("azure-keyvault: secret %s version %s expired at %s", name, out.Version, a.Expires.UTC().Format(time.RFC3339))
			}
			out.Expires = *a.Expires
		}
	}
	out.PollEvery(s.poll)
	return out, nil
}

// Values splits a secret's value into named values: the members of a
// JSON object of strings when contentType says application/json, else
// the whole value under ValueKey.
func Values(value, contentType string) map[string]string {
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), "application/json") {
		var m map[string]string
		if err := json.Unmarshal([]byte(value), &m); err == nil && len(m) > 0 {
			return m
		}
	}
	return map[string]string{ValueKey: value}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// readError sorts a failed read: a missing secret or version is
// unavailable, anything else (401, 403, a vault that does not answer)
// is a failure. Response bodies are not quoted: only the error code.
func readError(name string, err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		if re.StatusCode == http.StatusNotFound {
			return fmt.Errorf("no secret %s in the vault (%s): %w", name, re.ErrorCode, secrets.ErrUnavailable)
		}
		code := re.ErrorCode
		if code == "" {
			code = http.StatusText(re.StatusCode)
		}
		return fmt.Errorf("azure-keyvault: read %s: HTTP %d %s", name, re.StatusCode, code)
	}
	var af *azidentity.AuthenticationFailedError
	if errors.As(err, &af) {
		status := 0
		if af.RawResponse != nil {
			status = af.RawResponse.StatusCode
		}
		return fmt.Errorf("azure-keyvault: read %s: Entra ID refused the login (HTTP %d)", name, status)
	}
	return fmt.Errorf("azure-keyvault: read %s: %w", name, err)
}

func validName(s string) bool {
	if s == "" || len(s) > 127 {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

func validVersion(s string) bool {
	if s == "" {
		return true
	}
	if len(s) != 32 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
			return false
		}
	}
	return true
}

// Health implements secrets.HealthChecker: the vault answers a read of
// a probe secret with the plugin's login (a missing secret still proves
// both).
func (k *KeyVault) Health(ctx context.Context) error {
	return secrets.Probe(ctx, k, secrets.Reference{"secret": "llmproxy-health-probe"})
}
