// Command llmproxy is the llmproxy host: an OpenAI-compatible gateway that
// serves every configured provider and storage instance through its own
// plugin process.
//
// Usage:
//
//	llmproxy [-config file.hcl] [-listen addr] [-plugins-dir dir] [-watch interval]
//	llmproxy validate [-config file.hcl] [-listen addr] [-plugins-dir dir] [-require-plugins]
//	llmproxy plugins new <kind> <name> [-dir dir] [-module path] [-sdk-replace dir]
//	llmproxy plugins list|verify [-config file.hcl] [-plugins-dir dir]
//	llmproxy plugins describe <name> [-config file.hcl] [-plugins-dir dir]
//	llmproxy keys hash [key]
//	llmproxy -print-default-config
//
// SIGHUP reloads the configuration: it is validated as by the validate
// command, new and changed instances start beside the running ones, keys
// and routes switch in one step, and instances that went away stop once
// the requests still using them have finished; a configuration that does
// not validate is refused and the running one stays. SIGTERM makes
// /readyz answer 503, closes the listener after drain_delay, lets running
// requests finish within shutdown_grace, ends the streams still open then
// with an SSE error event, stops the plugins and exits 0.
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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/valyala/fasthttp"
	"golang.org/x/term"

	"github.com/llmproxy/llmproxy/host/internal/access"
	"github.com/llmproxy/llmproxy/host/internal/cache"
	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/document"
	"github.com/llmproxy/llmproxy/host/internal/metrics"
	"github.com/llmproxy/llmproxy/host/internal/middleware"
	"github.com/llmproxy/llmproxy/host/internal/plugins"
	"github.com/llmproxy/llmproxy/host/internal/server"
	"github.com/llmproxy/llmproxy/host/internal/telemetry"
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
  llmproxy [-config file.hcl] [-listen addr] [-plugins-dir dir] [-watch interval]
      serve the configuration (the embedded default without -config);
      SIGHUP, or with -watch a change of the file, reloads it without
      dropping a request; SIGTERM drains and stops within shutdown_grace
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
	watch := fs.Duration("watch", 0, "check the config file this often and reload it when it changes (0: only on SIGHUP)")
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
		k, _, err := newLocalKey(cfg.Server.Listen)
		if err != nil {
			logger.Error("refusing to start", "error", err)
			return 2
		}
		local = k
		logger.Warn("no api_key block: requests without a key are served, on the loopback address only", "listen", cfg.Server.Listen)
	}
	routing, err := buildRouting(cfg, local)
	if err != nil {
		logger.Error("refusing to start", "error", err)
		return 2
	}
	limits, err := openLimits(cfg, timeout, logger)
	if err != nil {
		logger.Error("invalid traffic config", "error", err)
		return 2
	}
	if limits != nil {
		defer limits.Close()
	}
	budgets, closeBudgets, err := openBudgets(cfg)
	if err != nil {
		logger.Error("invalid budgets config", "error", err)
		return 2
	}
	defer closeBudgets()
	docCfg := document.DefaultConfig()
	if cfg.Documents != nil {
		docCfg = cfg.Documents.WithDefaults()
	}

	// The plugin metrics read the manager once it exists; metrics may be
	// collected before (OTLP's reader runs on its own goroutine).
	var started atomic.Pointer[plugins.Manager]
	mx := metrics.New()
	tel, err := telemetry.New(context.Background(), cfg.Telemetry, telemetry.Options{
		Registerer: mx.Registry(), Version: Version, Instances: func() []telemetry.Instance { return instanceStates(started.Load()) },
	})
	if err != nil {
		logger.Error("invalid telemetry config", "error", err)
		return 2
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(ctx); err != nil {
			logger.Warn("telemetry: flushing at exit failed", "error", err)
		}
	}()

	st, err := openStore(cfg, mx, logger)
	if err != nil {
		logger.Error("cannot open the store", "error", err)
		return 2
	}
	defer st.Close()

	plat := detectPlatform(context.Background(), cfg, logger)
	mgr := plugins.Start(cfg, pluginOptions(cfg, base, tel.PluginEnv(), logger.Named("plugin")))
	defer mgr.Stop()
	started.Store(mgr)

	tokens, err := access.NewPageTokens(cfg.Server.PageTokenSecret)
	if err != nil {
		logger.Error("invalid server config", "error", err)
		return 2
	}
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
	mws, err := middleware.New(cfg, mgr, logger.Named("middleware"))
	if err != nil {
		logger.Error("invalid middleware config", "error", err)
		return 2
	}
	// The response cache's store lives as long as the process; reloads
	// change only which routes and keys use it.
	responses, err := cache.New(cfg.Cache)
	if err != nil {
		logger.Error("invalid cache config", "error", err)
		return 2
	}
	defer responses.Close()
	mx.Register(responses.Collector())
	mx.WatchDocuments(docs)
	mx.WatchExtractors(extractors)
	respStore, respRetention, err := openResponses(cfg, st)
	if err != nil {
		logger.Error("invalid responses config", "error", err)
		return 2
	}
	srv = server.New(server.Options{
		Keys: routing.Keys, Router: routing.Router, Plugins: mgr, Logger: logger.Named("http"),
		MaxBodyBytes: cfg.Server.MaxBodyBytes, RequestTimeout: timeout, AccessLog: cfg.Logging != nil && cfg.Logging.AccessLog,
		Documents: docs, Policies: routing.Policies, Metrics: mx, Telemetry: tel,
		ReadTimeout: readTimeout, ReadIdleTimeout: readIdle, PageTokens: tokens, Limits: limits,
		Middleware: mws, Cache: responses, CachePolicy: routing.Cache,
		Responses: respStore, ResponseRetention: respRetention,
		StoredKeys: st.keys, Admin: st.admin, Usage: st.usage,
		Prices: cfg.PriceTable(), Budgets: budgets, Platform: plat,
	})
	rl := newReloader(&reloader{path: *configPath, pluginsDir: *pluginsDir, listen: *listen,
		log: logger.Named("reload"), srv: srv, mgr: mgr, local: local, pluginEnv: tel.PluginEnv(), drainLimit: timeout + grace})
	mx.Register(rl.collectors()...)
	rl.started(cfg)
	defer rl.Close()
	hs := srv.HTTPServer()
	if local != nil {
		hs.Handler = local.wrap(hs.Handler)
	}

	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe(cfg.Server.Listen) }()
	logger.Info("llmproxy listening", "url", "http://"+cfg.Server.Listen, "version", Version, "config", cfg.Path,
		"plugins_dir", cfg.Server.PluginsDir)
	go reportInstances(logger, mgr)

	// SIGHUP reloads the configuration; reloads run one at a time and
	// signals that arrive during one are folded into the next.
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	go func() {
		for range hups {
			rl.Reload()
		}
	}()
	go rl.watch(*watch, rl.stopping)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	select {
	case err := <-errc:
		logger.Error("server stopped", "error", err)
		return 1
	case s := <-sigs:
		logger.Info("shutting down", "signal", s.String(), "grace", grace, "drain_delay", drainDelay)
	}
	signal.Stop(hups)
	shutdown(logger, srv, hs, extractors, sigs, drainDelay, grace)
	return 0
}

// abortWait bounds how long the host waits, after the shutdown grace, for
// the responses it cut to be written out.
const abortWait = 5 * time.Second

// shutdown stops the server: /readyz answers 503 at once; during
// drainDelay requests are still accepted, so that load balancers notice
// before the listener closes (a second signal skips the wait); then the
// listener closes and running requests, streams included, have until
// grace to finish. Whatever still runs then is cancelled: a stream ends
// with an SSE error event telling the client to retry. Extractions are
// ended at once; the other plugins are stopped by the caller afterwards.
func shutdown(log hclog.Logger, srv *server.Server, hs *fasthttp.Server, extractors *plugins.Extractors, sigs <-chan os.Signal, drainDelay, grace time.Duration) {
	srv.Drain()
	if drainDelay > 0 {
		select {
		case <-time.After(drainDelay):
		case <-sigs:
		}
	}
	// Requests waiting on a document extraction end at once (503) rather
	// than holding the shutdown until their deadline.
	extractors.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := hs.ShutdownWithContext(ctx)
	if err == nil {
		log.Info("every request finished")
		return
	}
	open := hs.GetOpenConnectionsCount()
	log.Warn("shutdown grace passed; cutting the requests that still run", "connections", open, "grace", grace)
	srv.Abort()
	deadline := time.Now().Add(abortWait)
	for hs.GetOpenConnectionsCount() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := hs.GetOpenConnectionsCount(); n > 0 {
		log.Warn("connections still open at exit", "connections", n)
	}
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

// instanceStates reads the state of every plugin instance for the
// telemetry's plugin metrics.
func instanceStates(m *plugins.Manager) []telemetry.Instance {
	if m == nil {
		return nil
	}
	ins := m.Instances()
	out := make([]telemetry.Instance, 0, len(ins))
	for _, in := range ins {
		st := in.Status()
		out = append(out, telemetry.Instance{Name: in.Name, Kind: in.Kind(), Type: in.Type,
			State: string(st.State), Ready: st.Serving(), Restarts: int64(st.Restarts)})
	}
	return out
}
