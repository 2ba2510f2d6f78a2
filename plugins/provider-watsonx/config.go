package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/relay"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// Defaults for the config block.
const (
	defaultIAMURL  = "https://iam.cloud.ibm.com"
	defaultVersion = "2025-02-11"
	defaultTimeout = 10 * time.Minute
	// The compute-resource token files IKS and OpenShift on IBM Cloud
	// project into pods.
	defaultCRTokenFile = "/var/run/secrets/tokens/vault-token"
	altCRTokenFile     = "/var/run/secrets/tokens/sa-token"
)

// configSchema is the schema of the instance's config block.
var configSchema = schema.Schema{Attributes: []schema.Attribute{
	{Name: "url", Type: "string", Required: true,
		Description: `watsonx.ai regional endpoint, e.g. "https://us-south.ml.cloud.ibm.com".`},
	{Name: "iam_url", Type: "string",
		Description: `IBM Cloud IAM base URL; tokens come from POST {iam_url}/identity/token (default "` + defaultIAMURL + `").`},
	{Name: "project_id", Type: "string",
		Description: "watsonx.ai project the foundation models run in. Set exactly one of project_id and space_id; neither is needed for deployments."},
	{Name: "space_id", Type: "string",
		Description: "watsonx.ai deployment space the foundation models run in, instead of project_id."},
	{Name: "version", Type: "string",
		Description: `API version date sent as ?version= on every call (default "` + defaultVersion + `").`},
	{Name: "timeout", Type: "string",
		Description: `Upstream timeout, a Go duration such as "90s": the whole call for non-streamed requests, the wait for the response headers for streams (default "10m").`},
	{Name: "auth", Type: "string",
		Description: `"api_key" (default: the api_key credential) or "workload_identity" (an IBM Cloud trusted profile: the compute-resource token IKS/OpenShift projects into the pod, exchanged at IAM; no credentials).`},
	{Name: "trusted_profile_id", Type: "string", Description: `Trusted profile id (Profile-…) for auth = "workload_identity".`},
	{Name: "trusted_profile_name", Type: "string", Description: `Trusted profile name for auth = "workload_identity", instead of trusted_profile_id.`},
	{Name: "cr_token_file", Type: "string",
		Description: `Compute-resource token file for auth = "workload_identity" (default ` + defaultCRTokenFile + `, else ` + altCRTokenFile + `).`},
	{Name: "deployments", Type: "map(string)",
		Description: `Model names served by deployments, mapped to the deployment id or serving name, e.g. { "my-granite" = "2f6c…" }. A model written "deployment/<id>" always goes to that deployment.`},
}}

// credentials are the secrets an instance needs.
var credentials = []schema.Credential{
	{Name: "api_key", Description: "IBM Cloud API key, exchanged for IAM bearer tokens (required unless auth = \"workload_identity\")."},
}

// rawConfig is the config block as the host sends it: absent attributes
// arrive as null.
type rawConfig struct {
	URL         *string           `json:"url"`
	IAMURL      *string           `json:"iam_url"`
	ProjectID   *string           `json:"project_id"`
	SpaceID     *string           `json:"space_id"`
	Version     *string           `json:"version"`
	Timeout     *string           `json:"timeout"`
	Deployments map[string]string `json:"deployments"`
	Auth        *string           `json:"auth"`
	ProfileID   *string           `json:"trusted_profile_id"`
	ProfileName *string           `json:"trusted_profile_name"`
	CRTokenFile *string           `json:"cr_token_file"`
}

// settings is a validated configuration with its HTTP client and token
// source. A new settings value replaces the old one atomically on
// Configure.
type settings struct {
	baseURL     *url.URL
	projectID   string
	spaceID     string
	version     string
	timeout     time.Duration
	deployments map[string]string
	client      *http.Client
	tokens      *tokenSource
}

// versionDate is the shape of the version parameter.
var versionDate = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// parseConfig validates cfg and builds settings from it.
func parseConfig(cfg *provider.Config) (*settings, error) {
	var raw rawConfig
	if err := cfg.Decode(&raw); err != nil {
		return nil, err
	}
	var diags schema.Diagnostics
	s := &settings{version: defaultVersion, timeout: defaultTimeout, deployments: map[string]string{}}

	if raw.URL == nil || strings.TrimSpace(*raw.URL) == "" {
		diags = append(diags, schema.Diagnostic{Summary: "missing url",
			Detail: `url is the watsonx.ai endpoint of the region, e.g. "https://us-south.ml.cloud.ibm.com"`, Path: []string{"url"}})
	} else if u, ok := baseURL(*raw.URL); ok {
		s.baseURL = u
	} else {
		diags = append(diags, schema.Diagnostic{Summary: "invalid url",
			Detail: "url must be an absolute http(s) URL without a query", Path: []string{"url"}})
	}

	iam := defaultIAMURL
	if raw.IAMURL != nil {
		iam = *raw.IAMURL
	}
	iamURL, ok := baseURL(iam)
	if !ok {
		diags = append(diags, schema.Diagnostic{Summary: "invalid iam_url",
			Detail: "iam_url must be an absolute http(s) URL without a query, e.g. " + defaultIAMURL, Path: []string{"iam_url"}})
	}

	if raw.ProjectID != nil {
		s.projectID = strings.TrimSpace(*raw.ProjectID)
	}
	if raw.SpaceID != nil {
		s.spaceID = strings.TrimSpace(*raw.SpaceID)
	}
	if s.projectID != "" && s.spaceID != "" {
		diags = append(diags, schema.Diagnostic{Summary: "project_id and space_id are exclusive",
			Detail: "set exactly one of project_id and space_id", Path: []string{"space_id"}})
	}

	if raw.Version != nil {
		s.version = strings.TrimSpace(*raw.Version)
		if !versionDate.MatchString(s.version) {
			diags = append(diags, schema.Diagnostic{Summary: "invalid version",
				Detail: `version is an API version date such as "` + defaultVersion + `"`, Path: []string{"version"}})
		}
	}
	if raw.Timeout != nil {
		d, err := time.ParseDuration(*raw.Timeout)
		if err != nil || d <= 0 {
			diags = append(diags, schema.Diagnostic{Summary: "invalid timeout",
				Detail: `timeout must be a positive Go duration such as "90s"`, Path: []string{"timeout"}})
		}
		s.timeout = d
	}
	for model, id := range raw.Deployments {
		id = strings.TrimSpace(id)
		if model == "" || id == "" || strings.ContainsAny(id, "/?#") {
			diags = append(diags, schema.Diagnostic{Summary: "invalid deployments entry",
				Detail: "each entry maps a model name to a deployment id or serving name without '/', '?' or '#'", Path: []string{"deployments"}})
			break
		}
		s.deployments[model] = id
	}

	apiKey := cfg.Credentials["api_key"]
	var profile *trustedProfile
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return strings.TrimSpace(*p)
	}
	switch mode := str(raw.Auth); mode {
	case "", "api_key":
		if strings.TrimSpace(apiKey) == "" {
			diags = append(diags, schema.Diagnostic{Summary: "missing credential api_key",
				Detail: "the watsonx provider needs an IBM Cloud API key, exchanged for IAM tokens", Path: []string{"credentials", "api_key"}})
		}
	case "workload_identity":
		profile = &trustedProfile{id: str(raw.ProfileID), name: str(raw.ProfileName), tokenFile: str(raw.CRTokenFile)}
		if apiKey != "" {
			diags = append(diags, schema.Diagnostic{Summary: `auth = "workload_identity" takes no api_key`,
				Detail: "the identity is the trusted profile of the pod's compute-resource token", Path: []string{"auth"}})
		}
		if (profile.id == "") == (profile.name == "") {
			diags = append(diags, schema.Diagnostic{Summary: "set exactly one of trusted_profile_id and trusted_profile_name",
				Detail: `auth = "workload_identity" exchanges the compute-resource token for a trusted profile`, Path: []string{"trusted_profile_id"}})
		}
		if profile.tokenFile == "" {
			profile.tokenFile = defaultCRTokenFile
			if _, err := os.Stat(defaultCRTokenFile); err != nil {
				profile.tokenFile = altCRTokenFile
			}
		}
	default:
		diags = append(diags, schema.Diagnostic{Summary: `auth must be "api_key" or "workload_identity"`, Detail: fmt.Sprintf("got %q", mode), Path: []string{"auth"}})
	}
	if diags.HasErrors() {
		return nil, diags
	}
	s.client = &http.Client{Transport: provider.Transport(relay.NewTransport(s.timeout))}
	s.tokens = newTokenSource(iamURL, apiKey, s.client)
	s.tokens.profile = profile
	return s, nil
}

// baseURL parses an endpoint URL without a trailing slash.
func baseURL(raw string) (*url.URL, bool) {
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(raw), "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, false
	}
	return u, true
}
