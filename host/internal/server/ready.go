package server

import (
	"net/http"

	"github.com/llmproxy/llmproxy/host/internal/platform"
	"github.com/llmproxy/llmproxy/host/internal/plugins"
)

// readiness is the /readyz body; Instances (a map of plugins.Status by
// instance name) only for admin keys.
type readiness struct {
	Status    string        `json:"status"`
	Reload    *ReloadStatus `json:"reload,omitempty"`
	Instances any           `json:"instances,omitempty"`
	// Routing is, per routed instance, its circuit state, attempts in
	// flight and time-to-first-byte average (admin keys only).
	Routing any `json:"routing,omitempty"`
	// Platform is where the host runs (admin keys only).
	Platform *platform.Report `json:"platform,omitempty"`
}

// ReloadStatus is the outcome of the last configuration reload, shown by
// /readyz. A failed reload leaves the running configuration in place, so
// it does not make the host unready; Error (the diagnostics) is shown to
// admin keys only.
type ReloadStatus struct {
	// OK is false when the last reload was refused.
	OK bool `json:"ok"`
	// At is when the last reload was attempted, RFC 3339.
	At string `json:"at"`
	// Reloads counts the reloads applied since the start.
	Reloads int `json:"reloads"`
	// Failures counts the reloads refused since the start.
	Failures int `json:"failures"`
	// ConfigSHA256 is the hash of the configuration in use.
	ConfigSHA256 string `json:"config_sha256,omitempty"`
	// Plugins lists the plugin binaries in use with their version and
	// checksum.
	Plugins []PluginBinary `json:"plugins,omitempty"`
	// Error holds the diagnostics of the refused configuration.
	Error string `json:"error,omitempty"`
}

// PluginBinary names a plugin binary an instance runs.
type PluginBinary struct {
	Instance string `json:"instance"`
	Path     string `json:"path"`
	Version  string `json:"version,omitempty"`
	SHA256   string `json:"sha256,omitempty"`
}

// SetReloadStatus records the outcome of a reload for /readyz.
func (s *Server) SetReloadStatus(st ReloadStatus) { s.reload.Store(&st) }

// ready answers 200 once no instance is still starting and at least one is
// serving (status "degraded" when some serving instance reports trouble),
// and 503 otherwise or once the host is draining. Instances that cannot
// start (missing credentials, say) do not hold the host back. Only a
// request with an admin key (admin = true) sees, per instance, what state
// it is in and why: the reasons name upstreams, credential sources and
// process ids, which are the operator's business.
func (s *Server) ready(r *call) {
	st := s.opts.Plugins.Statuses()
	ready, degraded, starting := 0, 0, 0
	for _, x := range st {
		switch x.State {
		case plugins.Ready:
			ready++
		case plugins.Degraded:
			degraded++
		case plugins.Starting:
			starting++
		}
	}
	out := readiness{Status: "ready"}
	code := http.StatusOK
	switch {
	case s.draining.Load():
		out.Status, code = "draining", http.StatusServiceUnavailable
	case ready+degraded == 0 || starting > 0:
		out.Status, code = "not_ready", http.StatusServiceUnavailable
	case degraded > 0:
		// Still serving, but some instance reports trouble.
		out.Status = "degraded"
	}
	if rs := s.reload.Load(); rs != nil {
		c := *rs
		if r.key == nil || !r.key.Admin {
			c.Error, c.Plugins = "", nil
		}
		c.Plugins = append([]PluginBinary(nil), c.Plugins...)
		for i := range c.Plugins {
			if in := s.opts.Plugins.Get(c.Plugins[i].Instance); in != nil {
				if v := in.Status().Version; v != "" {
					c.Plugins[i].Version = v
				}
			}
		}
		out.Reload = &c
	}
	if r.key != nil && r.key.Admin {
		out.Instances = st
		out.Platform = s.opts.Platform
		if rt := s.gen.Load().Router; rt != nil {
			out.Routing = rt.Circuits()
		}
	}
	writeJSON(r.ctx, code, out)
}
