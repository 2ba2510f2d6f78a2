package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/relay"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// Defaults for optional config attributes.
const (
	DefaultAPIVersion    = "2024-10-21"
	DefaultTimeout       = 10 * time.Minute
	DefaultAuthorityHost = "https://login.microsoftonline.com"
	DefaultScope         = "https://cognitiveservices.azure.com/.default"
)

// Authentication modes of the auth attribute.
const (
	AuthAPIKey = "api_key"
	AuthEntra  = "entra"
	// AuthWorkloadIdentity takes the identity the platform gives the
	// workload: an AKS federated token (AZURE_FEDERATED_TOKEN_FILE) or a
	// managed identity.
	AuthWorkloadIdentity = "workload_identity"
)

// Document modes of the documents attribute.
const (
	DocumentsNative = "native"
	DocumentsText   = "text"
)

// Credential names the plugin asks the host for.
const (
	CredAPIKey       = "api_key"
	CredClientSecret = "client_secret"
	CredBearerToken  = "bearer_token"
)

// fileConfig is the config block as the host sends it.
type fileConfig struct {
	Endpoint      string            `json:"endpoint"`
	APIVersion    string            `json:"api_version"`
	Deployments   map[string]string `json:"deployments"`
	Timeout       string            `json:"timeout"`
	Auth          string            `json:"auth"`
	TenantID      string            `json:"tenant_id"`
	ClientID      string            `json:"client_id"`
	AuthorityHost string            `json:"authority_host"`
	Scope         string            `json:"scope"`
	Documents     string            `json:"documents"`
}

// configSchema is the schema Describe returns.
func configSchema() schema.Schema {
	return schema.Schema{Attributes: []schema.Attribute{
		{Name: "endpoint", Type: "string", Required: true, Description: "Resource URL, e.g. https://myres.openai.azure.com."},
		{Name: "api_version", Type: "string", Description: "Data-plane api-version query parameter (default " + DefaultAPIVersion + ")."},
		{Name: "deployments", Type: "map(string)", Description: "OpenAI model name → deployment name; a model not listed is used as the deployment name."},
		{Name: "timeout", Type: "string", Description: "Upstream timeout, a Go duration (default 10m): the whole call for JSON responses, the wait for the response headers for streams."},
		{Name: "auth", Type: "string", Description: `"api_key" (default: api-key header from the api_key credential), "entra" (Microsoft Entra ID bearer token from a client secret) or "workload_identity" (Entra token for the workload's own identity: the AKS federated token file, else the managed identity; no credentials).`},
		{Name: "tenant_id", Type: "string", Description: "Entra tenant of the client-credentials grant."},
		{Name: "client_id", Type: "string", Description: "Entra application (client) id of the client-credentials grant."},
		{Name: "authority_host", Type: "string", Description: "Entra authority (default " + DefaultAuthorityHost + ")."},
		{Name: "scope", Type: "string", Description: "Entra token scope (default " + DefaultScope + ")."},
		{Name: "documents", Type: "string", Description: `How document parts reach Azure: "native" (default: PDFs as file parts, images as image_url parts, others as text) or "text" (extracted text only).`},
	}}
}

// credentials is the list Describe returns.
func credentials() []schema.Credential {
	return []schema.Credential{
		{Name: CredAPIKey, Description: "Azure OpenAI resource key, for auth = \"api_key\"."},
		{Name: CredClientSecret, Description: "Entra client secret of client_id, for auth = \"entra\"."},
		{Name: CredBearerToken, Description: "A static Entra access token, for auth = \"entra\" without a client secret."},
	}
}

var (
	apiVersionRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(-preview)?$`)
	// deploymentRE is what Azure allows in a deployment name.
	deploymentRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	tenantRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]*$`)
)

// newInstance validates cfg and builds the instance it describes. All
// problems are reported together as schema.Diagnostics.
func newInstance(cfg *provider.Config) (*instance, error) {
	var fc fileConfig
	dec := json.NewDecoder(bytes.NewReader(cfg.JSON))
	dec.DisallowUnknownFields()
	if len(cfg.JSON) > 0 {
		if err := dec.Decode(&fc); err != nil {
			return nil, schema.Diagnostics{{Summary: "invalid config", Detail: err.Error()}}
		}
	}
	var diags schema.Diagnostics
	bad := func(attr, format string, args ...any) {
		diags = append(diags, schema.Diagnostic{Summary: fmt.Sprintf(format, args...), Path: []string{attr}})
	}

	in := &instance{apiVersion: DefaultAPIVersion, timeout: DefaultTimeout, documents: DocumentsNative, deployments: map[string]string{}}
	endpoint, err := parseBaseURL(fc.Endpoint)
	switch {
	case fc.Endpoint == "":
		bad("endpoint", "endpoint is required, e.g. https://myres.openai.azure.com")
	case err != nil:
		bad("endpoint", "endpoint %q: %v", fc.Endpoint, err)
	default:
		in.endpoint = endpoint
	}
	if fc.APIVersion != "" {
		if !apiVersionRE.MatchString(fc.APIVersion) {
			bad("api_version", "api_version %q is not a version such as %s or 2025-03-01-preview", fc.APIVersion, DefaultAPIVersion)
		}
		in.apiVersion = fc.APIVersion
	}
	for model, dep := range fc.Deployments {
		if model == "" || !deploymentRE.MatchString(dep) {
			bad("deployments", "deployment %q for model %q must be 1-64 letters, digits, '.', '_' or '-'", dep, model)
			continue
		}
		in.deployments[model] = dep
	}
	if fc.Timeout != "" {
		d, err := time.ParseDuration(fc.Timeout)
		if err != nil || d <= 0 {
			bad("timeout", "timeout %q is not a positive duration such as \"90s\"", fc.Timeout)
		} else {
			in.timeout = d
		}
	}
	switch fc.Documents {
	case "", DocumentsNative:
	case DocumentsText:
		in.documents = DocumentsText
	default:
		bad("documents", "documents must be %q or %q, not %q", DocumentsNative, DocumentsText, fc.Documents)
	}
	in.client = newHTTPClient(in.timeout)

	creds := cfg.Credentials
	switch fc.Auth {
	case "", AuthAPIKey:
		key := creds[CredAPIKey]
		if key == "" {
			diags = append(diags, schema.Diagnostic{Summary: `auth "api_key" needs the api_key credential`, Path: []string{"auth"}})
		}
		in.auth = apiKeyAuth{key: key}
	case AuthEntra:
		secret, static := creds[CredClientSecret], creds[CredBearerToken]
		switch {
		case secret != "":
			if !tenantRE.MatchString(fc.TenantID) {
				bad("tenant_id", "tenant_id is required for auth \"entra\" with a client secret")
			}
			if fc.ClientID == "" {
				bad("client_id", "client_id is required for auth \"entra\" with a client secret")
			}
			authority := DefaultAuthorityHost
			if fc.AuthorityHost != "" {
				authority = fc.AuthorityHost
			}
			host, err := parseBaseURL(authority)
			if err != nil {
				bad("authority_host", "authority_host %q: %v", authority, err)
				break
			}
			scope := DefaultScope
			if fc.Scope != "" {
				scope = fc.Scope
			}
			in.auth = newEntraToken(host.JoinPath(fc.TenantID, "oauth2", "v2.0", "token").String(),
				fc.ClientID, secret, scope, in.client)
		case static != "":
			in.auth = bearerAuth{token: static}
		default:
			diags = append(diags, schema.Diagnostic{Summary: `auth "entra" needs the client_secret or bearer_token credential`, Path: []string{"auth"}})
		}
	case AuthWorkloadIdentity:
		if creds[CredAPIKey] != "" || creds[CredClientSecret] != "" || creds[CredBearerToken] != "" {
			bad("auth", "auth %q takes no credentials: the identity comes from the platform", AuthWorkloadIdentity)
			break
		}
		if fc.TenantID != "" && !tenantRE.MatchString(fc.TenantID) {
			bad("tenant_id", "tenant_id %q is not a tenant id", fc.TenantID)
			break
		}
		scope := DefaultScope
		if fc.Scope != "" {
			scope = fc.Scope
		}
		a, err := newIdentityAuth(fc.TenantID, fc.ClientID, fc.AuthorityHost, scope)
		if err != nil {
			bad("auth", "workload identity: %v", err)
			break
		}
		in.auth = a
	default:
		bad("auth", "auth must be %q, %q or %q, not %q", AuthAPIKey, AuthEntra, AuthWorkloadIdentity, fc.Auth)
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return in, nil
}

// parseBaseURL accepts an absolute http(s) URL without query or fragment
// and returns it without a trailing slash.
func parseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("not a URL: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("scheme must be https (or http for a local test server)")
	}
	if u.Host == "" {
		return nil, fmt.Errorf("no host")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("must not carry a query, fragment or user info")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// newHTTPClient returns the client of one instance. It has no overall
// timeout, which would cut long streams; JSON calls get a context deadline
// and streams a response-header timeout instead.
func newHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Transport: provider.Transport(relay.NewTransport(timeout))}
}
