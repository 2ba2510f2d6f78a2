// Command llmproxy is the llmproxy host: an OpenAI-compatible gateway that
// serves every configured provider and storage instance through its own
// plugin process.
//
// Usage:
//
//	llmproxy [-config file.hcl] [-listen addr] [-plugins-dir dir]
//	llmproxy validate [-config file.hcl] [-listen addr] [-plugins-dir dir] [-require-plugins]
//	llmproxy plugins new <kind> <name> [-dir dir] [-module path] [-sdk-replace dir]
//	llmproxy plugins list|verify [-config file.hcl] [-plugins-dir dir]
//	llmproxy plugins describe <name> [-config file.hcl] [-plugins-dir dir]
//	llmproxy keys hash [key]
//	llmproxy -print-default-config
//
// Without -config (or LLMPROXY_CONFIG) it serves the embedded default
// configuration, which needs no cloud account. The validate command (also
// spelled -check) checks a configuration as the host would at start,
// including each instance's config block against the schema its plugin
// describes and that every credential the plugin requires has a source,
// and exits 1 when anything is wrong. Paths on the command line are
// relative to the working directory, paths in the config file relative to
// the file.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"golang.org/x/term"

	"github.com/llmproxy/llmproxy/host/internal/access"
	"github.com/llmproxy/llmproxy/host/internal/auth"
	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/document"
	"github.com/llmproxy/llmproxy/host/internal/metrics"
	"github.com/llmproxy/llmproxy/host/internal/plugins"
	"github.com/llmproxy/llmproxy/host/internal/router"
	"github.com/llmproxy/llmproxy/host/internal/server"
	"github.com/llmproxy/llmproxy/sdk/profile"
)

//go:embed default.hcl
var defaultConfig []byte

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

func main() {
	os.Exit(run())
}

// defaultGOGC trades memory for fewer collections on the request path;
// GOGC overrides it (and reaches the plugins too).
const defaultGOGC = 400

func run() int {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGOGC)
	}
	profile.FromEnv("llmproxy")
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "validate":
			return runValidate(os.Args[2:])
		case "plugins":
			return runPlugins(os.Args[2:], os.Stdout, os.Stderr)
		case "keys":
			return runKeys(os.Args[2:], os.Stdin, os.Stdout, os.Stderr)
		case "help", "-h", "-help", "--help":
			usage(os.Stdout)
			return 0
		}
	}
	return serve(os.Args[1:])
}

// usage prints the commands and their flags.
func usage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  llmproxy [-config file.hcl] [-listen addr] [-plugins-dir dir]
      serve the configuration (the embedded default without -config)
  llmproxy validate [-config file.hcl] [-listen addr] [-plugins-dir dir] [-require-plugins]
      check the configuration as the host would at start, plugins' config
      schemas and credentials included; exit 1 on errors
  llmproxy plugins new <kind> <name> [-dir dir] [-module path] [-sdk-replace dir] [-sdk-version v]
      create a new plugin module from the SDK's template for kind
  llmproxy plugins list [-config file.hcl] [-plugins-dir dir]
      the installed plugins: name, kind, version, protocol, capabilities, sha256
  llmproxy plugins describe <name> [-config file.hcl] [-plugins-dir dir]
      a plugin's config attributes and credentials, with their descriptions
  llmproxy plugins verify [-config file.hcl] [-plugins-dir dir] [name...]
      start each plugin, handshake, describe it and, when it needs no
      config, configure it and check its health; exit 1 on any failure
  llmproxy keys hash [key]
      print the key_sha256 value of a key (read from stdin without key)
  llmproxy -print-default-config
      print the embedded default configuration

-check is kept as another name for validate. Paths on the command line are
relative to the working directory; paths inside the config file are
relative to the file.
`)
}

// loadConfig reads the file at path, or the embedded default when path is
// empty, and applies the command-line plugins dir (relative to the
// working directory).
func loadConfig(path, pluginsDir string) (*config.File, string, hcl.Diagnostics) {
	var (
		cfg   *config.File
		diags hcl.Diagnostics
		base  string
	)
	if path == "" {
		wd, _ := os.Getwd()
		base = wd
		cfg, diags = config.Parse(defaultConfig, "<embedded default config>", wd)
	} else {
		base = filepath.Dir(path)
		cfg, diags = config.Load(path)
	}
	if pluginsDir != "" && cfg != nil && cfg.Server != nil {
		if abs, err := filepath.Abs(pluginsDir); err == nil {
			pluginsDir = abs
		}
		cfg.Server.PluginsDir = pluginsDir
	}
	return cfg, base, diags
}

func serve(args []string) int {
	fs := flag.NewFlagSet("llmproxy", flag.ContinueOnError)
	fs.Usage = func() { usage(os.Stderr) }
	configPath := fs.String("config", os.Getenv("LLMPROXY_CONFIG"), "HCL config file (default: the embedded default config)")
	listen := fs.String("listen", "", "listen address, overriding server.listen")
	pluginsDir := fs.String("plugins-dir", "", "plugins directory, overriding server.plugins_dir (relative to the working directory)")
	check := fs.Bool("check", false, "validate the config and exit (same as the validate command)")
	requirePlugins := fs.Bool("require-plugins", false, "with -check: an instance whose plugin binary is missing is an error")
	printDefault := fs.Bool("print-default-config", false, "print the embedded default config and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "llmproxy: unknown command %q\n", fs.Arg(0))
		usage(os.Stderr)
		return 2
	}

	if *printDefault {
		os.Stdout.Write(defaultConfig)
		return 0
	}
	if *check {
		return validateConfig(*configPath, *pluginsDir, *listen, *requirePlugins)
	}

	cfg, base, diags := loadConfig(*configPath, *pluginsDir)
	printDiags := diagnosticPrinter(cfg)
	if len(diags) > 0 {
		printDiags(diags)
	}
	if diags.HasErrors() {
		return 2
	}
	if *listen != "" {
		cfg.Server.Listen = *listen
	}
	if cfg.Server.PublicURL == "" {
		cfg.Server.PublicURL = "http://" + cfg.Server.Listen
	}

	logger := newLogger(cfg.Logging)
	timeout, _ := config.Duration(cfg.Server.RequestTimeout, config.DefaultRequestTimeout)
	grace, _ := config.Duration(cfg.Server.ShutdownGrace, config.DefaultShutdownGrace)
	drainDelay, _ := config.Duration(cfg.Server.DrainDelay, 0)
	readTimeout, _ := config.Duration(cfg.Server.ReadTimeout, config.DefaultReadTimeout)
	readIdle, _ := config.Duration(cfg.Server.ReadIdleTimeout, config.DefaultReadIdleTimeout)

	var local *localKey
	if len(cfg.APIKeys) == 0 {
		k, key, err := newLocalKey(cfg.Server.Listen)
		if err != nil {
			logger.Error("refusing to start", "error", err)
			return 2
		}
		local = k
		cfg.APIKeys = []config.APIKey{key}
		logger.Warn("no api_key block: requests without a key are served, on the loopback address only", "listen", cfg.Server.Listen)
	}
	keys, err := auth.New(cfg.APIKeys)
	if err == nil {
		err = keys.CheckListener(cfg.Server.Listen)
	}
	if err != nil {
		logger.Error("refusing to start", "error", err)
		return 2
	}
	rtr, err := router.New(cfg.Routes, cfg.Server)
	if err != nil {
		logger.Error("invalid route config", "error", err)
		return 2
	}

	policies := map[string]*access.Policy{}
	for i := range cfg.Storage {
		p, err := access.NewPolicy(&cfg.Storage[i])
		if err != nil {
			logger.Error("invalid storage config", "instance", cfg.Storage[i].Name, "error", err)
			return 2
		}
		policies[cfg.Storage[i].Name] = p
	}
	docCfg := document.DefaultConfig()
	if cfg.Documents != nil {
		docCfg = cfg.Documents.WithDefaults()
	}

	sup := cfg.Server.Supervision()
	mgr := plugins.Start(cfg, plugins.Options{
		Dir:            cfg.Server.PluginsDir,
		BaseDir:        base,
		HealthInterval: sup.Interval,
		HealthTimeout:  sup.Timeout,
		HealthFailures: sup.Failures,
		Settings: map[string]string{
			"public_url": cfg.Server.PublicURL,
			"log_level":  logger.GetLevel().String(),
		},
		Logger: logger.Named("plugin"),
		Files:  cfg.Parser.Files(),
	})
	defer mgr.Stop()

	tokens, err := access.NewPageTokens(cfg.Server.PageTokenSecret)
	if err != nil {
		logger.Error("invalid server config", "error", err)
		return 2
	}
	var srv *server.Server
	docs, err := document.New(docCfg, document.Options{
		Presign: document.PresignRecognizerFunc(func(u *url.URL) (document.StorageRef, bool) {
			return srv.Recognizer().Recognize(u)
		}),
	})
	if err != nil {
		logger.Error("invalid documents config", "error", err)
		return 2
	}
	defer docs.Close()
	srv = server.New(server.Options{
		Keys: keys, Router: rtr, Plugins: mgr, Logger: logger.Named("http"),
		MaxBodyBytes: cfg.Server.MaxBodyBytes, RequestTimeout: timeout, AccessLog: cfg.Logging != nil && cfg.Logging.AccessLog,
		Documents: docs, Policies: policies, Metrics: metrics.New(mgr, docs),
		ReadTimeout: readTimeout, ReadIdleTimeout: readIdle, PageTokens: tokens,
	})
	hs := srv.HTTPServer()
	if local != nil {
		hs.Handler = local.wrap(hs.Handler)
	}

	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe(cfg.Server.Listen) }()
	logger.Info("llmproxy listening", "url", "http://"+cfg.Server.Listen, "version", Version, "config", cfg.Path,
		"plugins_dir", cfg.Server.PluginsDir)
	go reportInstances(logger, mgr)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	select {
	case err := <-errc:
		logger.Error("server stopped", "error", err)
		return 1
	case s := <-sigs:
		logger.Info("shutting down", "signal", s.String(), "grace", grace, "drain_delay", drainDelay)
	}
	// /readyz answers 503 from now on; during drain_delay requests are
	// still accepted, so that load balancers notice before the listener
	// closes. A second signal skips the wait.
	srv.Drain()
	if drainDelay > 0 {
		select {
		case <-time.After(drainDelay):
		case <-sigs:
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := hs.ShutdownWithContext(ctx); err != nil {
		logger.Warn("shutdown did not finish in time", "error", err)
	}
	return 0
}

// reportInstances logs which instances are ready once they have settled.
func reportInstances(log hclog.Logger, m *plugins.Manager) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		settled := true
		for _, st := range m.Statuses() {
			if st.State == plugins.Starting {
				settled = false
			}
		}
		if settled {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	st := m.Statuses()
	names := make([]string, 0, len(st))
	for n := range st {
		names = append(names, n)
	}
	sort.Strings(names)
	var ready []string
	for _, n := range names {
		if st[n].Serving() {
			ready = append(ready, n)
		}
	}
	log.Info("instances settled", "ready", strings.Join(ready, ","), "total", len(names))
	for _, n := range names {
		if s := st[n]; !s.Serving() {
			log.Info("instance not serving", "instance", n, "state", s.State, "reason", s.Reason)
		}
	}
}

func newLogger(l *config.Logging) hclog.Logger {
	opts := &hclog.LoggerOptions{Name: "llmproxy", Output: os.Stderr, Level: hclog.Info}
	if l != nil {
		if l.Level != "" {
			opts.Level = hclog.LevelFromString(l.Level)
		}
		opts.JSONFormat = l.Format == "json"
	}
	return hclog.New(opts)
}

// diagnosticPrinter prints HCL diagnostics with file:line:column and a
// source snippet.
func diagnosticPrinter(cfg *config.File) func(hcl.Diagnostics) {
	return func(d hcl.Diagnostics) {
		var files map[string]*hcl.File
		if cfg != nil && cfg.Parser != nil {
			files = cfg.Parser.Files()
		}
		width, color := 100, false
		if term.IsTerminal(int(os.Stderr.Fd())) {
			color = true
			if w, _, err := term.GetSize(int(os.Stderr.Fd())); err == nil && w > 0 {
				width = w
			}
		}
		config.WriteDiagnostics(os.Stderr, files, d, uint(width), color)
	}
}
