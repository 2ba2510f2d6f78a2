package plugins

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"crypto/sha256"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/hcl/v2"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/credentials"
	"github.com/llmproxy/llmproxy/host/internal/glob"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// State is where an instance is in its lifecycle.
type State string

// States.
const (
	Starting   State = "starting"
	Ready      State = "ready"
	Restarting State = "restarting"
	Failed     State = "failed"
	Disabled   State = "disabled"
	Stopped    State = "stopped"
)

// Status is an instance's state and, when not ready, why.
type Status struct {
	State    State     `json:"state"`
	Reason   string    `json:"reason,omitempty"`
	Since    time.Time `json:"since"`
	Restarts int64     `json:"restarts"`
	Plugin   string    `json:"plugin,omitempty"`
	Version  string    `json:"version,omitempty"`
	PID      int       `json:"pid,omitempty"`
}

// Options are what every instance needs from the host.
type Options struct {
	// Dir is the plugins directory.
	Dir string
	// Pins maps "provider-openai"-style names to a path and/or SHA-256.
	Pins map[string]config.Plugin
	// BaseDir resolves relative paths in config functions.
	BaseDir string
	// Settings go to every plugin's Configure (public_url, log_level).
	Settings map[string]string
	Logger   hclog.Logger
	// Files are the parsed config sources, for quoting the line a
	// diagnostic points at.
	Files map[string]*hcl.File
	// HealthInterval is how often a ready plugin is asked for its health.
	HealthInterval time.Duration
}

// driver is what differs between provider and storage plugins.
type driver interface {
	kind() string
	plugins() map[int]goplugin.PluginSet
	// describe returns the dispensed client's schema, credentials,
	// name and version.
	describe(ctx context.Context, raw any) (described, error)
	configure(ctx context.Context, raw any, instance string, cfg []byte, creds, settings map[string]string) (schema.Diagnostics, error)
	health(ctx context.Context, raw any) error
}

type described struct {
	name, version string
	schema        schema.Schema
	credentials   []schema.Credential
	full          any
}

// live is one running plugin process and its dispensed client.
type live struct {
	client *goplugin.Client
	raw    any
	desc   described
}

// kill ends the process, then releases what the client held.
func (l *live) kill() {
	l.client.Kill()
	if c, ok := l.raw.(interface{ Close() }); ok {
		c.Close()
	}
}

// Instance is one configured instance and its supervised plugin process.
type Instance struct {
	Name string
	Type string
	cfg  config.Instance
	opts *Options
	drv  driver
	log  hclog.Logger

	status   atomic.Pointer[Status]
	cur      atomic.Pointer[live]
	restarts atomic.Int64
	// reported remembers the config diagnostics already logged.
	reported sync.Map
	// signingKey holds the storage signing key (a string).
	signingKey atomic.Value
	wake       chan struct{}
	stop       chan struct{}
	done       chan struct{}
	stopOnce   sync.Once
}

func newInstance(cfg config.Instance, drv driver, opts *Options) *Instance {
	in := &Instance{
		Name: cfg.Name, Type: cfg.Type, cfg: cfg, opts: opts, drv: drv,
		log:  opts.Logger.Named(cfg.Name),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	var random [32]byte
	rand.Read(random[:])
	in.signingKey.Store(hex.EncodeToString(random[:]))
	in.setStatus(Starting, "")
	return in
}

// Kind is "provider" or "storage".
func (in *Instance) Kind() string { return in.drv.kind() }

// Status returns the instance's current status.
func (in *Instance) Status() Status { return *in.status.Load() }

func (in *Instance) setStatus(s State, reason string) {
	st, changed := in.storeStatus(s, reason)
	if !changed {
		return
	}
	switch s {
	case Ready:
		in.log.Info("instance ready", "plugin", st.Plugin, "version", st.Version, "pid", st.PID)
	case Failed:
		in.log.Error("instance not ready", "reason", reason)
	case Restarting:
		in.log.Warn("instance restarting", "reason", reason)
	}
}

// storeStatus records a new status and reports whether its state or
// reason changed.
func (in *Instance) storeStatus(s State, reason string) (*Status, bool) {
	prev := in.status.Load()
	st := &Status{State: s, Reason: reason, Since: time.Now(), Restarts: in.restarts.Load()}
	if l := in.cur.Load(); l != nil {
		st.Plugin, st.Version = l.desc.name, l.desc.version
		if rc := l.client.ReattachConfig(); rc != nil {
			st.PID = rc.Pid
		}
	}
	in.status.Store(st)
	return st, prev == nil || prev.State != s || prev.Reason != reason
}

// fail marks the instance failed for a reason a restart cannot fix.
// Credentials that are simply absent are the operator's choice, not a
// fault: they are logged at INFO with what would enable the instance;
// every other reason is logged at ERROR.
func (in *Instance) fail(err error) {
	var absent *credentials.AbsentError
	if !errors.As(err, &absent) {
		in.setStatus(Failed, err.Error())
		return
	}
	if _, changed := in.storeStatus(Failed, err.Error()); changed {
		in.log.Info("disabled: "+absent.Hint()+" to enable", "reason", err.Error())
	}
}

// client returns the live plugin or a 503 saying why there is none.
func (in *Instance) client() (*live, error) {
	l := in.cur.Load()
	st := in.status.Load()
	if l == nil || st.State != Ready {
		msg := fmt.Sprintf("instance %s is %s", in.Name, st.State)
		if st.Reason != "" {
			msg += ": " + st.Reason
		}
		e := openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "instance_unavailable", msg)
		e.RetryAfter = time.Second
		return nil, e
	}
	return l, nil
}

// Poke asks the supervisor to check the process now, e.g. after a request
// saw the connection fail.
func (in *Instance) Poke() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// permanent marks errors a plain restart cannot fix.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// run is the supervisor loop.
func (in *Instance) run() {
	defer close(in.done)
	if !in.cfg.IsEnabled() {
		in.setStatus(Disabled, "enabled = false in the config")
		<-in.stop
		return
	}
	backoff := time.Duration(0)
	for {
		started := time.Now()
		l, err := in.start()
		if err != nil {
			var p permanent
			if errors.As(err, &p) {
				in.fail(err)
				backoff = max(backoff*2, 5*time.Second)
				backoff = min(backoff, time.Minute)
			} else {
				in.setStatus(Restarting, err.Error())
				backoff = nextBackoff(backoff)
			}
			if !in.sleep(backoff) {
				return
			}
			continue
		}
		in.cur.Store(l)
		in.setStatus(Ready, "")
		reason := in.watch(l)
		in.cur.CompareAndSwap(l, nil)
		l.kill()
		if reason == "" {
			in.setStatus(Stopped, "")
			return
		}
		in.restarts.Add(1)
		in.setStatus(Restarting, reason)
		if time.Since(started) > 30*time.Second {
			backoff = 0
		} else {
			backoff = nextBackoff(backoff)
		}
		if !in.sleep(backoff) {
			return
		}
	}
}

func nextBackoff(b time.Duration) time.Duration {
	switch {
	case b == 0:
		return 50 * time.Millisecond
	case b >= 10*time.Second:
		return 10 * time.Second
	}
	return b * 2
}

func (in *Instance) sleep(d time.Duration) bool {
	if d <= 0 {
		select {
		case <-in.stop:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-in.stop:
		in.setStatus(Stopped, "")
		return false
	case <-t.C:
		return true
	}
}

// watch blocks while the plugin is healthy; it returns why it no longer
// is, or "" when the instance was stopped.
func (in *Instance) watch(l *live) string {
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	interval := in.opts.HealthInterval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	health := time.NewTicker(interval)
	defer health.Stop()
	failures := 0
	for {
		select {
		case <-in.stop:
			return ""
		case <-poll.C:
		case <-in.wake:
		case <-health.C:
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			err := in.drv.health(ctx, l.raw)
			cancel()
			var oe *openai.Error
			if err != nil && errors.As(err, &oe) && oe.Code == "plugin_unavailable" {
				failures++
				if failures >= 3 {
					return "plugin stopped answering health checks: " + err.Error()
				}
			} else {
				failures = 0
			}
		}
		if l.client.Exited() {
			return "plugin process exited"
		}
	}
}

// start launches and configures one plugin process.
func (in *Instance) start() (*live, error) {
	kind := in.drv.kind()
	pinName := kind + "-" + in.cfg.Type
	pin := in.opts.Pins[pinName]
	path := pin.Path
	if path == "" {
		p, err := Find(in.opts.Dir, kind, in.cfg.Type)
		if err != nil {
			return nil, permanent{err}
		}
		path = p
	}
	creds, err := credentials.Resolve(context.Background(), in.cfg.Credentials)
	if err != nil {
		return nil, permanent{err}
	}
	if kind == "storage" {
		if k := creds[SigningKeyCredential]; k != "" {
			in.signingKey.Store(k)
		} else {
			creds[SigningKeyCredential] = in.signingKey.Load().(string)
		}
	}
	cmd := exec.Command(path)
	cmd.Env = in.environment()
	bindToHost(cmd)
	cc := &goplugin.ClientConfig{
		HandshakeConfig:  handshake,
		VersionedPlugins: in.drv.plugins(),
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		Logger:           in.log,
		StartTimeout:     15 * time.Second,
		GRPCDialOptions:  dialOptions(),
	}
	if pin.SHA256 != "" {
		want, err := hex.DecodeString(pin.SHA256)
		if err != nil || len(want) != sha256.Size {
			return nil, permanent{fmt.Errorf("plugin %q: sha256 must be 64 hex digits", pinName)}
		}
		cc.SecureConfig = &goplugin.SecureConfig{Checksum: want, Hash: sha256.New()}
	}
	client := goplugin.NewClient(cc)
	proto, err := client.Client()
	if err != nil {
		client.Kill()
		if errors.Is(err, goplugin.ErrChecksumsDoNotMatch) {
			got, _ := FileSHA256(path)
			return nil, permanent{fmt.Errorf("plugin %s refused: its sha256 is %s but the config pins %s; rebuild the plugin or update the pin in plugin %q { sha256 = ... }", path, got, pin.SHA256, pinName)}
		}
		var incompatible *IncompatibleError
		if err = startError(path, cc.VersionedPlugins, err); errors.As(err, &incompatible) {
			return nil, permanent{err}
		}
		return nil, err
	}
	raw, err := proto.Dispense(in.drv.kind())
	if err != nil {
		client.Kill()
		return nil, permanent{fmt.Errorf("plugin %s does not serve the %s service (protocol v%d): %w", path, kind, handshake.ProtocolVersion, err)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	desc, err := in.drv.describe(ctx, raw)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("describe: %w", err)
	}
	cfgJSON, diags := config.DecodeInstance(&in.cfg, desc.schema, in.opts.BaseDir)
	if diags.HasErrors() {
		client.Kill()
		return nil, permanent{fmt.Errorf("config block: %s", in.reportDiagnostics(diags))}
	}
	declared := slices.Clip(in.cfg.Credentials)
	if kind == "storage" {
		declared = append(declared, config.Credential{Name: SigningKeyCredential})
	}
	if err := credentials.CheckRequired(declared, desc.credentials); err != nil {
		client.Kill()
		return nil, permanent{err}
	}
	pdiags, err := in.drv.configure(ctx, raw, in.Name, cfgJSON, creds, in.opts.Settings)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("configure: %w", err)
	}
	if len(pdiags) > 0 {
		msg := in.reportDiagnostics(config.PluginDiagnostics(&in.cfg, pdiags))
		if pdiags.HasErrors() {
			client.Kill()
			return nil, permanent{fmt.Errorf("plugin rejected its config: %s", msg)}
		}
	}
	return &live{client: client, raw: raw, desc: desc}, nil
}

// reportDiagnostics logs config diagnostics once each, as structured
// records with their file:line:column, and returns them as one line for
// the instance's status.
func (in *Instance) reportDiagnostics(diags hcl.Diagnostics) string {
	var parts []string
	for _, d := range diags {
		pos := config.Position(d)
		line := d.Summary
		if d.Detail != "" {
			line += ": " + d.Detail
		}
		if pos != "" {
			line = pos + ": " + line
		}
		parts = append(parts, line)
		if _, seen := in.reported.LoadOrStore(line, true); seen {
			continue
		}
		args := []any{"at", pos, "summary", d.Summary, "detail", d.Detail}
		if src := in.sourceLine(d.Subject); src != "" {
			args = append(args, "source", src)
		}
		if d.Severity == hcl.DiagWarning {
			in.log.Warn("config warning", args...)
		} else {
			in.log.Error("config error", args...)
		}
	}
	return strings.Join(parts, "; ")
}

// sourceLine returns the trimmed config line a range starts on.
func (in *Instance) sourceLine(r *hcl.Range) string {
	if r == nil {
		return ""
	}
	f := in.opts.Files[r.Filename]
	if f == nil {
		return ""
	}
	lines := strings.Split(string(f.Bytes), "\n")
	if r.Start.Line < 1 || r.Start.Line > len(lines) {
		return ""
	}
	return strings.TrimSpace(lines[r.Start.Line-1])
}

// environment is the plugin's explicit environment: nothing from the host
// leaks unless the instance asks for it with inherit_env.
func (in *Instance) environment() []string {
	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"LLMPROXY_INSTANCE=" + in.Name,
		"LLMPROXY_LOG_LEVEL=" + in.opts.Settings["log_level"],
	}
	// Go runtime tuning the operator gave the host applies to its plugins
	// too (an instance's own env below still wins).
	for _, k := range []string{"TMPDIR", "GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG"} {
		if v := os.Getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	if len(in.cfg.InheritEnv) > 0 {
		for _, kv := range os.Environ() {
			k, _, _ := strings.Cut(kv, "=")
			if glob.Any(in.cfg.InheritEnv, k) {
				env = append(env, kv)
			}
		}
	}
	for k, v := range in.cfg.Env {
		env = append(env, k+"="+v)
	}
	return env
}

// Stop kills the plugin process and ends the supervisor.
func (in *Instance) Stop() {
	in.stopOnce.Do(func() { close(in.stop) })
	<-in.done
	if l := in.cur.Swap(nil); l != nil {
		l.kill()
	}
}

// resolvePath makes a plugins dir absolute relative to base.
func resolvePath(base, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}
