package plugins

import (
	"fmt"
	"net/http"
	"sync"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/sdk/openai"
)

// Manager owns every instance of one configuration.
type Manager struct {
	instances map[string]*Instance
	order     []string
}

// Start starts a supervisor for every provider, storage and middleware
// instance. It
// returns at once; instances become ready in the background.
func Start(cfg *config.File, opts Options) *Manager {
	m := &Manager{instances: map[string]*Instance{}}
	o := &opts
	pins := map[string]config.Plugin{}
	for _, p := range cfg.Plugins {
		p.Path = resolvePath(opts.BaseDir, p.Path)
		pins[p.Name] = p
	}
	o.Pins = pins
	for _, ic := range cfg.Providers {
		m.add(newInstance(ic, providerDriver{}, o))
	}
	for _, ic := range cfg.Storage {
		m.add(newInstance(ic, storageDriver{}, o))
	}
	for _, ic := range cfg.Middleware {
		m.add(newInstance(ic, middlewareDriver{}, o))
	}
	for _, name := range m.order {
		go m.instances[name].run()
	}
	return m
}

func (m *Manager) add(in *Instance) {
	m.instances[in.Name] = in
	m.order = append(m.order, in.Name)
}

// Get returns the named instance or nil.
func (m *Manager) Get(name string) *Instance { return m.instances[name] }

// Instances returns every instance in config order.
func (m *Manager) Instances() []*Instance {
	out := make([]*Instance, 0, len(m.order))
	for _, n := range m.order {
		out = append(out, m.instances[n])
	}
	return out
}

// Statuses returns every instance's status by name.
func (m *Manager) Statuses() map[string]Status {
	out := make(map[string]Status, len(m.instances))
	for n, in := range m.instances {
		out[n] = in.Status()
	}
	return out
}

// Stop stops every instance and kills its plugin process.
func (m *Manager) Stop() {
	var wg sync.WaitGroup
	for _, in := range m.instances {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in.Stop()
		}()
	}
	wg.Wait()
}

func errNotProvider(name string) error {
	return openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, "not_a_provider",
		fmt.Sprintf("instance %s is not a provider instance", name))
}
