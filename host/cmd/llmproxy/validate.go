package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/llmproxy/llmproxy/host/internal/access"
	"github.com/llmproxy/llmproxy/host/internal/auth"
	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/credentials"
	"github.com/llmproxy/llmproxy/host/internal/document"
	"github.com/llmproxy/llmproxy/host/internal/plugins"
	"github.com/llmproxy/llmproxy/host/internal/router"
)

// runValidate is the validate command.
func runValidate(args []string) int {
	fs := flag.NewFlagSet("llmproxy validate", flag.ContinueOnError)
	fs.Usage = func() { usage(os.Stderr) }
	configPath := fs.String("config", os.Getenv("LLMPROXY_CONFIG"), "HCL config file (default: the embedded default config)")
	pluginsDir := fs.String("plugins-dir", "", "plugins directory, overriding server.plugins_dir (relative to the working directory)")
	listen := fs.String("listen", "", "listen address, overriding server.listen")
	requirePlugins := fs.Bool("require-plugins", false, "an instance whose plugin binary is missing is an error, not a warning")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "llmproxy validate: unexpected argument %q\n", fs.Arg(0))
		usage(os.Stderr)
		return 2
	}
	return validateConfig(*configPath, *pluginsDir, *listen, *requirePlugins)
}

// validateConfig loads the config, checks it with its plugins and prints
// every diagnostic. It returns 0 when the config is valid, 1 otherwise.
func validateConfig(path, pluginsDir, listen string, requirePlugins bool) int {
	cfg, base, diags := loadConfig(path, pluginsDir)
	if listen != "" && cfg != nil {
		cfg.Server.Listen = listen
	}
	if !diags.HasErrors() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		diags = append(diags, checkHost(cfg)...)
		diags = append(diags, checkInstances(ctx, cfg, base, requirePlugins)...)
	}
	if len(diags) > 0 {
		diagnosticPrinter(cfg)(diags)
	}
	if diags.HasErrors() {
		n := 0
		for _, d := range diags {
			if d.Severity == hcl.DiagError {
				n++
			}
		}
		fmt.Fprintf(os.Stderr, "config is not valid: %d error(s)\n", n)
		return 1
	}
	fmt.Fprintln(os.Stderr, "config is valid")
	return 0
}

// checkHost builds what the host builds from the config before it starts
// any plugin (keys, routes, storage policies, the document resolver) and
// reports what fails.
func checkHost(cfg *config.File) hcl.Diagnostics {
	var diags hcl.Diagnostics
	fail := func(summary string, err error, at *hcl.Range) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: err.Error(), Subject: at})
	}
	if len(cfg.APIKeys) == 0 {
		if _, _, err := newLocalKey(cfg.Server.Listen); err != nil {
			fail("No api_key block", err, cfg.Range("server.listen"))
		}
	}
	// Each key and route is added in turn, so that an error points at the
	// block that causes it.
	for i := range cfg.APIKeys {
		keys, err := auth.New(cfg.APIKeys[:i+1])
		if err == nil {
			err = keys.CheckListener(cfg.Server.Listen)
		}
		if err != nil {
			fail("Invalid api_key", err, cfg.Range(fmt.Sprintf("api_key[%d]", i)))
			break
		}
	}
	for i := range cfg.Routes {
		if _, err := router.New(cfg.Routes[:i+1], cfg.Server); err != nil {
			r := cfg.Routes[i].DeclRange
			fail("Invalid route", err, &r)
			break
		}
	}
	for i := range cfg.Storage {
		in := &cfg.Storage[i]
		if _, err := access.NewPolicy(in); err != nil {
			r := in.DeclRange
			fail(fmt.Sprintf("storage %q: invalid access rules", in.Name), err, &r)
		}
	}
	if cfg.Documents != nil {
		docs, err := document.New(cfg.Documents.WithDefaults(), document.Options{})
		if err != nil {
			fail("Invalid documents block", err, cfg.Range("documents"))
		} else {
			docs.Close()
		}
	}
	if err := cfg.Telemetry.Validate(); err != nil {
		fail("Invalid telemetry block", err, cfg.Range("telemetry"))
	}
	return diags
}

// checkInstances checks what the host checks when it starts each
// instance, short of configuring it: the plugin binary exists (and
// matches its pin), the config block decodes against the schema the
// plugin describes, every credential the plugin requires is declared,
// and, for enabled instances, each declared credential resolves now
// (a warning when not: the host starts anyway and retries).
func checkInstances(ctx context.Context, cfg *config.File, base string, requirePlugins bool) hcl.Diagnostics {
	var diags hcl.Diagnostics
	pins := map[string]config.Plugin{}
	for _, p := range cfg.Plugins {
		if p.Path != "" && !filepath.IsAbs(p.Path) {
			p.Path = filepath.Join(base, p.Path)
		}
		pins[p.Name] = p
	}
	type described struct {
		desc *plugins.Description
		err  error
	}
	cache := map[string]described{}
	check := func(kind string, in *config.Instance) {
		pin := pins[kind+"-"+in.Type]
		path := pin.Path
		if path == "" {
			p, err := plugins.Find(cfg.Server.PluginsDir, kind, in.Type)
			if err != nil {
				sev := hcl.DiagWarning
				if requirePlugins && in.IsEnabled() {
					sev = hcl.DiagError
				}
				diags = append(diags, diagAt(sev, in.DeclRange,
					fmt.Sprintf("%s %q: plugin not found; its config block was not checked", kind, in.Name), err.Error()))
				return
			}
			path = p
		}
		if pin.SHA256 != "" {
			got, err := plugins.FileSHA256(path)
			if err != nil || !strings.EqualFold(got, pin.SHA256) {
				diags = append(diags, diagAt(hcl.DiagError, in.DeclRange,
					fmt.Sprintf("%s %q: plugin %s does not match its pin", kind, in.Name, path),
					fmt.Sprintf("its sha256 is %s but plugin %q pins %s", got, kind+"-"+in.Type, pin.SHA256)))
				return
			}
		}
		d, ok := cache[path]
		if !ok {
			d.desc, d.err = plugins.Describe(ctx, kind, path, nil)
			cache[path] = d
		}
		if d.err != nil {
			diags = append(diags, diagAt(hcl.DiagError, in.DeclRange,
				fmt.Sprintf("%s %q: plugin cannot describe itself", kind, in.Name), d.err.Error()))
			return
		}
		_, cd := config.DecodeInstance(in, d.desc.Schema, base)
		diags = append(diags, cd...)
		diags = append(diags, checkCredentials(ctx, kind, in, d.desc)...)
	}
	for i := range cfg.Providers {
		check("provider", &cfg.Providers[i])
	}
	for i := range cfg.Storage {
		check("storage", &cfg.Storage[i])
	}
	for i := range cfg.Secrets {
		check("secrets", &cfg.Secrets[i])
	}
	for i := range cfg.Middleware {
		check(plugins.MiddlewareKind, &cfg.Middleware[i])
	}
	return diags
}

// checkCredentials compares an instance's credential blocks with what its
// plugin describes.
func checkCredentials(ctx context.Context, kind string, in *config.Instance, desc *plugins.Description) hcl.Diagnostics {
	var diags hcl.Diagnostics
	declared := map[string]config.Credential{}
	for _, c := range in.Credentials {
		declared[c.Name] = c
	}
	known := map[string]bool{}
	if kind == "storage" {
		// The host makes a signing key when the instance declares none.
		known[plugins.SigningKeyCredential] = true
	}
	for _, want := range desc.Credentials {
		known[want.Name] = true
		if _, ok := declared[want.Name]; ok || !want.Required {
			continue
		}
		if kind == "storage" && want.Name == plugins.SigningKeyCredential {
			continue
		}
		detail := fmt.Sprintf("plugin %s requires credential %q", desc.Name, want.Name)
		if want.Description != "" {
			detail += " (" + strings.TrimSuffix(want.Description, ".") + ")"
		}
		detail += fmt.Sprintf("; add credential %q { from \"env\" { name = \"...\" } } to the instance", want.Name)
		diags = append(diags, diagAt(hcl.DiagError, in.DeclRange,
			fmt.Sprintf("%s %q: credential %q has no source", kind, in.Name, want.Name), detail))
	}
	for _, c := range in.Credentials {
		subject := in.DeclRange
		if len(c.Sources) > 0 {
			subject = c.Sources[0].DeclRange
		}
		if !known[c.Name] {
			names := make([]string, 0, len(desc.Credentials))
			for _, w := range desc.Credentials {
				names = append(names, w.Name)
			}
			diags = append(diags, diagAt(hcl.DiagWarning, subject,
				fmt.Sprintf("%s %q: plugin %s does not use credential %q", kind, in.Name, desc.Name, c.Name),
				fmt.Sprintf("its credentials are: %s", strings.Join(names, ", "))))
			continue
		}
		if !in.IsEnabled() || !builtinOnly(c) {
			// A secrets backend answers only once its plugin runs.
			continue
		}
		if _, err := credentials.Resolve(ctx, []config.Credential{c}); err != nil {
			diags = append(diags, diagAt(hcl.DiagWarning, subject,
				fmt.Sprintf("%s %q: credential %q has no value here", kind, in.Name, c.Name),
				err.Error()+"; the host starts without this instance until it has one"))
		}
	}
	return diags
}

// builtinOnly reports whether every source of c is one the host resolves
// itself (env, file, value).
func builtinOnly(c config.Credential) bool {
	for _, s := range c.Sources {
		if !s.Builtin() {
			return false
		}
	}
	return true
}

func diagAt(sev hcl.DiagnosticSeverity, r hcl.Range, summary, detail string) *hcl.Diagnostic {
	rr := r
	return &hcl.Diagnostic{Severity: sev, Summary: summary, Detail: detail, Subject: &rr}
}
