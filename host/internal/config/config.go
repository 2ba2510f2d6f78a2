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
)

// File is a whole configuration file.
type File struct {
	Server    Server           `hcl:"server,block"`
	Logging   *Logging         `hcl:"logging,block"`
	APIKeys   []APIKey         `hcl:"api_key,block"`
	Plugins   []Plugin         `hcl:"plugin,block"`
	Providers []Instance       `hcl:"provider,block"`
	Storage   []Instance       `hcl:"storage,block"`
	Routes    []Route          `hcl:"route,block"`
	Documents *document.Config `hcl:"documents,block"`

	// Path is where the file was read from ("<embedded>" for the default).
	Path string
	// Parser holds the parsed sources, for printing diagnostics with
	// snippets.
	Parser *hclparse.Parser
}

// Server configures the HTTP listener.
type Server struct {
	Listen string `hcl:"listen,optional"`
	// PublicURL is how clients reach the host; presigned URLs of the local
	// storage backend point at it. Defaults to http://<listen>.
	PublicURL      string `hcl:"public_url,optional"`
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

// Source is one credential strategy: env, file or value.
type Source struct {
	Kind  string `hcl:"kind,label"`
	Name  string `hcl:"name,optional"`
	Path  string `hcl:"path,optional"`
	Value string `hcl:"value,optional"`
	// Field picks a JSON field from a file source.
	Field string `hcl:"field,optional"`

	DeclRange hcl.Range
}

// Route sends a model name (or pattern) to one or more instances.
type Route struct {
	// Model is an exact name or a pattern with "*" wildcards.
	Model string `hcl:"model,label"`
	// Strategy is failover (default), round_robin or weighted.
	Strategy string   `hcl:"strategy,optional"`
	Aliases  []string `hcl:"aliases,optional"`
	Targets  []Target `hcl:"target,block"`

	DeclRange hcl.Range
}

// Target is one instance serving a route, with the model name the
// instance knows the model by.
type Target struct {
	Instance string `hcl:"instance,label"`
	Model    string `hcl:"model,optional"`
	Weight   int    `hcl:"weight,optional"`
}

// Defaults.
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultMaxBodyBytes    = 32 << 20
	DefaultRequestTimeout  = 10 * time.Minute
	DefaultReadTimeout     = 5 * time.Minute
	DefaultReadIdleTimeout = time.Minute
)

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
		return &File{Path: filename, Parser: p}, diags
	}
	out := &File{Path: filename, Parser: p}
	ctx := EvalContext(baseDir)
	diags = append(diags, gohcl.DecodeBody(f.Body, ctx, out)...)
	if diags.HasErrors() {
		return out, dropFollowOnUnknowns(diags)
	}
	recordRanges(f.Body, out)
	diags = dropFollowOnUnknowns(diags)
	diags = append(diags, out.validate()...)
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
