// Package router maps a requested model to the instances that serve it.
//
// Exact route names are matched first, then patterns ("claude-*", the most
// specific — longest literal text — first), then aliases. A route lists one
// or more targets and a strategy that orders them for each request:
// failover (in the configured order), round_robin (rotating the first
// target) or weighted (the first target drawn by weight, the rest in
// order as fallbacks). Unknown models are not guessed. Each target carries
// the limits of one attempt against it (connect and first-byte timeouts,
// stream keepalive), resolved from the target, route and server blocks.
package router

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/glob"
)

// Target is one instance that can serve a model.
type Target struct {
	Instance string
	// Model is the name to send upstream.
	Model string
	// Weight is the weighted strategy's weight (default 1).
	Weight int
	// Bounds limit one attempt against this target.
	Bounds config.Bounds
}

// Route is a model name or pattern and its targets.
type Route struct {
	Name     string
	Strategy string
	Targets  []Target
	Pattern  bool
	next     atomic.Uint64
	total    int
}

// Router resolves models to routes.
type Router struct {
	exact    map[string]*Route
	patterns []*Route
	aliases  map[string]*Route
	routes   []*Route
}

// New builds a Router from config routes; srv supplies the default attempt
// limits (nil means the built-in defaults).
func New(routes []config.Route, srv *config.Server) (*Router, error) {
	if srv == nil {
		srv = &config.Server{}
	}
	r := &Router{exact: map[string]*Route{}, aliases: map[string]*Route{}}
	for _, c := range routes {
		rt := &Route{Name: c.Model, Strategy: c.Strategy, Pattern: strings.Contains(c.Model, "*")}
		if rt.Strategy == "" {
			rt.Strategy = "failover"
		}
		for _, t := range c.Targets {
			w := t.Weight
			if w == 0 {
				w = 1
			}
			rt.Targets = append(rt.Targets, Target{Instance: t.Instance, Model: t.Model, Weight: w, Bounds: srv.Resolve(&c, &t)})
			rt.total += w
		}
		if len(rt.Targets) == 0 {
			return nil, fmt.Errorf("route %q has no targets", c.Model)
		}
		r.routes = append(r.routes, rt)
		if rt.Pattern {
			r.patterns = append(r.patterns, rt)
		} else {
			r.exact[c.Model] = rt
		}
		for _, a := range c.Aliases {
			if prev, dup := r.aliases[a]; dup {
				return nil, fmt.Errorf("alias %q is used by routes %q and %q", a, prev.Name, c.Model)
			}
			r.aliases[a] = rt
		}
	}
	sort.SliceStable(r.patterns, func(i, j int) bool {
		return literalLen(r.patterns[i].Name) > literalLen(r.patterns[j].Name)
	})
	return r, nil
}

func literalLen(p string) int { return len(p) - strings.Count(p, "*") }

// Lookup returns the route for model, or nil when no route serves it.
func (r *Router) Lookup(model string) *Route {
	if rt := r.exact[model]; rt != nil {
		return rt
	}
	for _, rt := range r.patterns {
		if glob.Match(rt.Name, model) {
			return rt
		}
	}
	return r.aliases[model]
}

// Routes returns every route, in config order.
func (r *Router) Routes() []*Route { return r.routes }

// Aliases returns the alias names of a route.
func (r *Router) Aliases(rt *Route) []string {
	var out []string
	for a, x := range r.aliases {
		if x == rt {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

// Plan returns the targets to try for one request, in order, with the
// upstream model name filled in (the requested model when the target
// names none).
func (rt *Route) Plan(requested string) []Target {
	n := len(rt.Targets)
	out := make([]Target, n)
	first := 0
	switch rt.Strategy {
	case "round_robin":
		first = int(rt.next.Add(1)-1) % n
	case "weighted":
		pick := rand.IntN(rt.total)
		for i, t := range rt.Targets {
			if pick < t.Weight {
				first = i
				break
			}
			pick -= t.Weight
		}
	}
	for i := range n {
		t := rt.Targets[(first+i)%n]
		if rt.Strategy == "weighted" && i > 0 {
			// Fallbacks keep the configured order, skipping the pick.
			j := i - 1
			if j >= first {
				j++
			}
			t = rt.Targets[j]
		}
		if t.Model == "" {
			t.Model = requested
		}
		out[i] = t
	}
	return out
}

// PreferHealthy reorders a plan so that targets for which degraded reports
// true come after the others, each group keeping its order: a degraded
// target is still tried, but only once the healthy ones have failed.
func PreferHealthy(plan []Target, degraded func(instance string) bool) []Target {
	var later []Target
	out := plan[:0:0]
	for _, t := range plan {
		if degraded(t.Instance) {
			later = append(later, t)
		} else {
			out = append(out, t)
		}
	}
	if len(later) == 0 {
		return plan
	}
	return append(out, later...)
}
