// Command llmproxy is the llmproxy host: an OpenAI-compatible gateway that
// serves every configured provider and storage instance through its own
// plugin process.
//
// Usage:
//
//	llmproxy [-config file.hcl] [-listen addr] [-plugins-dir dir] [-check]
//
// Without -config (or LLMPROXY_CONFIG) it serves the embedded default
// configuration, which needs no cloud account.
package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
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
	configPath := flag.String("config", os.Getenv("LLMPROXY_CONFIG"), "HCL config file (default: the embedded default config)")
	listen := flag.String("listen", "", "listen address, overriding server.listen")
	pluginsDir := flag.String("plugins-dir", "", "plugins directory, overriding server.plugins_dir")
	check := flag.Bool("check", false, "validate the config and exit")
	printDefault := flag.Bool("print-default-config", false, "print the embedded default config and exit")
	flag.Parse()

	if *printDefault {
		os.Stdout.Write(defaultConfig)
		return 0
	}

	var (
		cfg   *config.File
		diags hcl.Diagnostics
		base  string
	)
	if *configPath == "" {
		wd, _ := os.Getwd()
		base = wd
		cfg, diags = config.Parse(defaultConfig, "<embedded default config>", wd)
	} else {
		base = filepath.Dir(*configPath)
		cfg, diags = config.Load(*configPath)
	}
	printDiags := diagnosticPrinter(cfg)
	if len(diags) > 0 {
		printDiags(diags)
	}
	if diags.HasErrors() {
		return 2
	}
	if *check {
		fmt.Fprintln(os.Stderr, "config is valid")
		return 0
	}
	if *listen != "" {
		cfg.Server.Listen = *listen
	}
	if *pluginsDir != "" {
		cfg.Server.PluginsDir = *pluginsDir
	}
	if cfg.Server.Listen == "" {
		cfg.Server.Listen = config.DefaultListen
	}
	if cfg.Server.PluginsDir == "" {
		cfg.Server.PluginsDir = "bin/plugins"
	}
	if !filepath.IsAbs(cfg.Server.PluginsDir) {
		cfg.Server.PluginsDir = filepath.Join(base, cfg.Server.PluginsDir)
	}
	if cfg.Server.MaxBodyBytes <= 0 {
		cfg.Server.MaxBodyBytes = config.DefaultMaxBodyBytes
	}
	if cfg.Server.PublicURL == "" {
		cfg.Server.PublicURL = "http://" + cfg.Server.Listen
	}

	logger := newLogger(cfg.Logging)
	timeout, _ := config.Duration(cfg.Server.RequestTimeout, config.DefaultRequestTimeout)
	grace, _ := config.Duration(cfg.Server.ShutdownGrace, 30*time.Second)

	keys, err := auth.New(cfg.APIKeys)
	if err != nil {
		logger.Error("invalid api_key config", "error", err)
		return 2
	}
	rtr, err := router.New(cfg.Routes)
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

	mgr := plugins.Start(cfg, plugins.Options{
		Dir:     cfg.Server.PluginsDir,
		BaseDir: base,
		Settings: map[string]string{
			"public_url": cfg.Server.PublicURL,
			"log_level":  logger.GetLevel().String(),
		},
		Logger: logger.Named("plugin"),
		Files:  cfg.Parser.Files(),
	})
	defer mgr.Stop()

	if err := docCfg.Validate(); err != nil {
		logger.Error("invalid documents config", "error", err)
		return 2
	}
	// Untrusted document formats are parsed only in extractor plugin
	// processes, under the limits of documents { extract { } }.
	extractors := plugins.StartExtractors(cfg, plugins.Options{
		Dir:      cfg.Server.PluginsDir,
		BaseDir:  base,
		Settings: map[string]string{"log_level": logger.GetLevel().String()},
		Logger:   logger.Named("plugin"),
	})
	defer extractors.Stop()

	var srv *server.Server
	docs, err := document.New(docCfg, document.Options{
		Presign: document.PresignRecognizerFunc(func(u *url.URL) (document.StorageRef, bool) {
			return srv.Recognizer().Recognize(u)
		}),
		Extractor: extractors,
	})
	if err != nil {
		logger.Error("invalid documents config", "error", err)
		return 2
	}
	defer docs.Close()
	mets := metrics.New(mgr, docs)
	mets.WatchExtractors(extractors)
	srv = server.New(server.Options{
		Keys: keys, Router: rtr, Plugins: mgr, Logger: logger.Named("http"),
		MaxBodyBytes: cfg.Server.MaxBodyBytes, RequestTimeout: timeout, AccessLog: cfg.Logging != nil && cfg.Logging.AccessLog,
		Documents: docs, Policies: policies, Metrics: mets,
	})
	hs := srv.HTTPServer()

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
		logger.Info("shutting down", "signal", s.String(), "grace", grace)
	}
	// Requests waiting on a document extraction end at once (503) rather
	// than holding the shutdown until their deadline.
	extractors.Stop()
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
		if st[n].State == plugins.Ready {
			ready = append(ready, n)
		}
	}
	log.Info("instances settled", "ready", strings.Join(ready, ","), "total", len(names))
	for _, n := range names {
		if s := st[n]; s.State != plugins.Ready {
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
