// Package config reads llmproxy's HCL configuration.
//
// Host-owned blocks (server, logging, api_key, plugin, provider, storage,
// route, documents) are decoded with gohcl into the types below. Each
// instance's `config { }` block is kept as an hcl.Body and decoded later,
// once the instance's plugin has said what it accepts (see DecodeInstance),
// so that plugin-specific mistakes are still reported at file:line:column.
// Expressions may call env("NAME") or env("NAME", "default") and
// file("path").
package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"

	"github.com/llmproxy/llmproxy/host/internal/document"
	"github.com/llmproxy/llmproxy/host/internal/price"
	"github.com/llmproxy/llmproxy/host/internal/ratelimit"
	"github.com/llmproxy/llmproxy/host/internal/telemetry"
)

// File is a whole configuration file.
type File struct {
	// Server is never nil after Parse: a file without a server block
	// gets every default.
	Server    *Server    `hcl:"server,block"`
	Logging   *Logging   `hcl:"logging,block"`
	APIKeys   []APIKey   `hcl:"api_key,block"`
	Plugins   []Plugin   `hcl:"plugin,block"`
	Providers []Instance `hcl:"provider,block"`
	Storage   []Instance `hcl:"storage,block"`
	// Secrets are secret stores served by secrets plugins, referred to
	// by name from credential sources: from "<name>" { ... }.
	Secrets   []Instance        `hcl:"secrets,block"`
	Routes    []Route           `hcl:"route,block"`
	Documents *document.Config  `hcl:"documents,block"`
	Telemetry *telemetry.Config `hcl:"telemetry,block"`
	// Store is where stored keys, usage records and stored responses
	// live; nil when the config has no store block.
	Store *Store `hcl:"store,block"`
	// Limits and CircuitBreaker are nil when absent: no limits, no
	// ejection.
	Limits         *Limits         `hcl:"limits,block"`
	CircuitBreaker *CircuitBreaker `hcl:"circuit_breaker,block"`

	// Middleware are middleware instances: plugins that see, rewrite or
	// veto chat requests and their answers. Routes and API keys name
	// them in their middleware lists.
	Middleware []Instance `hcl:"middleware,block"`

	// Cache is where the exact response cache keeps answers; nil keeps
	// them in memory with the defaults when a route or key opts in.
	Cache *Cache `hcl:"cache,block"`
	// Responses keeps the responses of /v1/responses; nil keeps none.
	Responses *Responses `hcl:"responses,block"`
	// KeyGroups are budgets shared by the keys of a group; Prices and
	// Budgets configure costing and budget enforcement (nil: defaults).
	KeyGroups []KeyGroup `hcl:"key_group,block"`
	Prices    *Prices    `hcl:"prices,block"`
	Budgets   *Budgets   `hcl:"budgets,block"`
	// Price are price blocks written at the top level, as in a price
	// file; they count as inline prices.
	Price []price.Entry `hcl:"price,block"`

	// Path is where the file was read from ("<embedded>" for the default).
	Path string
	// Parser holds the parsed sources, for printing diagnostics with
	// snippets.
	Parser *hclparse.Parser

	// ranges are source positions by path: "server", "server.listen",
	// "logging.format", "documents", "api_key[0]" … (see Range).
	ranges map[string]hcl.Range
}

// Range returns where the block or attribute at path starts, e.g.
// "server.request_timeout", "documents" or "api_key[1]" (the second
// api_key block), or nil when the file does not have it.
func (f *File) Range(path string) *hcl.Range {
	r, ok := f.ranges[path]
	if !ok {
		return nil
	}
	return &r
}

// Server configures the HTTP listener. Every attribute is optional; Parse
// fills in the defaults (see DefaultListen, DefaultPluginsDir and the
// other Default constants).
type Server struct {
	Listen string `hcl:"listen,optional"`
	// PublicURL is how clients reach the host; presigned URLs of the local
	// storage backend point at it. Defaults to http://<listen>.
	PublicURL string `hcl:"public_url,optional"`
	// PluginsDir is where plugin binaries are looked for. A relative
	// path in the file is relative to the file's directory; after Parse
	// it is absolute.
	PluginsDir     string `hcl:"plugins_dir,optional"`
	MaxBodyBytes   int    `hcl:"max_body_bytes,optional"`
	RequestTimeout string `hcl:"request_timeout,optional"`
	// ShutdownGrace bounds how long in-flight requests may run after
	// SIGTERM.
	ShutdownGrace string `hcl:"shutdown_grace,optional"`
	// DrainDelay is how long the host keeps accepting requests after
	// SIGTERM while /readyz answers 503, so that load balancers stop
	// sending traffic before the listener closes.
	DrainDelay string `hcl:"drain_delay,optional"`
	// ReadTimeout bounds reading a request's headers and any body up to
	// max_body_bytes; ReadIdleTimeout bounds the wait for the next byte
	// of a streamed upload, which may take as long as it keeps moving.
	ReadTimeout     string `hcl:"read_timeout,optional"`
	ReadIdleTimeout string `hcl:"read_idle_timeout,optional"`
	// PageTokenSecret keys the sealing of storage list page tokens, so
	// that replicas behind one load balancer accept each other's tokens;
	// empty means a random key per process.
	PageTokenSecret string `hcl:"page_token_secret,optional"`
	// Health checking of plugin processes: how often each is asked, how
	// long it may take to answer, and how many missed answers in a row get
	// the process killed and replaced (see Supervision).
	HealthInterval string `hcl:"health_interval,optional"`
	HealthTimeout  string `hcl:"health_timeout,optional"`
	HealthFailures int    `hcl:"health_failures,optional"`
	// Platform sets platform detection: "auto" (default) reads the
	// markers Kubernetes and the clouds inject and probes the cloud
	// metadata endpoints only when an instance uses auth =
	// "workload_identity" and the host does not listen on loopback only;
	// "probe" always probes; "off" detects nothing.
	Platform string `hcl:"platform,optional"`
	// Attempt bounds each try of a request against one route target;
	// routes and targets may override them (see Attempt).
	Attempt `hcl:",remain"`
}

// Attempt bounds one try of a request against one target, so that a route
// fails over in seconds rather than after request_timeout. Empty values
// inherit from the enclosing block (target → route → server).
type Attempt struct {
	// ConnectTimeout bounds the time until the plugin confirms that it is
	// running the call.
	ConnectTimeout string `hcl:"connect_timeout,optional"`
	// FirstByteTimeout bounds the time until the first byte of the answer:
	// the whole response of a non-streamed call, the first chunk of a
	// stream.
	FirstByteTimeout string `hcl:"first_byte_timeout,optional"`
	// StreamKeepalive is how long a stream may stay silent before the host
	// sends an SSE comment; the first one commits the response, ending
	// failover for that request.
	StreamKeepalive string `hcl:"stream_keepalive,optional"`
}

// Logging configures the host's hclog logger.
type Logging struct {
	Level  string `hcl:"level,optional"`
	Format string `hcl:"format,optional"`
	// AccessLog logs one line per request at info level.
	AccessLog bool `hcl:"access_log,optional"`
}

// APIKey is one client key and what it may do. Every right is an explicit
// list that fails closed: an empty or missing list grants nothing, and
// "*" grants everything of its kind.
type APIKey struct {
	Name string `hcl:"name,label"`
	// Key is the secret itself (usually env("...")); KeySHA256 is its hex
	// SHA-256, for configs that should not hold the secret.
	Key       string `hcl:"key,optional"`
	KeySHA256 string `hcl:"key_sha256,optional"`
	// Models are model name patterns the key may use in protocol mode
	// (/v1/...).
	Models []string `hcl:"models,optional"`
	// Passthrough are provider instance name patterns the key may use in
	// transparent mode (/-{type}/{instance}/{native path}).
	Passthrough []string `hcl:"passthrough,optional"`
	// Instances are storage instance name patterns the key may address,
	// over the storage API and from document references in chats.
	Instances []string `hcl:"instances,optional"`
	// StorageOps are the operations (put, get, head, list, delete,
	// presign, or "*") the key may perform on those instances. A presign
	// also needs the right of the method it signs (get or put).
	StorageOps []string `hcl:"storage_ops,optional"`
	// Admin keys see instance details in /readyz.
	Admin bool `hcl:"admin,optional"`
	// Middleware names the middleware instances that run, in order, on
	// every chat request of this key, before those of the route.
	Middleware []string `hcl:"middleware,optional"`
	// Cache opts the key's chat requests into the exact response cache
	// on every route, with the cache block's ttl where the route has none.
	Cache bool `hcl:"cache,optional"`
	// Group names the key_group whose budget the key also counts
	// against; Budget is the key's own.
	Group  string  `hcl:"group,optional"`
	Budget *Budget `hcl:"budget,block"`
	// Limits are the key's own rate limits (rpm, rps, tpm, concurrent),
	// applied besides the rules of the limits block.
	Limits *ratelimit.KeyLimits `hcl:"limits,block"`

	// DeclRange is where the block starts and AttrRanges where each of its
	// attributes is, for diagnostics; OpRanges are the positions of the
	// storage_ops elements when written as a list literal.
	DeclRange  hcl.Range
	AttrRanges map[string]hcl.Range
	OpRanges   []hcl.Range
}

// StorageOps are the operation names of the storage API, in the order
// the docs list them.
var StorageOps = []string{"put", "get", "head", "list", "delete", "presign"}

// Plugin pins or relocates one plugin binary.
type Plugin struct {
	// Name is the plugin binary's type suffix, e.g. "provider-openai".
	Name   string `hcl:"name,label"`
	Path   string `hcl:"path,optional"`
	SHA256 string `hcl:"sha256,optional"`
}

// Instance is a configured provider or storage instance.
type Instance struct {
	Name string `hcl:"name,label"`
	Type string `hcl:"type"`
	// Enabled defaults to true; `enabled = env("KEY", "") != ""` keeps an
	// example instance off until its credentials exist.
	Enabled *bool `hcl:"enabled,optional"`
	// Env is extra environment for the plugin process; InheritEnv names
	// host variables (glob patterns) passed through, e.g. "AWS_*".
	Env         map[string]string `hcl:"env,optional"`
	InheritEnv  []string          `hcl:"inherit_env,optional"`
	Credentials []Credential      `hcl:"credential,block"`
	Config      *Body             `hcl:"config,block"`
	// Access rules for storage instances.
	AllowedBuckets []string `hcl:"allowed_buckets,optional"`
	DeniedPrefixes []string `hcl:"denied_prefixes,optional"`
	Presign        *Presign `hcl:"presign,block"`
	// MaxObjectBytes caps the size of one uploaded object (0: no cap
	// beyond what the backend enforces).
	MaxObjectBytes int64 `hcl:"max_object_bytes,optional"`
	// HookTimeout is the budget of one hook call of a middleware instance
	// (default 2s); a call that overruns it fails its request and gets
	// the process replaced.
	HookTimeout string `hcl:"hook_timeout,optional"`

	// DeclRange is where the block starts, for diagnostics.
	DeclRange hcl.Range
}

// IsEnabled reports whether the instance should run.
func (i *Instance) IsEnabled() bool { return i.Enabled == nil || *i.Enabled }

// Presign bounds presigned URL lifetimes of a storage instance.
type Presign struct {
	DefaultTTL string `hcl:"default_ttl,optional"`
	MinTTL     string `hcl:"min_ttl,optional"`
	MaxTTL     string `hcl:"max_ttl,optional"`
}

// Body is a block whose content is decoded later.
type Body struct {
	Body hcl.Body `hcl:",remain"`
}

// Credential is one named secret and the sources tried, in order, to
// obtain it.
type Credential struct {
	Name     string   `hcl:"name,label"`
	Optional bool     `hcl:"optional,optional"`
	Sources  []Source `hcl:"from,block"`
}

// Source is one credential strategy: env, file, value, or the name of a
// secrets block whose plugin resolves the reference (path, secret, key,
// namespace, version: whichever the plugin takes).
type Source struct {
	Kind  string `hcl:"kind,label"`
	Name  string `hcl:"name,optional"`
	Path  string `hcl:"path,optional"`
	Value string `hcl:"value,optional"`
	// Field picks a JSON field from a file source, or one field of a
	// secret from a secrets backend.
	Field string `hcl:"field,optional"`
	// Secret, Key, Namespace and Version are reference attributes for
	// secrets backends (e.g. a Kubernetes secret and its key).
	Secret    string `hcl:"secret,optional"`
	Key       string `hcl:"key,optional"`
	Namespace string `hcl:"namespace,optional"`
	Version   string `hcl:"version,optional"`

	DeclRange hcl.Range
}

// Builtin reports whether the source is one the host resolves itself.
func (s Source) Builtin() bool { return s.Kind == "env" || s.Kind == "file" || s.Kind == "value" }

// Reference returns the attributes a secrets backend resolves: every set
// attribute but field, which the host applies to the result.
func (s Source) Reference() map[string]string {
	ref := map[string]string{}
	for k, v := range map[string]string{"name": s.Name, "path": s.Path, "secret": s.Secret, "key": s.Key, "namespace": s.Namespace, "version": s.Version} {
		if v != "" {
			ref[k] = v
		}
	}
	return ref
}

// Route sends a model name (or pattern) to one or more instances.
type Route struct {
	// Model is an exact name or a pattern with "*" wildcards.
	Model string `hcl:"model,label"`
	// Strategy is failover (default), round_robin, weighted,
	// least_busy, latency or cost.
	Strategy string   `hcl:"strategy,optional"`
	Aliases  []string `hcl:"aliases,optional"`
	// StickyHeader names a request header (e.g. X-Session-Id) whose
	// value pins a request to one target while that target is healthy.
	StickyHeader string   `hcl:"sticky_header,optional"`
	Retry        *Retry   `hcl:"retry,block"`
	Targets      []Target `hcl:"target,block"`
	Attempt      `hcl:",remain"`

	// Middleware names the middleware instances that run, in order, on
	// every chat request of this route, after those of the API key.
	Middleware []string `hcl:"middleware,optional"`

	// Cache opts the route into the exact response cache.
	Cache *RouteCache `hcl:"cache,block"`

	DeclRange hcl.Range
}

// Target is one instance serving a route, with the model name the
// instance knows the model by.
type Target struct {
	Instance string `hcl:"instance,label"`
	Model    string `hcl:"model,optional"`
	Weight   int    `hcl:"weight,optional"`
	// Price is the target's price per million tokens, for the cost
	// strategy.
	Price   float64 `hcl:"price,optional"`
	Attempt `hcl:",remain"`
}

// Defaults of the server block's attributes.
const (
	DefaultListen         = "127.0.0.1:8080"
	DefaultMaxBodyBytes   = 32 << 20
	DefaultRequestTimeout = 10 * time.Minute
	DefaultShutdownGrace  = 30 * time.Second
	DefaultHealthInterval = 10 * time.Second
	DefaultHealthTimeout  = 2 * time.Second
	DefaultHealthFailures = 3
	// DefaultConnectTimeout lets a healthy plugin on a loaded machine
	// confirm a call, and a stopped one fail over within seconds.
	DefaultConnectTimeout = 3 * time.Second
	// DefaultStreamKeepalive is below the 30-60 s idle timeouts of common
	// proxies and load balancers.
	DefaultStreamKeepalive = 15 * time.Second
	DefaultReadTimeout     = 5 * time.Minute
	DefaultReadIdleTimeout = time.Minute
)

// DefaultPluginsDir returns the plugins directory used when neither the
// config file nor the command line names one: the "plugins" directory
// beside the llmproxy binary when it exists (the layout `make build`
// produces in bin/), else bin/plugins under the working directory.
func DefaultPluginsDir() string {
	if exe, err := os.Executable(); err == nil {
		if exe, err := filepath.EvalSymlinks(exe); err == nil {
			dir := filepath.Join(filepath.Dir(exe), "plugins")
			if st, err := os.Stat(dir); err == nil && st.IsDir() {
				return dir
			}
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return filepath.Join("bin", "plugins")
	}
	return filepath.Join(wd, "bin", "plugins")
}

// applyDefaults fills in what the server block leaves unset and makes a
// configured plugins_dir absolute, relative to baseDir (the config file's
// directory).
func (s *Server) applyDefaults(baseDir string) {
	if s.Listen == "" {
		s.Listen = DefaultListen
	}
	if s.MaxBodyBytes <= 0 {
		s.MaxBodyBytes = DefaultMaxBodyBytes
	}
	switch {
	case s.PluginsDir == "":
		s.PluginsDir = DefaultPluginsDir()
	case !filepath.IsAbs(s.PluginsDir):
		if abs, err := filepath.Abs(filepath.Join(baseDir, s.PluginsDir)); err == nil {
			s.PluginsDir = abs
		}
	}
}

// Duration parses a duration attribute, using def when s is empty.
func Duration(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as \"30s\" or \"10m\": %w", s, err)
	}
	return d, nil
}

// Load reads and decodes the file at path.
func Load(path string) (*File, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read config", Detail: err.Error()}}
	}
	return Parse(src, path, filepath.Dir(path))
}

// Parse decodes src, naming it filename in diagnostics; file() paths are
// relative to baseDir.
func Parse(src []byte, filename, baseDir string) (*File, hcl.Diagnostics) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, filename)
	if diags.HasErrors() {
		return &File{Server: &Server{}, Path: filename, Parser: p}, diags
	}
	out := &File{Path: filename, Parser: p}
	ctx := EvalContext(baseDir)
	diags = append(diags, gohcl.DecodeBody(f.Body, ctx, out)...)
	if out.Server == nil {
		out.Server = &Server{}
	}
	if diags.HasErrors() {
		return out, dropFollowOnUnknowns(diags)
	}
	out.Server.applyDefaults(baseDir)
	if out.Store != nil {
		out.Store.applyDefaults(baseDir)
	}
	recordRanges(f.Body, out)
	recordSpendRanges(f.Body, out)
	out.canonicalizeTypes()
	diags = dropFollowOnUnknowns(diags)
	diags = append(diags, out.validate()...)
	diags = append(diags, out.validateSpend()...)
	diags = append(diags, out.loadPrices(baseDir)...)
	return out, diags
}

// dropFollowOnUnknowns removes the "value must be known" errors gohcl adds
// after a failed function call (env() of an unset variable, say), which
// only repeat the first error less clearly.
func dropFollowOnUnknowns(diags hcl.Diagnostics) hcl.Diagnostics {
	failedCall := false
	for _, d := range diags {
		if d.Summary == "Error in function call" {
			failedCall = true
		}
	}
	if !failedCall {
		return diags
	}
	out := diags[:0:0]
	for _, d := range diags {
		if d.Summary == "Unsuitable value type" && strings.Contains(d.Detail, "known") {
			continue
		}
		out = append(out, d)
	}
	return out
}

// Position returns "file:line:column" of a diagnostic's subject, or "".
func Position(d *hcl.Diagnostic) string {
	if d.Subject == nil {
		return ""
	}
	return fmt.Sprintf("%s:%d:%d", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
}

// WriteDiagnostics prints each diagnostic as "file:line:column: Error:
// summary" followed by the source snippet and the detail.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics, width uint, color bool) {
	snippets := hcl.NewDiagnosticTextWriter(w, files, width, color)
	for _, d := range diags {
		sev := "Error"
		if d.Severity == hcl.DiagWarning {
			sev = "Warning"
		}
		if pos := Position(d); pos != "" {
			fmt.Fprintf(w, "%s: %s: %s\n", pos, sev, d.Summary)
		}
		snippets.WriteDiagnostic(d)
	}
}
