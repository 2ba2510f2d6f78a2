package server

import (
	"net/http"

	"github.com/valyala/fasthttp"

	"github.com/llmproxy/llmproxy/host/internal/plugins"
)

// readiness is the /readyz body.
type readiness struct {
	Status    string                    `json:"status"`
	Instances map[string]plugins.Status `json:"instances"`
}

// ready answers 200 once no instance is still starting and at least one is
// serving (status "degraded" when some serving instance reports trouble); the body says, per instance, what state it is in and why.
// Instances that cannot start (missing credentials, say) do not hold the
// host back: they are listed with their reason.
func (s *Server) ready(ctx *fasthttp.RequestCtx) {
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
	out := readiness{Status: "ready", Instances: st}
	code := http.StatusOK
	if degraded > 0 {
		// Still serving, but some instance reports trouble.
		out.Status = "degraded"
	}
	if ready+degraded == 0 || starting > 0 {
		out.Status, code = "not_ready", http.StatusServiceUnavailable
	}
	writeJSON(ctx, code, out)
}
