package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmproxy/llmproxy/host/internal/access"
	"github.com/llmproxy/llmproxy/host/internal/auth"
	"github.com/llmproxy/llmproxy/host/internal/cache"
	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/plugins"
	"github.com/llmproxy/llmproxy/host/internal/router"
	"github.com/llmproxy/llmproxy/host/internal/server"
)

// settleTimeout bounds how long a reload waits for its new instances to
// leave the starting state before it switches to them anyway.
const settleTimeout = 30 * time.Second

// reloader applies configuration reloads to a running host: it validates
// the new configuration as the validate command does, starts new and
// changed instances beside the running ones, switches keys, routes and
// storage rules in one step, and stops the instances that went away once
// the requests that may still use them have finished. A configuration
// that does not validate leaves everything as it is.
type reloader struct {
	path, pluginsDir, listen string
	log                      hclog.Logger
	srv                      *server.Server
	mgr                      *plugins.Manager
	local                    *localKey
	// pluginEnv is the environment every plugin process gets (telemetry).
	pluginEnv []string
	// drainLimit bounds the wait for requests of the previous routing.
	drainLimit time.Duration
	// fixed are the settings a reload cannot change (the server and
	// documents blocks), as the host started with them.
	fixed string

	mu       sync.Mutex // serialises reloads
	status   server.ReloadStatus
	retiring sync.WaitGroup
	stopping chan struct{}
	pending  []*plugins.Instance
	pmu      sync.Mutex

	reloads *prometheus.CounterVec
	last    prometheus.Gauge
}

func newReloader(r *reloader) *reloader {
	r.stopping = make(chan struct{})
	r.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmproxy_config_reloads_total",
		Help: "Configuration reloads, by result (success or failure).",
	}, []string{"result"})
	r.last = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "llmproxy_config_last_reload_successful",
		Help: "1 when the last configuration reload was applied (or none was tried), 0 when it was refused.",
	})
	r.last.Set(1)
	r.reloads.WithLabelValues("success")
	r.reloads.WithLabelValues("failure")
	return r
}

// collectors are the reload metrics, for the /metrics registry.
func (r *reloader) collectors() []prometheus.Collector {
	return []prometheus.Collector{r.reloads, r.last}
}

// started records the configuration the host started with.
func (r *reloader) started(cfg *config.File) {
	r.fixed = fixedSettings(cfg)
	r.status = server.ReloadStatus{OK: true, At: time.Now().UTC().Format(time.RFC3339),
		ConfigSHA256: configHash(cfg), Plugins: binaries(cfg)}
	r.srv.SetReloadStatus(r.status)
}

// Reload loads and validates the configuration and applies it. It returns
// the diagnostics of a refused configuration as an error.
func (r *reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.apply()
	r.status.At = time.Now().UTC().Format(time.RFC3339)
	if err != nil {
		r.status.OK, r.status.Error = false, err.Error()
		r.status.Failures++
		r.reloads.WithLabelValues("failure").Inc()
		r.last.Set(0)
		r.log.Error("configuration reload refused; the running configuration stays", "error", err)
	} else {
		r.status.OK, r.status.Error = true, ""
		r.status.Reloads++
		r.reloads.WithLabelValues("success").Inc()
		r.last.Set(1)
	}
	r.srv.SetReloadStatus(r.status)
	return err
}

func (r *reloader) apply() error {
	cfg, base, diags := loadConfig(r.path, r.pluginsDir)
	if r.listen != "" && cfg != nil {
		cfg.Server.Listen = r.listen
	}
	if !diags.HasErrors() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		diags = append(diags, checkHost(cfg)...)
		diags = append(diags, checkInstances(ctx, cfg, base, false)...)
		cancel()
	}
	for _, d := range diags {
		level := hclog.Warn
		if d.Severity == hcl.DiagError {
			level = hclog.Error
		}
		r.log.Log(level, "reload: "+d.Summary, "detail", d.Detail, "at", rangeOf(d))
	}
	if diags.HasErrors() {
		return fmt.Errorf("the new configuration is not valid: %s", summary(diags))
	}
	if cfg.Server.PublicURL == "" {
		cfg.Server.PublicURL = "http://" + cfg.Server.Listen
	}
	if fixedSettings(cfg) != r.fixed {
		r.log.Warn("reload: the server and documents blocks changed; they take effect at the next restart, the rest of the configuration now")
	}
	routing, err := buildRouting(cfg, r.local)
	if err != nil {
		return err
	}
	logger := r.log
	rel := r.mgr.Prepare(cfg, pluginOptions(cfg, base, r.pluginEnv, logger.Named("plugin")))
	deadline := time.Now().Add(settleTimeout)
	for !rel.Settled() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, in := range rel.Started {
		if st := in.Status(); !st.Serving() {
			r.log.Warn("reload: a new instance is not serving yet", "instance", in.Name, "state", st.State, "reason", st.Reason)
		}
	}
	stale := rel.Commit()
	drained := r.srv.Publish(routing)
	names := make([]string, 0, len(rel.Started))
	for _, in := range rel.Started {
		names = append(names, in.Name)
	}
	r.log.Info("configuration reloaded", "started", strings.Join(names, ","), "kept", strings.Join(rel.Kept, ","),
		"retiring", len(stale))
	r.status.ConfigSHA256, r.status.Plugins = configHash(cfg), r.versions(binaries(cfg))
	r.pmu.Lock()
	r.pending = append(r.pending, stale...)
	r.pmu.Unlock()
	r.retiring.Add(1)
	go func() {
		defer r.retiring.Done()
		ctx, cancel := context.WithTimeout(context.Background(), r.drainLimit)
		defer cancel()
		go func() {
			select {
			case <-r.stopping:
				cancel()
			case <-ctx.Done():
			}
		}()
		if err := drained(ctx); err != nil {
			r.log.Warn("requests of the previous configuration still run; stopping its instances anyway", "error", err)
		}
		rel.Finish()
		plugins.StopAll(stale)
		r.pmu.Lock()
		r.pending = without(r.pending, stale)
		r.pmu.Unlock()
		for _, in := range stale {
			r.log.Info("instance stopped after reload", "instance", in.Name)
		}
	}()
	return nil
}

// versions fills in the version each instance's plugin reported.
func (r *reloader) versions(list []server.PluginBinary) []server.PluginBinary {
	for i := range list {
		if in := r.mgr.Get(list[i].Instance); in != nil {
			list[i].Version = in.Status().Version
		}
	}
	return list
}

// watch reloads the configuration whenever the content of its file
// changes, checking every interval until stop closes. It reads through
// symlinks, so that a Kubernetes ConfigMap update (an atomic swap of the
// directory's ..data link) is seen like an edit in place.
func (r *reloader) watch(every time.Duration, stop <-chan struct{}) {
	if r.path == "" || every <= 0 {
		return
	}
	last := fileHash(r.path)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		h := fileHash(r.path)
		if h == "" || h == last {
			continue
		}
		last = h
		r.log.Info("the config file changed; reloading", "path", r.path)
		r.Reload()
	}
}

// fileHash is the SHA-256 of the file at path, or "" when it cannot be
// read.
func fileHash(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Close stops the instances still retiring after a reload, at once.
func (r *reloader) Close() {
	close(r.stopping)
	r.retiring.Wait()
}

func without(list, drop []*plugins.Instance) []*plugins.Instance {
	out := list[:0]
	for _, in := range list {
		keep := true
		for _, d := range drop {
			if d == in {
				keep = false
			}
		}
		if keep {
			out = append(out, in)
		}
	}
	return out
}

// buildRouting builds the keys, routes and storage rules of cfg. Without
// an api_key block the local key of a host that started keyless is used;
// a host that started with keys cannot drop them without a restart.
func buildRouting(cfg *config.File, local *localKey) (server.Routing, error) {
	if len(cfg.APIKeys) == 0 {
		if local == nil {
			return server.Routing{}, errors.New("the new configuration has no api_key block; a host started with keys needs a restart to serve without them")
		}
		cfg.APIKeys = []config.APIKey{local.key()}
	}
	keys, err := auth.New(cfg.APIKeys)
	if err == nil {
		err = keys.CheckListener(cfg.Server.Listen)
	}
	if err != nil {
		return server.Routing{}, err
	}
	rtr, err := router.New(cfg.Routes, cfg.Server)
	if err != nil {
		return server.Routing{}, fmt.Errorf("invalid route config: %w", err)
	}
	// Each routing gets its own circuit breakers, which start closed.
	bp, err := cfg.CircuitBreaker.Policy()
	if err != nil {
		return server.Routing{}, fmt.Errorf("invalid circuit_breaker config: %w", err)
	}
	rtr.SetBreaker(bp)
	policies := map[string]*access.Policy{}
	for i := range cfg.Storage {
		p, err := access.NewPolicy(&cfg.Storage[i])
		if err != nil {
			return server.Routing{}, fmt.Errorf("invalid storage config for %s: %w", cfg.Storage[i].Name, err)
		}
		policies[cfg.Storage[i].Name] = p
	}
	cp, err := cache.NewPolicy(cfg)
	if err != nil {
		return server.Routing{}, fmt.Errorf("invalid cache config: %w", err)
	}
	return server.Routing{Keys: keys, Router: rtr, Policies: policies, Cache: cp}, nil
}

// pluginOptions are the plugin manager's options for cfg.
func pluginOptions(cfg *config.File, base string, env []string, logger hclog.Logger) plugins.Options {
	sup := cfg.Server.Supervision()
	level := "info"
	if cfg.Logging != nil && cfg.Logging.Level != "" {
		level = hclog.LevelFromString(cfg.Logging.Level).String()
	}
	return plugins.Options{
		Env:            env,
		Dir:            cfg.Server.PluginsDir,
		BaseDir:        base,
		HealthInterval: sup.Interval,
		HealthTimeout:  sup.Timeout,
		HealthFailures: sup.Failures,
		Settings: map[string]string{
			"public_url": cfg.Server.PublicURL,
			"log_level":  level,
		},
		Logger: logger,
		Files:  cfg.Parser.Files(),
	}
}

// fixedSettings renders what a reload leaves as it is, for comparison.
func fixedSettings(cfg *config.File) string {
	b, _ := json.Marshal(struct {
		Server    *config.Server
		Documents any
	}{cfg.Server, cfg.Documents})
	return string(b)
}

// configHash is the SHA-256 of the configuration's source files.
func configHash(cfg *config.File) string {
	h := sha256.New()
	files := cfg.Parser.Files()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		h.Write([]byte(n))
		h.Write(files[n].Bytes)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// binaries lists the plugin binary each enabled instance of cfg runs.
func binaries(cfg *config.File) []server.PluginBinary {
	var out []server.PluginBinary
	pins := map[string]config.Plugin{}
	for _, p := range cfg.Plugins {
		pins[p.Name] = p
	}
	add := func(kind string, list []config.Instance) {
		for _, ic := range list {
			if !ic.IsEnabled() {
				continue
			}
			path := pins[kind+"-"+ic.Type].Path
			if path != "" && !filepath.IsAbs(path) && cfg.Path != "" {
				path = filepath.Join(filepath.Dir(cfg.Path), path)
			}
			if path == "" {
				path, _ = plugins.Find(cfg.Server.PluginsDir, kind, ic.Type)
			}
			b := server.PluginBinary{Instance: ic.Name, Path: path}
			if path != "" {
				b.SHA256, _ = plugins.FileSHA256(path)
			}
			out = append(out, b)
		}
	}
	add("provider", cfg.Providers)
	add("storage", cfg.Storage)
	return out
}

func rangeOf(d *hcl.Diagnostic) string {
	if d.Subject == nil {
		return ""
	}
	return d.Subject.String()
}

// summary joins the error diagnostics in one line.
func summary(diags hcl.Diagnostics) string {
	var parts []string
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		s := d.Summary
		if d.Detail != "" {
			s += ": " + d.Detail
		}
		if d.Subject != nil {
			s = d.Subject.String() + ": " + s
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
