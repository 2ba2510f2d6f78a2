package server

import (
	"net/http"

	"github.com/llmproxy/llmproxy/host/internal/plugins"
)

// readiness is the /readyz body; Instances (a map of plugins.Status by
// instance name) only for admin keys.
type readiness struct {
	Status    string `json:"status"`
	Instances any    `json:"instances,omitempty"`
	// Routing is, per routed instance, its circuit state, attempts in
	// flight and time-to-first-byte average (admin keys only).
	Routing any `json:"routing,omitempty"`
}

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
	if r.key != nil && r.key.Admin {
		out.Instances = st
		if s.opts.Router != nil {
			out.Routing = s.opts.Router.Circuits()
		}
	}
	writeJSON(r.ctx, code, out)
}
