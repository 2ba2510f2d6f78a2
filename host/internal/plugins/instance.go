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
	mathrand "math/rand/v2"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/hcl/v2"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/credentials"
	"github.com/llmproxy/llmproxy/host/internal/glob"
	"github.com/llmproxy/llmproxy/host/internal/platform"
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
	// Degraded is a ready instance that reports trouble: its HealthChecker
	// failed, it missed a health check, or its upstream rejected its
	// credentials. It still serves, but routes try it after healthy
	// targets. It is never stored: Status derives it from Ready.
	Degraded State = "degraded"
)

// Serving reports whether the instance takes requests (ready or degraded).
func (s Status) Serving() bool { return s.State == Ready || s.State == Degraded }

// Status is an instance's state and, when not ready, why.
type Status struct {
	State    State     `json:"state"`
	Reason   string    `json:"reason,omitempty"`
	Since    time.Time `json:"since"`
	Restarts int64     `json:"restarts"`
	Plugin   string    `json:"plugin,omitempty"`
	Version  string    `json:"version,omitempty"`
	PID      int       `json:"pid,omitempty"`
	// Credentials say, per credential, which source of its chain
	// produced the value and what the others said; never a value.
	Credentials []credentials.Status `json:"credentials,omitempty"`
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
	// HealthInterval is how often a ready plugin is asked for its health,
	// HealthTimeout how long it may take to answer, and HealthFailures
	// how many missed answers in a row get the process killed and
	// replaced. Zero values take config.Default*.
	HealthInterval time.Duration
	HealthTimeout  time.Duration
	HealthFailures int
	// Env is added to every plugin's environment (the telemetry
	// exporter's settings); OTEL_SERVICE_NAME is set per plugin.
	Env []string

	// backends finds the secrets instances credential sources name.
	backends func(name string) credentials.Backend
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
	// cfg is the config JSON sent at Configure, sent again with each
	// rotation of the credentials; creds are the credentials the plugin
	// holds now. Only the supervisor goroutine touches creds.
	cfg   []byte
	creds map[string]string
	// expires is when the first of creds stops working (zero: never);
	// refreshAt is when to resolve them again (zero: only on a signal),
	// and retry the wait after the next failed refresh.
	expires   time.Time
	refreshAt time.Time
	retry     time.Duration
	// leases are the store leases behind creds; leaseTTL is the lifetime
	// they were granted with, asked for again at each renewal. polled is
	// set when a store asked to be read again: renewing would not see a
	// new version, so such credentials are always resolved again.
	leases   []credentials.Lease
	leaseTTL time.Duration
	polled   bool
}

// killGrace is how long a graceful plugin shutdown may take before the
// process is killed outright.
const killGrace = 5 * time.Second

// kill ends the process, then releases what the client held. A hung
// process (stopped, or not answering) is killed outright first: go-plugin's
// graceful shutdown asks the plugin over gRPC and would wait for it
// forever. Any other process gets killGrace to exit.
func (l *live) kill(hung bool) {
	pid := 0
	if rc := l.client.ReattachConfig(); rc != nil {
		pid = rc.Pid
	}
	if pid > 0 {
		if hung {
			killPID(pid)
		} else {
			t := time.AfterFunc(killGrace, func() { killPID(pid) })
			defer t.Stop()
		}
	}
	l.client.Kill()
	if c, ok := l.raw.(interface{ Close() }); ok {
		c.Close()
	}
}

// killPID sends SIGKILL (or the platform's equivalent) to pid.
func killPID(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
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

	// degradation is why a ready instance is degraded; degraded mirrors
	// whether any reason is set, for the request path.
	degMu       sync.Mutex
	degradation [numReasons]string
	degSince    time.Time
	degraded    atomic.Bool

	// credStatus is the outcome of the last resolution of the
	// credentials; refresh asks the supervisor to resolve them again and
	// push them to the plugin when they changed; lastAuthRefresh is when
	// an upstream rejection last asked for that (unix nanoseconds).
	credStatus      atomic.Pointer[[]credentials.Status]
	refresh         chan struct{}
	lastAuthRefresh atomic.Int64
}

// reason indexes the causes of degradation.
type reason int

const (
	reasonHealth      reason = iota // the plugin's HealthChecker said not ok
	reasonMissed                    // health checks went unanswered
	reasonUpstream                  // the upstream rejected the credentials
	reasonCredentials               // re-resolving or pushing the credentials failed
	numReasons
)

func newInstance(cfg config.Instance, drv driver, opts *Options) *Instance {
	in := &Instance{
		Name: cfg.Name, Type: cfg.Type, cfg: cfg, opts: opts, drv: drv,
		log:  opts.Logger.Named(cfg.Name),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		refresh: make(chan struct{}, 1),
	}
	var random [32]byte
	rand.Read(random[:])
	in.signingKey.Store(hex.EncodeToString(random[:]))
	in.setStatus(Starting, "")
	return in
}

// Kind is "provider" or "storage".
func (in *Instance) Kind() string { return in.drv.kind() }

// Status returns the instance's current status. A ready instance with a
// reason to be degraded is reported as Degraded, with the reasons.
func (in *Instance) Status() Status {
	st := *in.status.Load()
	if cs := in.credStatus.Load(); cs != nil {
		st.Credentials = *cs
	}
	if st.State != Ready || !in.degraded.Load() {
		return st
	}
	in.degMu.Lock()
	defer in.degMu.Unlock()
	var rs []string
	for _, r := range in.degradation {
		if r != "" {
			rs = append(rs, r)
		}
	}
	if len(rs) > 0 {
		st.State, st.Reason, st.Since = Degraded, strings.Join(rs, "; "), in.degSince
	}
	return st
}

// Degraded reports whether the instance serves but reports trouble; routes
// try it after healthy targets.
func (in *Instance) Degraded() bool { return in.degraded.Load() }

// degrade sets (or, with "", clears) one reason for degradation and logs
// the transitions.
func (in *Instance) degrade(r reason, why string) {
	in.degMu.Lock()
	defer in.degMu.Unlock()
	prev := in.degradation[r]
	if prev == why {
		return
	}
	in.degradation[r] = why
	on := false
	for _, x := range in.degradation {
		on = on || x != ""
	}
	was := in.degraded.Swap(on)
	switch {
	case on && !was:
		in.degSince = time.Now()
		in.log.Warn("instance degraded", "reason", why)
	case why != "":
		in.log.Warn("instance degraded", "reason", why)
	case !on && was:
		in.log.Info("instance healthy again", "was", prev)
	}
}

// clearDegradation forgets every reason, e.g. when a new process starts.
func (in *Instance) clearDegradation() {
	for r := range numReasons {
		in.degrade(r, "")
	}
}

// UpstreamRejectedCredentials marks the instance degraded because its
// upstream answered a call with 401 or 403; a later success clears it.
// It also asks for one immediate re-resolution of the credentials, at
// most once per authRefreshInterval however many requests were rejected:
// a rotated secret the watch has not seen yet is picked up at once.
func (in *Instance) UpstreamRejectedCredentials() {
	in.degrade(reasonUpstream, "upstream rejected credentials")
	now := time.Now().UnixNano()
	last := in.lastAuthRefresh.Load()
	if now-last >= int64(authRefreshInterval) && in.lastAuthRefresh.CompareAndSwap(last, now) {
		in.RefreshCredentials()
	}
}

// authRefreshInterval bounds how often upstream rejections re-resolve the
// credentials.
const authRefreshInterval = time.Second

// RefreshCredentials asks the supervisor to resolve the instance's
// credentials again and, when they changed, push them to the running
// plugin with Configure. It does not wait.
func (in *Instance) RefreshCredentials() {
	select {
	case in.refresh <- struct{}{}:
	default:
	}
}

// Unresponsive marks the instance degraded because a request saw its
// plugin fail to take a call in time, and asks for a health check now;
// the next answered health check clears it.
func (in *Instance) Unresponsive(why string) {
	in.degrade(reasonMissed, why)
	in.Poke()
}

// Served records that a call through the instance succeeded, clearing a
// credentials degradation.
func (in *Instance) Served() {
	if in.degraded.Load() {
		in.degrade(reasonUpstream, "")
	}
}

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
	w, err := credentials.Watch(in.cfg.Credentials, 0, in.RefreshCredentials)
	if err != nil {
		in.log.Warn("credential files are not watched; changes are seen at restart or after an upstream rejection", "error", err)
	}
	defer w.Close()
	sw := credentials.Resolver{Backends: in.opts.backends}.WatchStores(in.cfg.Credentials, in.RefreshCredentials, in.log.Debug)
	defer sw.Close()
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
		in.clearDegradation()
		in.cur.Store(l)
		in.setStatus(Ready, "")
		reason, hung := in.watch(l)
		in.cur.CompareAndSwap(l, nil)
		l.kill(hung)
		if reason == "" {
			// The plugin is gone for good: nothing uses its leases.
			in.revoke(l.leases)
			in.setStatus(Stopped, "")
			return
		}
		// The next process resolves credentials of its own.
		in.revokeLater(l.leases, 0)
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

// watch blocks while the plugin process runs and answers health checks.
// It returns why it no longer does (hung when the process stopped
// answering rather than exited), or "" when the instance was stopped.
// Health is checked every HealthInterval, and at once when a request
// pokes the instance.
func (in *Instance) watch(l *live) (reason string, hung bool) {
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	health := time.NewTicker(in.healthInterval())
	defer health.Stop()
	missed := 0
	var last time.Time
	for {
		check := false
		select {
		case <-in.stop:
			return "", false
		case <-poll.C:
			if !l.refreshAt.IsZero() && !time.Now().Before(l.refreshAt) {
				in.rotate(l, true)
			}
		case <-in.wake:
			// Pokes come in bursts when requests fail together.
			check = time.Since(last) > 250*time.Millisecond
		case <-health.C:
			check = true
		case <-in.refresh:
			in.rotate(l, false)
		}
		if l.client.Exited() {
			return "plugin process exited", false
		}
		if !check {
			continue
		}
		last = time.Now()
		if r := in.checkHealth(l, &missed); r != "" {
			return r, true
		}
	}
}

func (in *Instance) healthInterval() time.Duration {
	if d := in.opts.HealthInterval; d > 0 {
		return d
	}
	return config.DefaultHealthInterval
}

// checkHealth asks the plugin for its health once, within HealthTimeout.
// An answer of "not ok" degrades the instance; no answer counts as a
// missed check (degrading it too), and HealthFailures missed checks in a
// row return the reason to replace the process.
func (in *Instance) checkHealth(l *live, missed *int) string {
	timeout := in.opts.HealthTimeout
	if timeout <= 0 {
		timeout = config.DefaultHealthTimeout
	}
	failures := in.opts.HealthFailures
	if failures <= 0 {
		failures = config.DefaultHealthFailures
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	err := in.drv.health(ctx, l.raw)
	timedOut := ctx.Err() != nil
	cancel()
	var oe *openai.Error
	switch {
	case err == nil:
		*missed = 0
		in.degrade(reasonMissed, "")
		in.degrade(reasonHealth, "")
	case timedOut || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &oe) && (oe.Code == "plugin_unavailable" || oe.Code == "plugin_timeout"):
		*missed++
		if *missed >= failures {
			return fmt.Sprintf("plugin missed %d health checks in a row (timeout %v): %v", *missed, timeout, err)
		}
		in.degrade(reasonMissed, fmt.Sprintf("plugin missed %d of %d health checks (timeout %v)", *missed, failures, timeout))
	default:
		*missed = 0
		in.degrade(reasonMissed, "")
		in.degrade(reasonHealth, "health check failed: "+err.Error())
	}
	return ""
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
	res, err := in.resolveCredentials(context.Background())
	if err != nil {
		in.revokeLater(res.Leases, 0)
		return nil, permanent{err}
	}
	started := false
	defer func() {
		if !started {
			// No plugin holds these values: end their leases now.
			in.revokeLater(res.Leases, 0)
		}
	}()
	creds := res.Values
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
	l := &live{client: client, raw: raw, desc: desc, cfg: cfgJSON, creds: creds}
	l.setResolution(time.Now(), res)
	started = true
	return l, nil
}

// nextRefresh is when a resolution is refreshed: before its values
// expire, or when a store asked to be polled, whichever comes first.
func nextRefresh(now time.Time, res credentials.Resolution) time.Time {
	at := refreshTime(now, res.Expires)
	if p := res.RefreshAfter; !p.IsZero() && (at.IsZero() || p.Before(at)) {
		return p
	}
	return at
}

// refreshTime is when credentials resolved at now and expiring at expires
// are resolved again: at two thirds of their remaining lifetime, minus up
// to a tenth of it at random so that instances sharing a lease do not all
// refresh at once. Zero when they do not expire.
func refreshTime(now, expires time.Time) time.Time {
	if expires.IsZero() {
		return time.Time{}
	}
	life := expires.Sub(now)
	if life <= 0 {
		return now
	}
	at := life * 2 / 3
	if jitter := int64(life / 10); jitter > 0 {
		at -= time.Duration(mathrand.Int64N(jitter))
	}
	return now.Add(at)
}

// resolveCredentials resolves the instance's credential chains and records
// what each source said. A storage instance also gets its signing key.
func (in *Instance) resolveCredentials(ctx context.Context) (credentials.Resolution, error) {
	res, err := credentials.Resolver{Backends: in.opts.backends}.Resolve(ctx, in.cfg.Credentials)
	in.logSources(res.Statuses)
	in.credStatus.Store(&res.Statuses)
	if err != nil {
		return res, err
	}
	creds := res.Values
	if in.drv.kind() == "storage" {
		if k := creds[SigningKeyCredential]; k != "" {
			in.signingKey.Store(k)
		} else {
			creds[SigningKeyCredential] = in.signingKey.Load().(string)
		}
	}
	return res, nil
}

// logSources logs what the sources of each credential chain said when it
// differs from the last resolution: the source used, and why each earlier
// one was passed over (unavailable) or stopped the chain (failed). Values
// are never part of a status.
func (in *Instance) logSources(statuses []credentials.Status) {
	prev := in.credStatus.Load()
	for i, st := range statuses {
		if prev != nil && i < len(*prev) && sameSources((*prev)[i], st) {
			continue
		}
		args := []any{"credential", st.Name, "rotation", st.Rotation}
		if st.Source != "" {
			args = append(args, "source", st.Source)
		}
		failed := false
		for _, s := range st.Sources {
			switch s.State {
			case credentials.SourceUnavailable:
				args = append(args, "unavailable", s.Source+": "+s.Reason)
			case credentials.SourceFailed:
				failed = true
				args = append(args, "failed", s.Source+": "+s.Reason)
			}
		}
		if failed {
			in.log.Warn("credential source failed", args...)
		} else {
			in.log.Info("credential resolved", args...)
		}
	}
}

// sameSources reports whether two resolutions of a credential used the
// same source and passed over the others for the same reasons.
func sameSources(a, b credentials.Status) bool {
	if a.Source != b.Source || len(a.Sources) != len(b.Sources) {
		return false
	}
	for i := range a.Sources {
		if a.Sources[i] != b.Sources[i] {
			return false
		}
	}
	return true
}

// rotateTimeout bounds one re-resolution and Configure.
const rotateTimeout = 30 * time.Second

// rotate resolves the credentials again and, when they changed, pushes
// them to the running plugin with Configure; the plugin swaps them in
// without failing requests in flight. When resolving or Configure fails,
// the plugin keeps the credentials it has and the instance is degraded
// with the reason until a later rotation succeeds. Values are never
// logged, only the names of the credentials that changed.
//
// When the refresh is due (renew) and every value comes from a renewable
// lease, the leases are renewed instead and the plugin keeps its values;
// a renewal that fails or no longer extends the lease enough (its
// maximum lifetime is near) falls back to resolving again. Leases that
// no value uses any more are revoked once requests in flight had time to
// finish.
func (in *Instance) rotate(l *live, renew bool) {
	ctx, cancel := context.WithTimeout(context.Background(), rotateTimeout)
	defer cancel()
	if renew && !l.polled && credentials.Renewable(l.leases) && in.renewLeases(ctx, l) {
		return
	}
	res, err := in.resolveCredentials(ctx)
	if err != nil {
		in.revokeLater(credentials.Unused(res.Leases, l.leases), 0)
		in.refreshFailed(l, "credential refresh failed", err)
		return
	}
	creds := res.Values
	var changed []string
	for k, v := range creds {
		if l.creds[k] != v {
			changed = append(changed, k)
		}
	}
	for k := range l.creds {
		if _, ok := creds[k]; !ok {
			changed = append(changed, k)
		}
	}
	if len(changed) == 0 {
		in.refreshed(l, res)
		return
	}
	slices.Sort(changed)
	diags, err := in.drv.configure(ctx, l.raw, in.Name, l.cfg, creds, in.opts.Settings)
	if err == nil && diags.HasErrors() {
		err = errors.New(in.reportDiagnostics(config.PluginDiagnostics(&in.cfg, diags)))
	}
	if err != nil {
		in.revokeLater(credentials.Unused(res.Leases, l.leases), 0)
		in.refreshFailed(l, "the plugin refused the rotated credentials", err)
		return
	}
	l.creds = creds
	in.log.Info("credentials rotated", "credentials", strings.Join(changed, ","))
	in.refreshed(l, res)
}

// refreshed records a successful refresh: the next one is scheduled from
// the new expiry, leases no longer used are revoked, and a degradation or
// failure it caused is cleared.
func (in *Instance) refreshed(l *live, res credentials.Resolution) {
	old := l.leases
	l.setResolution(time.Now(), res)
	in.revokeLater(credentials.Unused(old, l.leases), revokeGrace)
	in.cleared(l)
}

// cleared ends a degradation or failure caused by credentials.
func (in *Instance) cleared(l *live) {
	in.degrade(reasonCredentials, "")
	if st := in.status.Load(); st.State == Failed && in.cur.Load() == l {
		in.setStatus(Ready, "")
	}
}

// setResolution records what a resolution at now gave the plugin.
func (l *live) setResolution(now time.Time, res credentials.Resolution) {
	l.expires, l.refreshAt, l.retry = res.Expires, nextRefresh(now, res), 0
	l.leases, l.polled, l.leaseTTL = res.Leases, !res.RefreshAfter.IsZero(), 0
	if len(res.Leases) > 0 && res.Expires.After(now) {
		// Stores grant whole seconds; the time the answer took is not
		// part of the lifetime to ask for again.
		l.leaseTTL = res.Expires.Sub(now).Round(time.Second)
	}
}

// Lease handling bounds: revokeGrace lets requests in flight finish with
// replaced values before their lease is revoked, revokeTimeout bounds
// one revocation round (best-effort: a lease not revoked still expires).
const (
	revokeGrace   = 5 * time.Second
	revokeTimeout = 5 * time.Second
)

// renewLeases renews the leases behind the plugin's values and reports
// whether that extended them by at least a third of their granted
// lifetime; if not, the caller resolves again.
func (in *Instance) renewLeases(ctx context.Context, l *live) bool {
	leases, expires, err := credentials.RenewLeases(ctx, l.leases, l.leaseTTL)
	now := time.Now()
	if err != nil {
		in.log.Info("lease renewal failed, resolving the credentials again", "error", err.Error())
		return false
	}
	if expires.Sub(now) < l.leaseTTL/3 {
		in.log.Info("lease renewal no longer extends the lease enough, resolving the credentials again", "expires", expires.UTC().Format(time.RFC3339))
		return false
	}
	l.leases, l.expires, l.refreshAt, l.retry = leases, expires, refreshTime(now, expires), 0
	in.log.Info("credentials renewed", "leases", len(leases), "expires", expires.UTC().Format(time.RFC3339))
	in.cleared(l)
	return true
}

// revokeLater revokes leases after grace, in the background and within
// revokeTimeout.
func (in *Instance) revokeLater(leases []credentials.Lease, grace time.Duration) {
	if len(leases) == 0 {
		return
	}
	time.AfterFunc(grace, func() { in.revoke(leases) })
}

// revoke revokes leases within revokeTimeout, logging the outcome.
func (in *Instance) revoke(leases []credentials.Lease) {
	if len(leases) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), revokeTimeout)
	defer cancel()
	if err := credentials.RevokeLeases(ctx, leases); err != nil {
		in.log.Warn("lease revocation failed; the lease ends at its expiry", "error", err.Error())
		return
	}
	in.log.Debug("leases revoked", "leases", len(leases))
}

// refreshFailed records a failed refresh. The plugin keeps the credentials
// it has while they last and the instance is degraded with the reason;
// the refresh is retried with backoff. Once they have expired with no
// successor, the instance fails (routes skip it) until a refresh works.
func (in *Instance) refreshFailed(l *live, what string, err error) {
	now := time.Now()
	l.retry = min(max(l.retry*2, 250*time.Millisecond), 30*time.Second)
	if !l.expires.IsZero() {
		if now.Before(l.expires) {
			// Try a few more times before the old credentials expire.
			l.retry = min(l.retry, max(l.expires.Sub(now)/3, 100*time.Millisecond))
		} else if in.cur.Load() == l {
			in.setStatus(Failed, fmt.Sprintf("credentials expired at %s and could not be refreshed: %v", l.expires.UTC().Format(time.RFC3339), err))
		}
	}
	l.refreshAt = now.Add(l.retry)
	in.degrade(reasonCredentials, what+", keeping the previous credentials until they expire: "+err.Error())
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
	if len(in.opts.Env) > 0 {
		env = append(env, in.opts.Env...)
		env = append(env, "OTEL_SERVICE_NAME=llmproxy-"+in.Kind()+"-"+in.Type)
	}
	if len(in.cfg.InheritEnv) > 0 {
		for _, kv := range os.Environ() {
			k, _, _ := strings.Cut(kv, "=")
			if glob.Any(in.cfg.InheritEnv, k) {
				env = append(env, kv)
			}
		}
	}
	// An instance that takes its identity from the platform gets the
	// variables its cloud's identity is configured by (and only those).
	if in.cfg.PlatformIdentity() {
		env = append(env, platform.Env(platform.CloudOf(in.Type), os.Getenv)...)
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
		l.kill(false)
		in.revoke(l.leases)
	}
}

// resolvePath makes a plugins dir absolute relative to base.
func resolvePath(base, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}
