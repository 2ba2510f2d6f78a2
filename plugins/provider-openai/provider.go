package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/relay"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// Version is the plugin's version.
const Version = "0.1.0"

// Defaults of the config attributes.
const (
	DefaultBaseURL = "https://api.openai.com/v1"
	DefaultTimeout = 10 * time.Minute
)

// CredentialAPIKey is the name of the credential holding the upstream key.
const CredentialAPIKey = "api_key"

// OpenAI is the provider plugin for the OpenAI API and servers that speak
// it. The zero value is ready for Describe and Configure; data-plane
// calls fail with 503 until a Configure succeeds.
type OpenAI struct {
	cur atomic.Pointer[upstream]
}

var (
	_ provider.Provider      = (*OpenAI)(nil)
	_ provider.Embedder      = (*OpenAI)(nil)
	_ provider.ModelLister   = (*OpenAI)(nil)
	_ provider.Passthrougher = (*OpenAI)(nil)
	_ provider.HealthChecker = (*OpenAI)(nil)
	_ provider.Planner       = (*OpenAI)(nil)
)

// config is the instance's config block as the host sends it.
type config struct {
	BaseURL      string            `json:"base_url"`
	Organization string            `json:"organization"`
	Project      string            `json:"project"`
	Timeout      string            `json:"timeout"`
	Headers      map[string]string `json:"headers"`
	// Forward is nil when unset (true).
	Forward *bool `json:"forward"`
}

// upstream is everything a request needs, resolved from one Configure.
// It is immutable once built, so a Configure swaps it atomically.
type upstream struct {
	chatURL       string
	embeddingsURL string
	modelsURL     string
	origin        *url.URL
	timeout       time.Duration
	// header holds the headers every upstream request carries:
	// Authorization, OpenAI-Organization, OpenAI-Project and the
	// configured extras. Its value slices are shared read-only.
	header http.Header
	client *http.Client
	proxy  *httputil.ReverseProxy
	// fast is the origin of the lean client (fast.go); useFast is false
	// when calls must go through client instead. While the host traces,
	// calls go through client too, which carries the trace upstream.
	fast    relay.Origin
	useFast bool
	// plan is what the host forwards on; nil when calls must come to
	// the plugin.
	plan *provider.Plan
}

// transport is the one connection pool of the plugin, shared by every
// configuration so that a key rotation keeps warm connections.
var transport = &http.Transport{
	Proxy: http.ProxyFromEnvironment,
	DialContext: (&net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
	}).DialContext,
	ForceAttemptHTTP2:     true,
	MaxIdleConns:          1024,
	MaxIdleConnsPerHost:   256,
	IdleConnTimeout:       90 * time.Second,
	TLSHandshakeTimeout:   10 * time.Second,
	ExpectContinueTimeout: time.Second,
	ReadBufferSize:        64 << 10,
	WriteBufferSize:       64 << 10,
}

// Describe implements provider.Provider.
func (p *OpenAI) Describe(context.Context) (*provider.Description, error) {
	return &provider.Description{
		Name:         "openai",
		Version:      Version,
		Capabilities: []string{provider.CapDocuments},
		ConfigSchema: schema.Schema{Attributes: []schema.Attribute{
			{Name: "base_url", Type: "string", Description: `API base URL including the version path (default "` + DefaultBaseURL + `").`},
			{Name: "organization", Type: "string", Description: "OpenAI organization id, sent as OpenAI-Organization."},
			{Name: "project", Type: "string", Description: "OpenAI project id, sent as OpenAI-Project."},
			{Name: "timeout", Type: "string", Description: `Upper bound of one upstream request, streams included, as a Go duration (default "10m").`},
			{Name: "headers", Type: "map(string)", Description: "Extra headers sent with every upstream request."},
			{Name: "forward", Type: "bool", Description: "Let the host send chat and embeddings calls to the upstream itself, on the plugin's forwarding plan, " +
				"instead of through the plugin (default true). False keeps every upstream call in the plugin process."},
		}},
		Credentials: []schema.Credential{
			{Name: CredentialAPIKey, Description: "OpenAI API key, sent as Authorization: Bearer.", Required: true},
		},
		Models: []openai.Model{
			{ID: "gpt-4o", Object: openai.ObjectModel, OwnedBy: "openai"},
			{ID: "gpt-4o-mini", Object: openai.ObjectModel, OwnedBy: "openai"},
			{ID: "gpt-4.1", Object: openai.ObjectModel, OwnedBy: "openai"},
			{ID: "text-embedding-3-small", Object: openai.ObjectModel, OwnedBy: "openai"},
			{ID: "text-embedding-3-large", Object: openai.ObjectModel, OwnedBy: "openai"},
		},
	}, nil
}

// Configure implements provider.Provider. It validates the config and
// credentials and, when they are good, swaps them in atomically: requests
// in flight finish with the settings they started with.
func (p *OpenAI) Configure(_ context.Context, cfg *provider.Config) error {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	u, diags := newUpstream(&c, cfg.Credentials[CredentialAPIKey])
	if diags.HasErrors() {
		return diags
	}
	p.cur.Store(u)
	if len(diags) > 0 {
		return diags
	}
	return nil
}

// newUpstream validates c and the key and builds the upstream settings.
func newUpstream(c *config, apiKey string) (*upstream, schema.Diagnostics) {
	var diags schema.Diagnostics
	u := &upstream{timeout: DefaultTimeout, header: http.Header{}}

	base := strings.TrimRight(strings.TrimSpace(c.BaseURL), "/")
	if base == "" {
		base = DefaultBaseURL
	}
	parsed, err := url.Parse(base)
	switch {
	case err != nil:
		diags = append(diags, schema.Diagnostic{Summary: "base_url is not a URL", Detail: err.Error(), Path: []string{"base_url"}})
	case parsed.Scheme != "http" && parsed.Scheme != "https":
		diags = append(diags, schema.Diagnostic{Summary: "base_url must be an http or https URL",
			Detail: fmt.Sprintf("got scheme %q", parsed.Scheme), Path: []string{"base_url"}})
	case parsed.Host == "":
		diags = append(diags, schema.Diagnostic{Summary: "base_url has no host", Path: []string{"base_url"}})
	case parsed.RawQuery != "" || parsed.Fragment != "" || parsed.User != nil:
		diags = append(diags, schema.Diagnostic{Summary: "base_url must not carry a query, fragment or user info", Path: []string{"base_url"}})
	default:
		u.chatURL = base + "/chat/completions"
		u.embeddingsURL = base + "/embeddings"
		u.modelsURL = base + "/models"
		u.origin = &url.URL{Scheme: parsed.Scheme, Host: parsed.Host}
	}

	if t := strings.TrimSpace(c.Timeout); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d <= 0 {
			diags = append(diags, schema.Diagnostic{Summary: "timeout must be a positive Go duration such as \"90s\" or \"10m\"",
				Detail: fmt.Sprintf("got %q", t), Path: []string{"timeout"}})
		} else {
			u.timeout = d
		}
	}

	for name, value := range c.Headers {
		switch {
		case !validHeaderName(name):
			diags = append(diags, schema.Diagnostic{Summary: fmt.Sprintf("%q is not a valid header name", name), Path: []string{"headers", name}})
		case reservedHeader(name):
			diags = append(diags, schema.Diagnostic{Summary: fmt.Sprintf("header %q is set by the plugin and cannot be configured", name),
				Path: []string{"headers", name}})
		case strings.ContainsAny(value, "\r\n\x00"):
			diags = append(diags, schema.Diagnostic{Summary: fmt.Sprintf("value of header %q contains a line break or NUL", name), Path: []string{"headers", name}})
		default:
			u.header[http.CanonicalHeaderKey(name)] = []string{value}
		}
	}

	if strings.TrimSpace(apiKey) == "" {
		diags = append(diags, schema.Diagnostic{Summary: "credential api_key is required",
			Detail: "configure a credential strategy that yields the OpenAI API key"})
	} else if strings.ContainsAny(apiKey, "\r\n\x00") {
		diags = append(diags, schema.Diagnostic{Summary: "credential api_key contains a line break or NUL"})
	}
	if diags.HasErrors() {
		return nil, diags
	}

	u.header["Authorization"] = []string{"Bearer " + strings.TrimSpace(apiKey)}
	if c.Organization != "" {
		u.header["Openai-Organization"] = []string{c.Organization}
	}
	if c.Project != "" {
		u.header["Openai-Project"] = []string{c.Project}
	}
	u.client = &http.Client{Transport: provider.Transport(transport), Timeout: u.timeout}
	u.fast, u.useFast = relay.OriginOf(u.origin)
	u.proxy = u.newProxy()
	if u.useFast && (c.Forward == nil || *c.Forward) {
		u.plan = u.newPlan()
	}
	return u, diags
}

// newPlan is the forwarding plan of u: chat and embeddings go to their
// URLs with u's headers, the model set to the routed one, and errors
// mapped as OpenAI's. Upstreams behind a proxy get no plan (the host's
// client does not use proxies).
func (u *upstream) newPlan() *provider.Plan {
	h := make(map[string]string, len(u.header))
	for k, v := range u.header {
		h[k] = v[0]
	}
	return &provider.Plan{
		Version:        provider.PlanVersion,
		Name:           "openai",
		URLs:           map[string]string{provider.OpChat: u.chatURL, provider.OpEmbeddings: u.embeddingsURL},
		Header:         h,
		ModelRewrite:   provider.RewriteModel,
		ErrorMapping:   provider.MappingOpenAI,
		RelayedHeaders: relayedHeaders,
		Timeout:        u.timeout,
	}
}

// Plan implements provider.Planner: the plan of the current
// configuration, nil before Configure or when forward is false.
func (p *OpenAI) Plan(context.Context) (*provider.Plan, error) {
	u := p.cur.Load()
	if u == nil {
		return nil, nil
	}
	return u.plan, nil
}

// reservedHeader reports whether name is a header the plugin owns.
func reservedHeader(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Authorization", "Openai-Organization", "Openai-Project", "Content-Type", "Content-Length",
		"Host", "Connection", "Transfer-Encoding":
		return true
	}
	return false
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// errNotConfigured is returned by data-plane calls before Configure.
var errNotConfigured = openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "provider_not_configured",
	"the openai provider has not been configured")

// settings returns the current upstream settings.
func (p *OpenAI) settings() (*upstream, error) {
	u := p.cur.Load()
	if u == nil {
		return nil, errNotConfigured
	}
	return u, nil
}

// Health implements provider.HealthChecker. It is cheap by design: it
// checks that a configuration is in place and makes no upstream call.
func (p *OpenAI) Health(context.Context) error {
	if p.cur.Load() == nil {
		return errors.New("openai: not configured")
	}
	return nil
}
