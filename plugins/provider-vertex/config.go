package main

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"cloud.google.com/go/auth/credentials"

	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/relay"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// Defaults for the config block.
const (
	defaultLocation = "us-central1"
	defaultTimeout  = 10 * time.Minute
	// cloudPlatformScope is the OAuth2 scope Vertex AI needs.
	cloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform"
)

// configSchema is the schema of the instance's config block.
var configSchema = schema.Schema{Attributes: []schema.Attribute{
	{Name: "project", Type: "string", Description: "Google Cloud project id that owns the Vertex AI quota. Required unless api_key (express mode) is used; defaults to the project of the service account or of Application Default Credentials."},
	{Name: "location", Type: "string", Description: `Vertex AI location, e.g. "us-central1", "europe-west4" or "global" (default "` + defaultLocation + `").`},
	{Name: "endpoint", Type: "string", Description: `Base URL override (default https://{location}-aiplatform.googleapis.com, or https://aiplatform.googleapis.com for "global" and for express mode).`},
	{Name: "timeout", Type: "string", Description: `Upstream timeout, a Go duration such as "90s": the whole call for non-streamed requests, the wait for the response headers for streams (default "10m").`},
	{Name: "default_max_tokens", Type: "number", Description: "maxOutputTokens sent when the client sets neither max_tokens nor max_completion_tokens (default: none, the model's own limit)."},
	{Name: "auth", Type: "string", Description: `"static" (a credential below is required), "workload_identity" (Application Default Credentials only: the GKE metadata server, or workload identity federation from an external_account file in GOOGLE_APPLICATION_CREDENTIALS; no credentials) or unset (the credentials when given, else Application Default Credentials).`},
}}

// Values of the auth attribute.
const (
	authStatic           = "static"
	authWorkloadIdentity = "workload_identity"
)

// credentialSpecs are the secrets an instance may use; with neither, the
// plugin uses Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS,
// gcloud's well-known file, or the metadata server / GKE workload identity).
var credentialSpecs = []schema.Credential{
	{Name: "service_account_json", Description: "A service-account key file's JSON. Its token_uri is honoured; tokens are cached and refreshed before expiry."},
	{Name: "api_key", Description: "A Vertex AI express-mode API key, sent as x-goog-api-key."},
}

// rawConfig is the config block as the host sends it: absent attributes
// arrive as null.
type rawConfig struct {
	Project          *string  `json:"project"`
	Location         *string  `json:"location"`
	Endpoint         *string  `json:"endpoint"`
	Timeout          *string  `json:"timeout"`
	DefaultMaxTokens *float64 `json:"default_max_tokens"`
	Auth             *string  `json:"auth"`
}

// settings is a validated configuration with its HTTP client and
// credentials. A new settings value replaces the old one atomically on
// Configure.
type settings struct {
	baseURL   *url.URL
	project   string
	location  string
	timeout   time.Duration
	maxTokens int
	auth      authorizer
	client    *http.Client
}

// locationRE matches Vertex AI location names.
var locationRE = regexp.MustCompile(`^[a-z]+(-[a-z0-9]+)*$`)

// projectRE matches Google Cloud project ids (and numbers).
var projectRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.:-]{0,62}$`)

// parseConfig validates cfg and builds settings from it. detect finds
// Application Default Credentials when no credential is given.
func parseConfig(ctx context.Context, cfg *provider.Config, detect adcFunc, earlyRefresh time.Duration) (*settings, error) {
	var raw rawConfig
	if err := cfg.Decode(&raw); err != nil {
		return nil, err
	}
	var diags schema.Diagnostics
	s := &settings{location: defaultLocation, timeout: defaultTimeout}

	if raw.Location != nil {
		s.location = strings.TrimSpace(*raw.Location)
		if !locationRE.MatchString(s.location) {
			diags = append(diags, schema.Diagnostic{Summary: "invalid location",
				Detail: `location must be a Vertex AI location such as "us-central1" or "global"`, Path: []string{"location"}})
		}
	}
	if raw.Project != nil {
		s.project = strings.TrimSpace(*raw.Project)
		if s.project != "" && !projectRE.MatchString(s.project) {
			diags = append(diags, schema.Diagnostic{Summary: "invalid project",
				Detail: "project must be a Google Cloud project id such as \"my-project-123\"", Path: []string{"project"}})
		}
	}
	if raw.Timeout != nil {
		d, err := time.ParseDuration(*raw.Timeout)
		if err != nil || d <= 0 {
			diags = append(diags, schema.Diagnostic{Summary: "invalid timeout",
				Detail: "timeout must be a positive Go duration such as \"90s\"", Path: []string{"timeout"}})
		}
		s.timeout = d
	}
	if raw.DefaultMaxTokens != nil {
		n := *raw.DefaultMaxTokens
		if n < 1 || n != math.Trunc(n) || n > math.MaxInt32 {
			diags = append(diags, schema.Diagnostic{Summary: "default_max_tokens must be a positive whole number", Path: []string{"default_max_tokens"}})
		}
		s.maxTokens = int(n)
	}

	saJSON := strings.TrimSpace(cfg.Credentials["service_account_json"])
	apiKey := strings.TrimSpace(cfg.Credentials["api_key"])
	if saJSON != "" && apiKey != "" {
		diags = append(diags, schema.Diagnostic{Summary: "conflicting credentials",
			Detail: "set either service_account_json or api_key, not both", Path: []string{"credentials", "api_key"}})
	}
	mode := ""
	if raw.Auth != nil {
		mode = *raw.Auth
	}
	switch mode {
	case "":
	case authStatic:
		if saJSON == "" && apiKey == "" {
			diags = append(diags, schema.Diagnostic{Summary: `auth = "static" needs service_account_json or api_key`, Path: []string{"auth"}})
		}
	case authWorkloadIdentity:
		if saJSON != "" || apiKey != "" {
			diags = append(diags, schema.Diagnostic{Summary: `auth = "workload_identity" takes no credentials`,
				Detail: "the identity comes from the GKE metadata server or a workload identity federation config; remove the credential blocks", Path: []string{"auth"}})
		}
	default:
		diags = append(diags, schema.Diagnostic{Summary: `auth must be "static" or "workload_identity"`, Detail: fmt.Sprintf("got %q", mode), Path: []string{"auth"}})
	}

	base := ""
	switch {
	case raw.Endpoint != nil && strings.TrimSpace(*raw.Endpoint) != "":
		base = strings.TrimSpace(*raw.Endpoint)
	case s.location == "global" || apiKey != "":
		base = "https://aiplatform.googleapis.com"
	default:
		base = "https://" + s.location + "-aiplatform.googleapis.com"
	}
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
		diags = append(diags, schema.Diagnostic{Summary: "invalid endpoint",
			Detail: "endpoint must be an absolute http(s) URL without a query, e.g. https://us-central1-aiplatform.googleapis.com", Path: []string{"endpoint"}})
	}
	s.baseURL = u
	if diags.HasErrors() {
		return nil, diags
	}

	transport := provider.Transport(relay.NewTransport(s.timeout))
	s.client = &http.Client{Transport: transport}
	// The token endpoint gets its own client with a whole-call timeout, so
	// a stuck token exchange cannot hold a request forever.
	tokenClient := &http.Client{Transport: transport, Timeout: min(s.timeout, time.Minute)}

	switch {
	case apiKey != "":
		s.auth = keyAuth(apiKey)
	case saJSON != "":
		var probe struct {
			Type        string `json:"type"`
			ProjectID   string `json:"project_id"`
			ClientEmail string `json:"client_email"`
			PrivateKey  string `json:"private_key"`
			TokenURI    string `json:"token_uri"`
		}
		if err := json.Unmarshal([]byte(saJSON), &probe); err != nil || probe.Type != "service_account" ||
			probe.ClientEmail == "" || probe.PrivateKey == "" {
			return nil, schema.Diagnostics{{Summary: "invalid service_account_json",
				Detail: "service_account_json must be a service-account key file (type \"service_account\" with client_email and private_key)",
				Path:   []string{"credentials", "service_account_json"}}}
		}
		if !rsaKey(probe.PrivateKey) {
			return nil, schema.Diagnostics{{Summary: "invalid service_account_json",
				Detail: "private_key must be a PEM-encoded RSA key (PKCS#8 or PKCS#1)",
				Path:   []string{"credentials", "service_account_json"}}}
		}
		if probe.TokenURI != "" {
			if tu, err := url.Parse(probe.TokenURI); err != nil || (tu.Scheme != "https" && tu.Scheme != "http") || tu.Host == "" {
				return nil, schema.Diagnostics{{Summary: "invalid service_account_json",
					Detail: "token_uri must be an absolute http(s) URL", Path: []string{"credentials", "service_account_json"}}}
			}
		}
		creds, err := credentials.NewCredentialsFromJSON(credentials.ServiceAccount, []byte(saJSON), &credentials.DetectOptions{
			Scopes:            []string{cloudPlatformScope},
			Client:            tokenClient,
			EarlyTokenRefresh: earlyRefresh,
		})
		if err != nil {
			// The library's message may quote the key material; keep it out.
			return nil, schema.Diagnostics{{Summary: "invalid service_account_json",
				Detail: "the service-account key could not be loaded (is private_key a PEM RSA key?)",
				Path:   []string{"credentials", "service_account_json"}}}
		}
		s.auth = &tokenAuth{creds: creds}
		if s.project == "" {
			s.project = probe.ProjectID
		}
	default:
		creds, err := detect(ctx, &credentials.DetectOptions{Scopes: []string{cloudPlatformScope}, Client: tokenClient,
			EarlyTokenRefresh: earlyRefresh})
		if err != nil {
			return nil, schema.Diagnostics{{Summary: "no Google credentials",
				Detail: fmt.Sprintf("no service_account_json or api_key was given and Application Default Credentials were not found: %v", err),
				Path:   []string{"credentials", "service_account_json"}}}
		}
		s.auth = &tokenAuth{creds: creds}
		if s.project == "" {
			if p, err := creds.ProjectID(ctx); err == nil {
				s.project = p
			}
		}
	}
	if s.project == "" && apiKey == "" {
		return nil, schema.Diagnostics{{Summary: "missing project",
			Detail: "project is required: the credentials do not name one", Path: []string{"project"}}}
	}
	return s, nil
}

// rsaKey reports whether s is a PEM RSA private key.
func rsaKey(s string) bool {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return false
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		_, ok := k.(*rsa.PrivateKey)
		return ok
	}
	_, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	return err == nil
}

// modelPath is the resource path of a publisher model: below the project
// and location with OAuth, below /v1/publishers in express mode.
func (s *settings) modelPath(publisher, model string) string {
	if _, ok := s.auth.(keyAuth); ok && s.project == "" {
		return "/v1/publishers/" + publisher + "/models/" + url.PathEscape(model)
	}
	return "/v1/projects/" + url.PathEscape(s.project) + "/locations/" + url.PathEscape(s.location) +
		"/publishers/" + publisher + "/models/" + url.PathEscape(model)
}
