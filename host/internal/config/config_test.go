package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/llmproxy/llmproxy/sdk/schema"
)

const base = `
server { listen = "127.0.0.1:0" }
api_key "dev" { key = "sk-1" }
provider "echo" { type = "echo" }
route "echo" {
  target "echo" {}
}
`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // summary fragment
		line int    // line of the diagnostic's subject, 0 = any
	}{
		{"syntax", base + "provider \"x\" {\n  type = \n}\n", "Invalid expression", 9},
		{"unknown attribute", base + "server2 {}\n", "Unsupported block type", 8},
		{"unknown route target", base + "route \"gpt-*\" {\n  target \"nope\" {}\n}\n", "Unknown route target", 8},
		{"bad strategy", base + "route \"x\" {\n  strategy = \"random\"\n  target \"echo\" {}\n}\n", "Invalid strategy", 8},
		{"duplicate instance", base + "storage \"echo\" { type = \"local\" }\n", "Duplicate instance name", 8},
		{"key without secret", base + "api_key \"x\" {}\n", "API key without a secret", 8},
		{"bad key hash", base + "api_key \"x\" { key_sha256 = \"abc\" }\n", "Invalid key_sha256", 8},
		{"duplicate key name", base + "api_key \"dev\" { key = \"sk-2\" }\n", "Duplicate api_key", 8},
		{"bad request timeout", "\n\n\nserver {\n  request_timeout = \"soon\"\n}\n", "Invalid server.request_timeout", 5},
		{"bad log format", "logging {\n  format = \"xml\"\n}\n", "Invalid logging.format", 2},
		{"env unset", base + "api_key \"x\" { key = env(\"LLMPROXY_TEST_UNSET_VAR\") }\n", "environment variable LLMPROXY_TEST_UNSET_VAR is not set", 8},
		{"unknown credential source", base + "provider \"o\" {\n  type = \"openai\"\n  credential \"api_key\" {\n    from \"vaultish\" { name = \"x\" }\n  }\n}\n", "Unknown credential source", 11},
		{"incomplete credential source", base + "provider \"o\" {\n  type = \"openai\"\n  credential \"api_key\" {\n    from \"env\" {}\n  }\n}\n", "Incomplete credential source", 11},
		{"unknown storage op", base + "storage \"s\" { type = \"local\" }\napi_key \"x\" {\n  key = \"sk-2\"\n  instances = [\"s\"]\n  storage_ops = [\"get\", \"upload\"]\n}\n", `storage_ops lists "upload"`, 12},
		{"storage op not a string list", base + "api_key \"x\" {\n  key = \"sk-2\"\n  storage_ops = \"get\"\n}\n", "Unsuitable value type", 10},
		{"provider in instances", base + "api_key \"x\" {\n  key = \"sk-2\"\n  instances = [\"echo\"]\n  storage_ops = [\"*\"]\n}\n", `"echo" is a provider instance`, 10},
		{"storage in passthrough", base + "storage \"s\" { type = \"local\" }\napi_key \"x\" {\n  key = \"sk-2\"\n  passthrough = [\"s\"]\n}\n", `"s" is a storage instance`, 11},
		{"negative object cap", base + "storage \"s\" {\n  type = \"local\"\n  max_object_bytes = -1\n}\n", "Invalid max_object_bytes", 8},
		{"bad duration", base + "storage \"s\" {\n  type = \"local\"\n  presign { max_ttl = \"forever\" }\n}\n", "Invalid presign.max_ttl", 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := Parse([]byte(tt.src), "test.hcl", t.TempDir())
			if !diags.HasErrors() {
				t.Fatalf("no error for:\n%s", tt.src)
			}
			var found *hcl.Diagnostic
			for _, d := range diags {
				if strings.Contains(d.Summary+": "+d.Detail, tt.want) {
					found = d
				}
			}
			if found == nil {
				t.Fatalf("want %q, got %v", tt.want, diags)
			}
			if tt.line != 0 {
				if found.Subject == nil || found.Subject.Filename != "test.hcl" || found.Subject.Start.Line != tt.line {
					t.Errorf("diagnostic %q at %v, want test.hcl line %d", found.Summary, found.Subject, tt.line)
				}
			}
		})
	}
}

func TestParseDefaultsAndFunctions(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "key.txt"), []byte("sk-from-file\n"), 0o600)
	t.Setenv("LLMPROXY_TEST_LISTEN", "127.0.0.1:9999")
	src := `
server { listen = env("LLMPROXY_TEST_LISTEN", "x") }
api_key "a" { key = file("key.txt") }
api_key "b" { key = env("LLMPROXY_TEST_UNSET_VAR", "fallback") }
provider "echo" {
  type    = "echo"
  enabled = env("LLMPROXY_TEST_UNSET_VAR", "") != ""
}
route "echo" {
  target "echo" {}
}
`
	f, diags := Parse([]byte(src), "test.hcl", dir)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if f.Server.Listen != "127.0.0.1:9999" || f.APIKeys[0].Key != "sk-from-file" || f.APIKeys[1].Key != "fallback" {
		t.Errorf("functions: %+v %+v", f.Server, f.APIKeys)
	}
	if f.Providers[0].IsEnabled() {
		t.Error("enabled expression ignored")
	}
}

func TestEmbeddedDefaultParses(t *testing.T) {
	src, err := os.ReadFile("../../cmd/llmproxy/default.hcl")
	if err != nil {
		t.Fatal(err)
	}
	f, diags := Parse(src, "default.hcl", t.TempDir())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	names := map[string]bool{}
	for _, p := range f.Providers {
		names[p.Name] = true
	}
	for _, want := range []string{"echo", "bedrock_us1", "bedrock_eu1", "openai_prod", "azure_eastus", "vertex_us", "anthropic_direct", "ibm_watsonx", "oracle_ai"} {
		if !names[want] {
			t.Errorf("default config lacks instance %s", want)
		}
	}
	if len(f.Storage) == 0 || f.Storage[0].Name != "dev" || f.Storage[0].Type != "local" {
		t.Errorf("default config lacks the local storage instance dev")
	}
}

var testSchema = schema.Schema{
	Attributes: []schema.Attribute{
		{Name: "base_url", Type: "string", Required: true},
		{Name: "timeout", Type: "string"},
		{Name: "headers", Type: "map(string)"},
		{Name: "retries", Type: "number"},
	},
	Blocks: []schema.Block{{Name: "tls", Nesting: schema.NestingSingle, Schema: schema.Schema{
		Attributes: []schema.Attribute{{Name: "insecure", Type: "bool"}},
	}}},
}

func instance(t *testing.T, block string) *Instance {
	t.Helper()
	src := base + "provider \"o\" {\n  type = \"openai\"\n  config {\n" + block + "\n  }\n}\n"
	f, diags := Parse([]byte(src), "test.hcl", t.TempDir())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return &f.Providers[1]
}

func TestDecodeInstance(t *testing.T) {
	in := instance(t, `    base_url = "https://x"
    headers  = { "X-A" = "1" }
    retries  = 3
    tls { insecure = true }`)
	js, diags := DecodeInstance(in, testSchema, ".")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	want := `{"base_url":"https://x","headers":{"X-A":"1"},"retries":3,"timeout":null,"tls":{"insecure":true}}`
	if string(js) != want {
		t.Errorf("json = %s\nwant %s", js, want)
	}
}

func TestDecodeInstanceErrorsPointIntoTheBlock(t *testing.T) {
	tests := []struct {
		name, block, want string
		line              int
	}{
		{"unknown attribute", "    base_url = \"x\"\n    colour = \"red\"", "Unsupported argument", 12},
		{"wrong type", "    base_url = \"x\"\n    retries = \"many\"", "Incorrect attribute value type", 12},
		{"missing required", "    timeout = \"1s\"", "Missing required argument", 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := DecodeInstance(instance(t, tt.block), testSchema, ".")
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tt.want) {
				t.Fatalf("want %q, got %v", tt.want, diags)
			}
			if s := diags[0].Subject; s == nil || s.Start.Line != tt.line {
				t.Errorf("subject %v, want line %d", s, tt.line)
			}
		})
	}
}

func TestPluginDiagnostics(t *testing.T) {
	in := instance(t, "    base_url = \"x\"\n    timeout = \"soon\"")
	diags := PluginDiagnostics(in, schema.Diagnostics{
		{Summary: "timeout is not a duration", Path: []string{"timeout"}},
		{Summary: "general problem"},
		{Summary: "just a warning", Warning: true},
	})
	if len(diags) != 3 || diags[0].Subject.Start.Line != 12 || !strings.Contains(diags[0].Summary, "timeout") {
		t.Errorf("attribute diagnostic: %+v", diags[0])
	}
	if diags[1].Subject.Start.Line != 8 {
		t.Errorf("block-level diagnostic should point at the block: %v", diags[1].Subject)
	}
	if diags[2].Severity != hcl.DiagWarning {
		t.Error("warning severity lost")
	}
}

func TestTypeAliases(t *testing.T) {
	src := `
server { listen = "127.0.0.1:0" }
provider "ibm_watsonx" { type = "ibm" }
provider "oracle_ai" { type = "oracle" }
provider "openai_prod" { type = "openai" }
`
	f, diags := Parse([]byte(src), "aliases.hcl", t.TempDir())
	if diags.HasErrors() {
		t.Fatalf("parse: %s", diags.Error())
	}
	want := map[string]string{"ibm_watsonx": "watsonx", "oracle_ai": "oci", "openai_prod": "openai"}
	for _, p := range f.Providers {
		if p.Type != want[p.Name] {
			t.Errorf("%s: type %q, want %q", p.Name, p.Type, want[p.Name])
		}
	}
}

func TestServerBlockIsOptional(t *testing.T) {
	src := "provider \"echo\" {\n  type = \"echo\"\n}\nroute \"echo\" {\n  target \"echo\" {}\n}\n"
	f, diags := Parse([]byte(src), "min.hcl", t.TempDir())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	s := f.Server
	if s == nil {
		t.Fatal("Server is nil")
	}
	if s.Listen != DefaultListen || s.MaxBodyBytes != DefaultMaxBodyBytes {
		t.Errorf("defaults: listen %q, max_body_bytes %d", s.Listen, s.MaxBodyBytes)
	}
	if s.PluginsDir != DefaultPluginsDir() || !filepath.IsAbs(s.PluginsDir) {
		t.Errorf("plugins_dir = %q, want the absolute default %q", s.PluginsDir, DefaultPluginsDir())
	}
}

func TestPluginsDirIsRelativeToTheConfigFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ value, want string }{
		{"plugins", filepath.Join(dir, "plugins")},
		{"../shared/plugins", filepath.Join(filepath.Dir(dir), "shared", "plugins")},
		{"/opt/llmproxy/plugins", "/opt/llmproxy/plugins"},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			path := filepath.Join(dir, "llmproxy.hcl")
			src := "server {\n  plugins_dir = \"" + tt.value + "\"\n}\n"
			if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			f, diags := Load(path)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if f.Server.PluginsDir != tt.want {
				t.Errorf("plugins_dir %q resolved to %q, want %q", tt.value, f.Server.PluginsDir, tt.want)
			}
		})
	}
}

// TestStorageOpPosition checks that an unknown operation is reported at
// the list element that names it, and that a key with storage instances
// but no operations is warned about.
func TestStorageOpPosition(t *testing.T) {
	src := base + "storage \"s\" { type = \"local\" }\napi_key \"x\" {\n  key = \"sk-2\"\n  instances = [\"s\"]\n  storage_ops = [\"get\", \"upload\"]\n}\n" +
		"api_key \"y\" {\n  key = \"sk-3\"\n  instances = [\"s\"]\n}\n"
	_, diags := Parse([]byte(src), "test.hcl", t.TempDir())
	var op, warn *hcl.Diagnostic
	for _, d := range diags {
		switch d.Summary {
		case "Unknown storage operation":
			op = d
		case "Storage instances without operations":
			warn = d
		}
	}
	if op == nil || Position(op) != "test.hcl:12:25" {
		t.Errorf("unknown op diagnostic %v, want at test.hcl:12:25", op)
	}
	if warn == nil || warn.Severity != hcl.DiagWarning || Position(warn) != "test.hcl:16:15" {
		t.Errorf("missing-ops warning %v, want a warning at test.hcl:16:15", warn)
	}
}

// TestMiddlewareReferences checks that the middleware lists of keys and
// routes name middleware instances, once each, and that hook_timeout is a
// positive duration.
func TestMiddlewareReferences(t *testing.T) {
	const mw = "middleware \"g\" {\n  type = \"guardrail\"\n  hook_timeout = %q\n}\n"
	tests := []struct {
		name, src, want string
	}{
		{name: "valid", src: fmt.Sprintf(mw, "500ms") + "api_key \"k\" {\n  key = \"sk-9\"\n  middleware = [\"g\"]\n}\n"},
		{name: "unknown on a key", src: fmt.Sprintf(mw, "") + "api_key \"k\" {\n  key = \"sk-9\"\n  middleware = [\"nope\"]\n}\n", want: "Unknown middleware"},
		{name: "a provider is not a middleware", src: fmt.Sprintf(mw, "") + "api_key \"k\" {\n  key = \"sk-9\"\n  middleware = [\"echo\"]\n}\n", want: "Unknown middleware"},
		{name: "listed twice", src: fmt.Sprintf(mw, "") + "api_key \"k\" {\n  key = \"sk-9\"\n  middleware = [\"g\", \"g\"]\n}\n", want: "Duplicate middleware"},
		{name: "bad budget", src: fmt.Sprintf(mw, "0s"), want: "Invalid hook_timeout"},
		{name: "budget on a provider", src: "provider \"p\" {\n  type = \"echo\"\n  hook_timeout = \"1s\"\n}\n", want: "Unsupported argument"},
		{name: "name shared with a provider", src: "middleware \"echo\" {\n  type = \"guardrail\"\n}\n", want: "Duplicate instance name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, diags := Parse([]byte(base+tt.src), "test.hcl", t.TempDir())
			if tt.want == "" {
				if diags.HasErrors() {
					t.Fatal(diags)
				}
				if len(f.Middleware) != 1 || f.Middleware[0].HookTimeout != "500ms" || f.APIKeys[len(f.APIKeys)-1].Middleware[0] != "g" {
					t.Errorf("parsed %+v", f.Middleware)
				}
				return
			}
			found := false
			for _, d := range diags {
				found = found || d.Summary == tt.want
			}
			if !found {
				t.Errorf("diagnostics %v, want %q", diags, tt.want)
			}
		})
	}
}
