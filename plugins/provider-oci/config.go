package main

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/oracle/oci-go-sdk/v65/common"
	"github.com/oracle/oci-go-sdk/v65/common/auth"

	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/relay"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// Defaults for the config block.
const (
	defaultAuth      = authAPIKey
	defaultProfile   = "DEFAULT"
	defaultMaxTokens = 4000
	defaultTimeout   = 10 * time.Minute
	defaultUsageWait = 2 * time.Second
)

// Authentication modes of the auth attribute.
const (
	authAPIKey            = "api_key"
	authConfigFile        = "config_file"
	authInstancePrincipal = "instance_principal"
	authResourcePrincipal = "resource_principal"
	authWorkloadIdentity  = "workload_identity"
)

// configSchema is the schema of the instance's config block.
var configSchema = schema.Schema{Attributes: []schema.Attribute{
	{Name: "region", Type: "string", Description: `OCI region, e.g. "us-chicago-1"; taken from the config file or the principal when absent.`},
	{Name: "endpoint", Type: "string", Description: "Inference base URL (default https://inference.generativeai.{region}.oci.oraclecloud.com)."},
	{Name: "management_endpoint", Type: "string", Description: "Management API base URL for the model list (default https://generativeai.{region}.oci.oraclecloud.com)."},
	{Name: "compartment_id", Type: "string", Description: "OCID of the compartment the requests are billed to.", Required: true},
	{Name: "auth", Type: "string", Description: `How requests are signed: "api_key" (default, the credentials), "config_file", "instance_principal", "resource_principal" or "workload_identity".`},
	{Name: "config_file", Type: "string", Description: `OCI CLI config file for auth = "config_file" (default ~/.oci/config).`},
	{Name: "profile", Type: "string", Description: `Profile of the config file (default "DEFAULT").`},
	{Name: "default_max_tokens", Type: "number", Description: "maxTokens sent when the client sets neither max_tokens nor max_completion_tokens; OCI's own default is tiny (default 4000)."},
	{Name: "dedicated_api_format", Type: "map(string)", Description: `API format ("GENERIC" or "COHERE") per dedicated endpoint OCID used as a model id; GENERIC when absent.`},
	{Name: "timeout", Type: "string", Description: `Upstream timeout, a Go duration such as "90s": the whole call for non-streamed requests, the wait for the response headers for streams (default "10m").`},
	{Name: "stream_usage_wait", Type: "string", Description: `How long a stream waits after the finish event for the usage event before it ends, since OCI may hold the connection open (default "2s").`},
}}

// credentials are the secrets an api_key instance needs.
var credentials = []schema.Credential{
	{Name: "tenancy_ocid", Description: "Tenancy OCID (auth = api_key)."},
	{Name: "user_ocid", Description: "User OCID (auth = api_key)."},
	{Name: "fingerprint", Description: "Fingerprint of the API signing key (auth = api_key)."},
	{Name: "private_key", Description: "PEM of the API signing key (auth = api_key)."},
	{Name: "private_key_passphrase", Description: "Passphrase of an encrypted private key (api_key or config_file)."},
}

// rawConfig is the config block as the host sends it: absent attributes
// arrive as null.
type rawConfig struct {
	Region             *string           `json:"region"`
	Endpoint           *string           `json:"endpoint"`
	ManagementEndpoint *string           `json:"management_endpoint"`
	CompartmentID      *string           `json:"compartment_id"`
	Auth               *string           `json:"auth"`
	ConfigFile         *string           `json:"config_file"`
	Profile            *string           `json:"profile"`
	DefaultMaxTokens   *float64          `json:"default_max_tokens"`
	DedicatedFormat    map[string]string `json:"dedicated_api_format"`
	Timeout            *string           `json:"timeout"`
	StreamUsageWait    *string           `json:"stream_usage_wait"`
}

// settings is a validated configuration with its signer and HTTP client.
// A new settings value replaces the old one atomically on Configure.
type settings struct {
	endpoint      *url.URL
	management    *url.URL
	region        string
	compartmentID string
	maxTokens     int
	dedicated     map[string]string
	timeout       time.Duration
	usageWait     time.Duration
	signer        common.HTTPRequestSigner
	// secrets are values that must never reach a log or a client.
	secrets []string
	client  *http.Client
}

// keySource is what the signer needs from a configuration provider.
type keySource interface {
	common.KeyProvider
	Region() (string, error)
}

// newKeySource builds the oci-go-sdk configuration provider for an auth
// mode.
func newKeySource(mode string, raw *rawConfig, creds map[string]string) (keySource, error) {
	switch mode {
	case authAPIKey:
		var pass *string
		if p := creds["private_key_passphrase"]; p != "" {
			pass = &p
		}
		region := ""
		if raw.Region != nil {
			region = *raw.Region
		}
		return common.NewRawConfigurationProvider(creds["tenancy_ocid"], creds["user_ocid"], region,
			creds["fingerprint"], creds["private_key"], pass), nil
	case authConfigFile:
		path := "~/.oci/config"
		if raw.ConfigFile != nil && *raw.ConfigFile != "" {
			path = *raw.ConfigFile
		}
		if strings.HasPrefix(path, "~/") {
			if home, err := os.UserHomeDir(); err == nil {
				path = filepath.Join(home, path[2:])
			}
		}
		profile := defaultProfile
		if raw.Profile != nil && *raw.Profile != "" {
			profile = *raw.Profile
		}
		return common.ConfigurationProviderFromFileWithProfile(path, profile, creds["private_key_passphrase"])
	case authInstancePrincipal:
		return auth.InstancePrincipalConfigurationProvider()
	case authResourcePrincipal:
		return auth.ResourcePrincipalConfigurationProvider()
	case authWorkloadIdentity:
		return auth.OkeWorkloadIdentityConfigurationProvider()
	}
	return nil, fmt.Errorf("unknown auth mode %q", mode)
}

// parseConfig validates cfg and builds settings from it.
func parseConfig(cfg *provider.Config) (*settings, error) {
	var raw rawConfig
	if err := cfg.Decode(&raw); err != nil {
		return nil, err
	}
	var diags schema.Diagnostics
	bad := func(path, summary, detail string) {
		diags = append(diags, schema.Diagnostic{Summary: summary, Detail: detail, Path: []string{path}})
	}
	s := &settings{maxTokens: defaultMaxTokens, timeout: defaultTimeout, usageWait: defaultUsageWait, dedicated: map[string]string{}}

	if raw.CompartmentID == nil || strings.TrimSpace(*raw.CompartmentID) == "" {
		bad("compartment_id", "missing compartment_id", "OCI Generative AI bills every request to a compartment; set its OCID")
	} else {
		s.compartmentID = strings.TrimSpace(*raw.CompartmentID)
	}
	mode := defaultAuth
	if raw.Auth != nil && *raw.Auth != "" {
		mode = *raw.Auth
	}
	switch mode {
	case authAPIKey, authConfigFile, authInstancePrincipal, authResourcePrincipal, authWorkloadIdentity:
	default:
		bad("auth", "invalid auth", fmt.Sprintf("auth %q must be one of api_key, config_file, instance_principal, resource_principal, workload_identity", mode))
	}
	if raw.DefaultMaxTokens != nil {
		n := *raw.DefaultMaxTokens
		if n < 1 || n != math.Trunc(n) || n > math.MaxInt32 {
			bad("default_max_tokens", "default_max_tokens must be a positive whole number", "")
		}
		s.maxTokens = int(n)
	}
	for id, f := range raw.DedicatedFormat {
		f = strings.ToUpper(strings.TrimSpace(f))
		if f != formatGeneric && f != formatCohere {
			bad("dedicated_api_format", "invalid dedicated_api_format", fmt.Sprintf("format of %s must be GENERIC or COHERE, not %q", id, f))
		}
		s.dedicated[id] = f
	}
	duration := func(name string, v *string, dst *time.Duration) {
		if v == nil {
			return
		}
		d, err := time.ParseDuration(*v)
		if err != nil || d <= 0 {
			bad(name, "invalid "+name, name+" must be a positive Go duration such as \"90s\"")
		}
		*dst = d
	}
	duration("timeout", raw.Timeout, &s.timeout)
	duration("stream_usage_wait", raw.StreamUsageWait, &s.usageWait)

	if mode == authAPIKey {
		for _, name := range []string{"tenancy_ocid", "user_ocid", "fingerprint", "private_key"} {
			if strings.TrimSpace(cfg.Credentials[name]) == "" {
				diags = append(diags, schema.Diagnostic{Summary: "missing credential " + name,
					Detail: "auth = \"api_key\" signs requests with tenancy_ocid, user_ocid, fingerprint and private_key",
					Path:   []string{"credentials", name}})
			}
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}

	src, err := newKeySource(mode, &raw, cfg.Credentials)
	if err != nil {
		return nil, schema.Errorf([]string{"auth"}, "cannot set up OCI %s authentication: %s", mode, redact(err.Error(), cfg.Credentials))
	}
	// A key that does not parse fails here, not on the first request.
	// Principals obtain their session key and token from OCI on first
	// use: a refused token exchange then fails requests with 401, which
	// the host reports as an upstream credential failure.
	if mode == authAPIKey || mode == authConfigFile {
		if _, err := src.PrivateRSAKey(); err != nil {
			path := []string{"auth"}
			if mode == authAPIKey {
				path = []string{"credentials", "private_key"}
			}
			return nil, schema.Errorf(path, "cannot load the OCI signing key: %s", redact(err.Error(), cfg.Credentials))
		}
		if _, err := src.KeyID(); err != nil {
			return nil, schema.Errorf([]string{"auth"}, "cannot build the OCI key id: %s", redact(err.Error(), cfg.Credentials))
		}
	}
	s.signer = common.DefaultRequestSigner(src)

	if raw.Region != nil {
		s.region = strings.TrimSpace(*raw.Region)
	}
	if s.region == "" {
		if r, err := src.Region(); err == nil {
			s.region = r
		}
	}
	endpoint := ""
	if raw.Endpoint != nil {
		endpoint = *raw.Endpoint
	}
	if endpoint == "" {
		if s.region == "" {
			return nil, schema.Errorf([]string{"region"}, "set region (or endpoint): the inference host is inference.generativeai.{region}.oci.oraclecloud.com")
		}
		endpoint = "https://inference.generativeai." + s.region + ".oci.oraclecloud.com"
	}
	if s.endpoint, err = baseURL(endpoint); err != nil {
		return nil, schema.Errorf([]string{"endpoint"}, "invalid endpoint: %v", err)
	}
	management := ""
	if raw.ManagementEndpoint != nil {
		management = *raw.ManagementEndpoint
	}
	switch {
	case management != "":
	case raw.Endpoint != nil && *raw.Endpoint != "":
		// An overridden inference host (a proxy, a test fake) serves both.
		management = endpoint
	default:
		management = "https://generativeai." + s.region + ".oci.oraclecloud.com"
	}
	if s.management, err = baseURL(management); err != nil {
		return nil, schema.Errorf([]string{"management_endpoint"}, "invalid management_endpoint: %v", err)
	}

	for _, name := range []string{"private_key", "private_key_passphrase"} {
		if v := cfg.Credentials[name]; v != "" {
			s.secrets = append(s.secrets, v)
		}
	}
	s.client = &http.Client{Transport: provider.Transport(relay.NewTransport(s.timeout))}
	return s, nil
}

// baseURL parses an absolute http(s) URL without a query.
func baseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("%q must be an absolute http(s) URL without a query", raw)
	}
	return u, nil
}

// redact removes secret credential values from a message.
func redact(msg string, creds map[string]string) string {
	for _, name := range []string{"private_key", "private_key_passphrase"} {
		if v := creds[name]; len(v) >= 4 {
			msg = strings.ReplaceAll(msg, v, "[redacted]")
		}
	}
	return msg
}
