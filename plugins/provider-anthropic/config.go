package main

import (
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/relay"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// Defaults for the config block.
const (
	defaultBaseURL   = "https://api.anthropic.com"
	defaultVersion   = "2023-06-01"
	defaultMaxTokens = 4096
	defaultTimeout   = 10 * time.Minute
)

// configSchema is the schema of the instance's config block.
var configSchema = schema.Schema{Attributes: []schema.Attribute{
	{Name: "base_url", Type: "string", Description: `Messages API base URL (default "` + defaultBaseURL + `").`},
	{Name: "anthropic_version", Type: "string", Description: `Value of the anthropic-version header (default "` + defaultVersion + `").`},
	{Name: "default_max_tokens", Type: "number", Description: "max_tokens sent when the client sets neither max_tokens nor max_completion_tokens (default 4096)."},
	{Name: "timeout", Type: "string", Description: `Upstream timeout, a Go duration such as "90s": the whole call for non-streamed requests, the wait for the response headers for streams (default "10m").`},
	{Name: "beta", Type: "list(string)", Description: "Beta names sent in the anthropic-beta header."},
}}

// credentials are the secrets an instance needs.
var credentials = []schema.Credential{
	{Name: "api_key", Description: "Anthropic API key, sent as x-api-key.", Required: true},
}

// rawConfig is the config block as the host sends it: absent attributes
// arrive as null.
type rawConfig struct {
	BaseURL          *string  `json:"base_url"`
	AnthropicVersion *string  `json:"anthropic_version"`
	DefaultMaxTokens *float64 `json:"default_max_tokens"`
	Timeout          *string  `json:"timeout"`
	Beta             []string `json:"beta"`
}

// settings is a validated configuration with its HTTP client. A new
// settings value replaces the old one atomically on Configure.
type settings struct {
	baseURL   *url.URL
	version   string
	maxTokens int
	timeout   time.Duration
	beta      string
	apiKey    string
	client    *http.Client
}

// parseConfig validates cfg and builds settings from it.
func parseConfig(cfg *provider.Config) (*settings, error) {
	var raw rawConfig
	if err := cfg.Decode(&raw); err != nil {
		return nil, err
	}
	var diags schema.Diagnostics
	s := &settings{version: defaultVersion, maxTokens: defaultMaxTokens, timeout: defaultTimeout}

	base := defaultBaseURL
	if raw.BaseURL != nil {
		base = *raw.BaseURL
	}
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		diags = append(diags, schema.Diagnostic{Summary: "invalid base_url",
			Detail: "base_url must be an absolute http(s) URL without a query, e.g. " + defaultBaseURL, Path: []string{"base_url"}})
	}
	s.baseURL = u

	if raw.AnthropicVersion != nil {
		s.version = strings.TrimSpace(*raw.AnthropicVersion)
		if s.version == "" {
			diags = append(diags, schema.Diagnostic{Summary: "anthropic_version must not be empty", Path: []string{"anthropic_version"}})
		}
	}
	if raw.DefaultMaxTokens != nil {
		n := *raw.DefaultMaxTokens
		if n < 1 || n != math.Trunc(n) || n > math.MaxInt32 {
			diags = append(diags, schema.Diagnostic{Summary: "default_max_tokens must be a positive whole number", Path: []string{"default_max_tokens"}})
		}
		s.maxTokens = int(n)
	}
	if raw.Timeout != nil {
		d, err := time.ParseDuration(*raw.Timeout)
		if err != nil || d <= 0 {
			diags = append(diags, schema.Diagnostic{Summary: "invalid timeout",
				Detail: "timeout must be a positive Go duration such as \"90s\"", Path: []string{"timeout"}})
		}
		s.timeout = d
	}
	for i, b := range raw.Beta {
		b = strings.TrimSpace(b)
		if b == "" || strings.ContainsAny(b, ", \t") {
			diags = append(diags, schema.Diagnostic{Summary: "invalid beta name",
				Detail: "each beta must be one non-empty name without commas or spaces", Path: []string{"beta"}})
			break
		}
		raw.Beta[i] = b
	}
	s.beta = strings.Join(raw.Beta, ",")

	s.apiKey = cfg.Credentials["api_key"]
	if strings.TrimSpace(s.apiKey) == "" {
		diags = append(diags, schema.Diagnostic{Summary: "missing credential api_key",
			Detail: "the anthropic provider needs an API key, sent as x-api-key", Path: []string{"credentials", "api_key"}})
	}
	if diags.HasErrors() {
		return nil, diags
	}
	s.client = &http.Client{Transport: provider.Transport(relay.NewTransport(s.timeout))}
	return s, nil
}
