package plugins

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/credentials"
	"github.com/llmproxy/llmproxy/sdk/openai"
)

// Manager owns the instances of the configuration in use. A reload
// (Prepare, then Commit) replaces the set of instances as a whole while
// unchanged instances keep running.
type Manager struct {
	cur atomic.Pointer[set]
	// pending is the set a reload is starting, whose secrets stores the
	// instances it starts resolve their credentials through.
	pending atomic.Pointer[set]
	// mu serialises reloads.
	mu sync.Mutex
}

// set is one configuration's instances by name, in config order, with the
// fingerprint each was started from.
type set struct {
	instances map[string]*Instance
	order     []string
	prints    map[string]string
}

// Start starts a supervisor for every provider, storage and middleware
// instance. It
// returns at once; instances become ready in the background.
func Start(cfg *config.File, opts Options) *Manager {
	m := &Manager{}
	opts.backends = m.backend
	next, fresh := build(cfg, opts, nil)
	m.cur.Store(next)
	for _, in := range fresh {
		go in.run()
	}
	return m
}

// build makes the set of cfg, reusing the instances of old whose
// fingerprint is unchanged, and returns it with the instances it created
// (not yet running).
func build(cfg *config.File, opts Options, old *set) (*set, []*Instance) {
	o := &opts
	pins := map[string]config.Plugin{}
	for _, p := range cfg.Plugins {
		p.Path = resolvePath(opts.BaseDir, p.Path)
		pins[p.Name] = p
	}
	o.Pins = pins
	s := &set{instances: map[string]*Instance{}, prints: map[string]string{}}
	var fresh []*Instance
	add := func(ic config.Instance, drv driver) {
		fp := fingerprint(ic, drv, o)
		if old != nil && old.prints[ic.Name] == fp {
			if in := old.instances[ic.Name]; in != nil {
				s.instances[ic.Name], s.prints[ic.Name] = in, fp
				s.order = append(s.order, ic.Name)
				return
			}
		}
		in := newInstance(ic, drv, o)
		s.instances[ic.Name], s.prints[ic.Name] = in, fp
		s.order = append(s.order, ic.Name)
		fresh = append(fresh, in)
	}
	// Secrets stores come first so that instances resolving through them
	// find them starting.
	for _, ic := range cfg.Secrets {
		add(ic, secretsDriver{})
	}
	for _, ic := range cfg.Providers {
		add(ic, providerDriver{})
	}
	for _, ic := range cfg.Storage {
		add(ic, storageDriver{})
	}
	for _, ic := range cfg.Middleware {
		add(ic, middlewareDriver{})
	}
	return s, fresh
}

// fingerprint identifies what an instance's process depends on: its
// config as written (credential sources, plugin config block, access
// rules), the shared plugin options and the checksum of the plugin binary
// it would run, so that a binary replaced in the plugins dir counts as a
// change.
func fingerprint(ic config.Instance, drv driver, o *Options) string {
	h := sha256.New()
	creds := make([]config.Credential, len(ic.Credentials))
	for i, c := range ic.Credentials {
		c.Sources = append([]config.Source(nil), c.Sources...)
		for j := range c.Sources {
			c.Sources[j].DeclRange = hcl.Range{}
		}
		creds[i] = c
	}
	fixed := struct {
		Kind, Type, Dir string
		Enabled         bool
		Env             map[string]string
		InheritEnv      []string
		Credentials     []config.Credential
		Buckets, Denied []string
		Presign         *config.Presign
		MaxObjectBytes  int64
		Settings        map[string]string
		Pin             config.Plugin
		Health          [3]int64
	}{
		drv.kind(), ic.Type, o.Dir, ic.IsEnabled(), ic.Env, ic.InheritEnv, creds,
		ic.AllowedBuckets, ic.DeniedPrefixes, ic.Presign, ic.MaxObjectBytes, o.Settings,
		o.Pins[drv.kind()+"-"+ic.Type],
		[3]int64{int64(o.HealthInterval), int64(o.HealthTimeout), int64(o.HealthFailures)},
	}
	b, _ := json.Marshal(fixed)
	h.Write(b)
	if ic.Config != nil {
		if sb, ok := ic.Config.Body.(*hclsyntax.Body); ok {
			r := sb.SrcRange
			if f := o.Files[r.Filename]; f != nil && r.End.Byte <= len(f.Bytes) && r.Start.Byte <= r.End.Byte {
				h.Write(f.Bytes[r.Start.Byte:r.End.Byte])
			} else {
				fmt.Fprintf(h, "%v", r)
			}
		} else {
			fmt.Fprintf(h, "%p", ic.Config.Body)
		}
	}
	path := o.Pins[drv.kind()+"-"+ic.Type].Path
	if path == "" {
		path, _ = Find(o.Dir, drv.kind(), ic.Type)
	}
	if path != "" {
		sum, err := FileSHA256(path)
		if err != nil {
			sum = "unreadable"
		}
		fmt.Fprintf(h, "\x00%s\x00%s", path, sum)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Reload is a prepared change of configuration: the instances it starts
// run beside the current ones until Commit publishes them, or Abandon
// stops them.
type Reload struct {
	m    *Manager
	next *set
	// removed are the instances of the previous set whose names the new
	// one no longer has; Finish drops them.
	removed map[string]*Instance
	// Started are the new or changed instances, already running.
	Started []*Instance
	// Kept are the instances reused unchanged.
	Kept []string
}

// Prepare starts the instances of cfg that are new or changed, beside the
// current ones, and returns the change for Commit. It does not wait for
// them to be ready (see Reload.Settled). Reloads are serialised from
// Prepare to Commit or Abandon; Finish may come much later, after other
// reloads.
func (m *Manager) Prepare(cfg *config.File, opts Options) *Reload {
	m.mu.Lock()
	opts.backends = m.backend
	next, fresh := build(cfg, opts, m.cur.Load())
	m.pending.Store(next)
	for _, in := range fresh {
		go in.run()
	}
	r := &Reload{m: m, next: next, Started: fresh}
	for _, n := range next.order {
		if !contains(fresh, next.instances[n]) {
			r.Kept = append(r.Kept, n)
		}
	}
	return r
}

func contains(list []*Instance, in *Instance) bool {
	for _, x := range list {
		if x == in {
			return true
		}
	}
	return false
}

// Settled reports whether every started instance has left the Starting
// state.
func (r *Reload) Settled() bool {
	for _, in := range r.Started {
		if in.Status().State == Starting {
			return false
		}
	}
	return true
}

// Commit makes the new set current, and returns the instances that are
// no longer in it (removed or replaced). Removed instances stay reachable
// by name until Finish, so that requests still routed by the previous
// configuration find them; the caller switches the routing, waits for
// those requests, calls Finish and then stops the stale instances.
func (r *Reload) Commit() (stale []*Instance) {
	defer r.m.mu.Unlock()
	old := r.m.cur.Load()
	union := &set{instances: map[string]*Instance{}, order: append([]string(nil), r.next.order...), prints: r.next.prints}
	for n, in := range r.next.instances {
		union.instances[n] = in
	}
	r.removed = map[string]*Instance{}
	for _, n := range old.order {
		in := old.instances[n]
		if r.next.instances[n] != in {
			stale = append(stale, in)
		}
		if _, ok := r.next.instances[n]; !ok {
			union.instances[n] = in
			union.order = append(union.order, n)
			r.removed[n] = in
		}
	}
	r.m.cur.Store(union)
	r.m.pending.Store(nil)
	return stale
}

// Finish drops the instances this reload removed from the current set,
// unless a later reload has given their names to other instances.
func (r *Reload) Finish() {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	cur := r.m.cur.Load()
	next := &set{instances: map[string]*Instance{}, prints: cur.prints}
	for _, n := range cur.order {
		in := cur.instances[n]
		if r.removed[n] == in {
			continue
		}
		next.instances[n] = in
		next.order = append(next.order, n)
	}
	r.m.cur.Store(next)
}

// Abandon stops the instances Prepare started and leaves the current set
// as it is.
func (r *Reload) Abandon() {
	defer r.m.mu.Unlock()
	r.m.pending.Store(nil)
	StopAll(r.Started)
}

// backend finds the secrets store named by a credential source: in the set
// a reload is starting first, then in the current one.
func (m *Manager) backend(name string) credentials.Backend {
	for _, s := range []*set{m.pending.Load(), m.cur.Load()} {
		if s == nil {
			continue
		}
		if in := s.instances[name]; in != nil && in.drv.kind() == "secrets" {
			return backend{in}
		}
	}
	return nil
}

// StopAll stops instances in parallel and waits for their processes to
// end.
func StopAll(list []*Instance) {
	// Secrets instances stop last, so that the instances using their
	// leases can revoke them on the way out.
	var stores, users []*Instance
	for _, in := range list {
		if in.drv.kind() == "secrets" {
			stores = append(stores, in)
		} else {
			users = append(users, in)
		}
	}
	for _, group := range [][]*Instance{users, stores} {
		var wg sync.WaitGroup
		for _, in := range group {
			wg.Add(1)
			go func() {
				defer wg.Done()
				in.Stop()
			}()
		}
		wg.Wait()
	}
}

// Get returns the named instance or nil.
func (m *Manager) Get(name string) *Instance { return m.cur.Load().instances[name] }

// Instances returns every instance in config order.
func (m *Manager) Instances() []*Instance {
	s := m.cur.Load()
	out := make([]*Instance, 0, len(s.order))
	for _, n := range s.order {
		out = append(out, s.instances[n])
	}
	return out
}

// Statuses returns every instance's status by name.
func (m *Manager) Statuses() map[string]Status {
	s := m.cur.Load()
	out := make(map[string]Status, len(s.instances))
	for n, in := range s.instances {
		out[n] = in.Status()
	}
	return out
}

// Stop stops every instance and kills its plugin process.
func (m *Manager) Stop() { StopAll(m.Instances()) }

func errNotProvider(name string) error {
	return openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, "not_a_provider",
		fmt.Sprintf("instance %s is not a provider instance", name))
}
