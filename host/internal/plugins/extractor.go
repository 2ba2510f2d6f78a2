package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/document"
	"github.com/llmproxy/llmproxy/sdk/extractor"
	"github.com/llmproxy/llmproxy/sdk/openai"
)

// ExtractorKind is the plugin kind of extractors: binaries named
// llmproxy-extractor-<type>.
const ExtractorKind = "extractor"

// cpuLifetimeCalls is how many full per-document CPU budgets one
// extractor process may use in its life before it is replaced: the
// CPU-time rlimit's hard limit can only be lowered, never raised again,
// so each process gets one for its whole life and a soft limit per call.
const cpuLifetimeCalls = 20

// Extractors runs the extractor plugins: per extractor type, a pool of
// processes that each read one document at a time under the limits of
// the documents { extract { } } block. A document that makes a process
// exceed its wall-clock deadline, its CPU time or its memory, or crash,
// costs that document only: the process is killed and replaced and the
// caller gets 422 document_unreadable. Extractors implements
// document.Extractor.
type Extractors struct {
	log    hclog.Logger
	pools  []*extractorPool
	byMIME map[string]*extractorPool
}

var _ document.Extractor = (*Extractors)(nil)

// ExtractorStatus describes one extractor type.
type ExtractorStatus struct {
	Type      string   `json:"type"`
	Plugin    string   `json:"plugin,omitempty"`
	Version   string   `json:"version,omitempty"`
	MIMETypes []string `json:"mime_types,omitempty"`
	// PIDs are the pool's live processes.
	PIDs []int `json:"pids,omitempty"`
	// Replaced counts processes killed after a failed document.
	Replaced int64 `json:"replaced"`
}

// StartExtractors starts one process of each extractor the config names
// (every llmproxy-extractor-* in the plugins dir when it names none) and
// learns which MIME types each handles. An extractor that cannot start
// is logged and left out: documents of its types then travel without
// text, and are still never parsed in the host.
func StartExtractors(cfg *config.File, opts Options) *Extractors {
	ec := document.ExtractConfig{}
	if cfg.Documents != nil && cfg.Documents.Extract != nil {
		ec = *cfg.Documents.Extract
	}
	ec = ec.WithDefaults()
	x := &Extractors{log: opts.Logger.Named("extractor"), byMIME: map[string]*extractorPool{}}
	var types []string
	if ec.Extractors != nil {
		types = *ec.Extractors
	} else {
		for _, name := range Installed(opts.Dir) {
			if t, ok := strings.CutPrefix(name, BinaryPrefix+ExtractorKind+"-"); ok && t != "" {
				types = append(types, t)
			}
		}
	}
	if len(types) == 0 {
		x.log.Info("no extractor plugins; PDF and HTML documents travel without text", "plugins_dir", opts.Dir)
	}
	pins := map[string]config.Plugin{}
	for _, p := range cfg.Plugins {
		p.Path = resolvePath(opts.BaseDir, p.Path)
		pins[p.Name] = p
	}
	for _, t := range types {
		x.pools = append(x.pools, newExtractorPool(t, ec, pins[ExtractorKind+"-"+t], &opts, x.log.Named(t)))
	}
	var wg sync.WaitGroup
	for _, p := range x.pools {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.describe(opts.Dir)
		}()
	}
	wg.Wait()
	for _, p := range x.pools {
		if p.desc == nil {
			continue
		}
		for _, mt := range p.desc.MIMETypes {
			if other, taken := x.byMIME[mt]; taken {
				x.log.Warn("two extractors handle one MIME type; the first one wins", "mime_type", mt, "used", other.typ, "ignored", p.typ)
				continue
			}
			x.byMIME[mt] = p
		}
	}
	return x
}

// Handles reports whether an extractor takes mimeType.
func (x *Extractors) Handles(mimeType string) bool {
	return x != nil && x.byMIME[mimeType] != nil
}

// Extract reads one document in an extractor process.
func (x *Extractors) Extract(ctx context.Context, name, mimeType string, data []byte) (string, error) {
	p := x.byMIME[mimeType]
	if p == nil {
		return "", errExtractorUnavailable("no extractor handles %q", mimeType)
	}
	return p.extract(ctx, name, mimeType, data)
}

// Status returns every extractor's status, by type.
func (x *Extractors) Status() []ExtractorStatus {
	out := make([]ExtractorStatus, 0, len(x.pools))
	for _, p := range x.pools {
		out = append(out, p.status())
	}
	return out
}

// Stop kills every extractor process, also those reading a document:
// their callers get 503 at once, so that the host stops promptly.
func (x *Extractors) Stop() {
	for _, p := range x.pools {
		p.stop()
	}
}

// extractorPool is the processes of one extractor type.
type extractorPool struct {
	typ  string
	cfg  document.ExtractConfig
	pin  config.Plugin
	opts *Options
	log  hclog.Logger
	path string
	desc *extractor.Description

	timeout time.Duration
	// sem holds a token per document being read; idle holds processes
	// waiting for one.
	sem  chan struct{}
	idle chan *worker

	mu       sync.Mutex
	live     map[*worker]struct{}
	stopped  bool
	replaced atomic.Int64
	// refilling counts replacements being started.
	refilling atomic.Int32
}

func newExtractorPool(typ string, cfg document.ExtractConfig, pin config.Plugin, opts *Options, log hclog.Logger) *extractorPool {
	return &extractorPool{
		typ: typ, cfg: cfg, pin: pin, opts: opts, log: log,
		timeout: cfg.TimeoutDuration(),
		sem:     make(chan struct{}, cfg.Processes),
		idle:    make(chan *worker, cfg.Processes),
		live:    map[*worker]struct{}{},
	}
}

// describe finds the binary, starts the first process and asks it what
// it handles.
func (p *extractorPool) describe(dir string) {
	p.path = p.pin.Path
	if p.path == "" {
		path, err := Find(dir, ExtractorKind, p.typ)
		if err != nil {
			p.log.Error("extractor not started", "error", err)
			return
		}
		p.path = path
	}
	w, err := p.start()
	if err != nil {
		p.log.Error("extractor not started", "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	d, err := w.ext.Describe(ctx)
	if err != nil {
		p.discard(w)
		p.log.Error("extractor not started", "error", fmt.Errorf("describe: %w", err))
		return
	}
	p.desc = d
	p.idle <- w
	p.log.Info("extractor ready", "plugin", d.Name, "version", d.Version, "mime_types", strings.Join(d.MIMETypes, ","), "pid", w.pid,
		"processes", p.cfg.Processes, "timeout", p.timeout, "cpu_seconds", p.cfg.CPUSeconds, "memory_bytes", p.cfg.MemoryBytes)
}

// worker is one extractor process.
type worker struct {
	client *goplugin.Client
	cmd    *exec.Cmd
	ext    *extractor.Client
	pid    int
	// cpuHard is the process's CPU-time hard limit in seconds.
	cpuHard  uint64
	killOnce sync.Once
}

// start launches one extractor process and applies its limits.
func (p *extractorPool) start() (*worker, error) {
	cmd := exec.Command(p.path)
	cmd.Env = p.environment()
	bindToHost(cmd)
	cc := &goplugin.ClientConfig{
		HandshakeConfig:  extractor.Handshake,
		VersionedPlugins: extractor.ClientPlugins(),
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		Logger:           p.log,
		StartTimeout:     15 * time.Second,
		GRPCDialOptions:  extractor.DialOptions(),
	}
	if p.pin.SHA256 != "" {
		want, err := hex.DecodeString(p.pin.SHA256)
		if err != nil || len(want) != sha256.Size {
			return nil, fmt.Errorf("plugin %q: sha256 must be 64 hex digits", ExtractorKind+"-"+p.typ)
		}
		cc.SecureConfig = &goplugin.SecureConfig{Checksum: want, Hash: sha256.New()}
	}
	client := goplugin.NewClient(cc)
	proto, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("start plugin %s: %w", p.path, err)
	}
	raw, err := proto.Dispense(extractor.PluginName)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("plugin %s does not serve the extractor service: %w", p.path, err)
	}
	w := &worker{client: client, cmd: cmd, ext: raw.(*extractor.Client), pid: client.ReattachConfig().Pid}
	used, _ := cpuSeconds(w.pid)
	w.cpuHard = used + uint64(p.cfg.CPUSeconds)*cpuLifetimeCalls
	if err := limitProcess(w.pid, uint64(p.cfg.MemoryBytes), w.cpuHard); err != nil {
		w.kill()
		return nil, fmt.Errorf("limit extractor process %d: %w", w.pid, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		w.kill()
		return nil, errStopping()
	}
	p.live[w] = struct{}{}
	return w, nil
}

// environment is an extractor process's explicit environment: the Go
// runtime's soft memory limit below the hard one, one thread of Go code
// per process (the pool is the unit of parallelism).
func (p *extractorPool) environment() []string {
	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"LLMPROXY_INSTANCE=" + ExtractorKind + "-" + p.typ,
		"LLMPROXY_LOG_LEVEL=" + p.opts.Settings["log_level"],
		"GOMEMLIMIT=" + strconv.FormatInt(p.cfg.MemoryBytes*3/4, 10),
		"GOMAXPROCS=1",
	}
	if v := os.Getenv("TMPDIR"); v != "" {
		env = append(env, "TMPDIR="+v)
	}
	return env
}

// kill ends the process at once (a stopped or spinning process would
// make a graceful shutdown wait), then releases the client. Only the
// first call signals: later ones might hit a reused pid.
func (w *worker) kill() {
	w.killOnce.Do(func() {
		if proc, err := os.FindProcess(w.pid); err == nil && w.pid > 0 && !w.client.Exited() {
			proc.Kill()
		}
		w.client.Kill()
	})
}

// exitReason says how a dead process ended, e.g. "signal: killed".
func (w *worker) exitReason() string {
	// The client reports the exit only after it has waited for the
	// process, so ProcessState is set and no longer written.
	if !w.client.Exited() || w.cmd.ProcessState == nil {
		return "still running"
	}
	return w.cmd.ProcessState.String()
}

// acquire returns an idle process, or starts one, once a slot is free.
// A document waits for a slot at most one document's timeout: a pool
// kept busy longer than that answers 503 rather than queueing requests
// for as long as their clients wait.
func (p *extractorPool) acquire(ctx context.Context) (*worker, error) {
	wait := time.NewTimer(p.timeout)
	defer wait.Stop()
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-wait.C:
		return nil, errExtractorUnavailable("every %s extractor process is busy; retry later", p.typ)
	}
	for {
		select {
		case w := <-p.idle:
			if w.client.Exited() {
				p.log.Warn("idle extractor process died; replacing it", "pid", w.pid, "exit", w.exitReason())
				p.discard(w)
				continue
			}
			return w, nil
		default:
		}
		if p.refilling.Load() > 0 {
			// A replacement is starting: wait for it rather than start
			// one more.
			select {
			case w := <-p.idle:
				if !w.client.Exited() {
					return w, nil
				}
				p.discard(w)
			case <-ctx.Done():
				<-p.sem
				return nil, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		w, err := p.start()
		if err != nil {
			<-p.sem
			if p.isStopped() {
				return nil, errStopping()
			}
			return nil, errExtractorUnavailable("the %s extractor cannot start: %v", p.typ, err)
		}
		return w, nil
	}
}

// release hands a process back after a call: a healthy one waits for the
// next document, any other is killed and replaced in the background.
func (p *extractorPool) release(w *worker, healthy bool) {
	defer func() { <-p.sem }()
	if healthy && !p.isStopped() {
		select {
		case p.idle <- w:
			return
		default:
		}
	}
	p.discard(w)
	if !healthy {
		p.replaced.Add(1)
		p.refilling.Add(1)
		go p.refill()
	}
}

// refill starts a process to replace a killed one.
func (p *extractorPool) refill() {
	defer p.refilling.Add(-1)
	if p.isStopped() {
		return
	}
	w, err := p.start()
	if err != nil {
		if !p.isStopped() {
			p.log.Error("extractor process not replaced", "error", err)
		}
		return
	}
	select {
	case p.idle <- w:
	default:
		p.discard(w)
	}
}

func (p *extractorPool) discard(w *worker) {
	w.kill()
	p.mu.Lock()
	delete(p.live, w)
	p.mu.Unlock()
}

func (p *extractorPool) isStopped() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped
}

// stop ends every process: idle ones are asked to exit, those reading a
// document are killed.
func (p *extractorPool) stop() {
	p.mu.Lock()
	p.stopped = true
	live := p.live
	p.live = map[*worker]struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for {
		select {
		case w := <-p.idle:
			delete(live, w)
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.killOnce.Do(w.client.Kill)
			}()
			continue
		default:
		}
		break
	}
	for w := range live {
		w.kill()
	}
	wg.Wait()
}

func (p *extractorPool) status() ExtractorStatus {
	st := ExtractorStatus{Type: p.typ, Replaced: p.replaced.Load()}
	if p.desc != nil {
		st.Plugin, st.Version, st.MIMETypes = p.desc.Name, p.desc.Version, slices.Clone(p.desc.MIMETypes)
	}
	p.mu.Lock()
	for w := range p.live {
		st.PIDs = append(st.PIDs, w.pid)
	}
	p.mu.Unlock()
	sort.Ints(st.PIDs)
	return st
}

// extract reads one document in one process of the pool.
func (p *extractorPool) extract(ctx context.Context, name, mimeType string, data []byte) (string, error) {
	if p.isStopped() {
		return "", errStopping()
	}
	w, err := p.acquire(ctx)
	if err != nil {
		return "", err
	}
	healthy := false
	defer func() { p.release(w, healthy) }()
	if err := w.armCPU(uint64(p.cfg.CPUSeconds)); err != nil {
		// The process used up its lifetime CPU budget: take a fresh one.
		p.log.Info("replacing extractor process", "pid", w.pid, "reason", err)
		p.discard(w)
		if w, err = p.start(); err != nil {
			return "", errExtractorUnavailable("the %s extractor cannot start: %v", p.typ, err)
		}
		if err := w.armCPU(uint64(p.cfg.CPUSeconds)); err != nil {
			return "", errExtractorUnavailable("the %s extractor cannot be limited: %v", p.typ, err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	start := time.Now()
	t, err := w.ext.Extract(cctx, &extractor.Document{
		Name: name, MIMEType: mimeType, Data: data,
		Limits: extractor.Limits{MaxTextBytes: p.cfg.MaxTextBytes, MaxPages: p.cfg.MaxPages, MaxDecodedBytes: p.cfg.MaxDecodedBytes},
	})
	var oe *openai.Error
	switch {
	case err == nil:
		healthy = true
		return t.Text, nil
	case errors.As(err, &oe) && oe.Status >= 400 && oe.Status < 500:
		// The plugin refused the document and stays usable.
		healthy = true
		return "", oe
	}
	// Anything else (a deadline, a crash, a panic, a broken connection)
	// costs this process: it is killed now, before anyone reads its
	// state, and replaced.
	w.kill()
	switch {
	case p.isStopped():
		return "", errStopping()
	case ctx.Err() != nil:
		return "", ctx.Err()
	case errors.Is(cctx.Err(), context.DeadlineExceeded):
		p.log.Warn("extraction exceeded its deadline; process killed", "document", name, "pid", w.pid, "timeout", p.timeout)
		return "", errUnreadable("reading document %q took longer than %s and was stopped", name, p.timeout)
	}
	// Give the process a moment to be reaped, to say how it ended.
	for i := 0; i < 20 && !w.client.Exited(); i++ {
		time.Sleep(5 * time.Millisecond)
	}
	reason := w.exitReason()
	p.log.Warn("extractor failed on a document; process replaced", "document", name, "pid", w.pid, "after", time.Since(start), "exit", reason, "error", err)
	return "", errUnreadable("document %q could not be read: the extractor stopped on it (%s)", name, exitSummary(reason, err))
}

// exitSummary says in a few words why a process failed, for the client.
func exitSummary(state string, err error) string {
	switch {
	case strings.Contains(state, "exit status 3"), strings.Contains(state, "cpu time"):
		return "CPU time limit"
	case strings.Contains(state, "killed"):
		return "killed, likely at its memory or CPU limit"
	case strings.Contains(state, "exit status 2"):
		return "crashed, likely out of memory"
	}
	var oe *openai.Error
	if errors.As(err, &oe) && oe.Code == "plugin_error" {
		return "it panicked"
	}
	return "it ended unexpectedly"
}

// armCPU sets the process's CPU-time soft limit to what it has used
// plus budget seconds. It fails when that would pass the hard limit.
func (w *worker) armCPU(budget uint64) error {
	used, err := cpuSeconds(w.pid)
	if err != nil {
		return err
	}
	if used+budget > w.cpuHard {
		return fmt.Errorf("process %d used %d of its %d CPU seconds", w.pid, used, w.cpuHard)
	}
	return limitCPU(w.pid, used+budget, w.cpuHard)
}

func errUnreadable(format string, args ...any) *openai.Error {
	return openai.NewError(http.StatusUnprocessableEntity, openai.TypeInvalidRequest, extractor.CodeUnreadable, fmt.Sprintf(format, args...))
}

func errExtractorUnavailable(format string, args ...any) *openai.Error {
	e := openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "extractor_unavailable", fmt.Sprintf(format, args...))
	e.RetryAfter = time.Second
	return e
}

func errStopping() *openai.Error {
	return openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "shutting_down", "llmproxy is shutting down")
}
