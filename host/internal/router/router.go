// Package router maps a requested model to the instances that serve it.
//
// Exact route names are matched first, then patterns ("claude-*", the most
// specific — longest literal text — first), then aliases. A route lists one
// or more targets and a strategy that orders them for each request:
// failover (in the configured order), round_robin (rotating the first
// target), weighted (the first target drawn by weight, the rest in
// order as fallbacks), least_busy (fewest attempts in flight first),
// latency (lowest moving average of the time to the first byte first,
// with a small share of requests exploring the others) or cost (lowest
// configured price first). A route with a sticky header sends requests
// carrying the same header value to the same target (rendezvous hashing,
// so an ejected target moves only its own sessions). Unknown models are
// not guessed.
//
// The router also keeps, per instance and per replica, what those
// strategies and the circuit breaker observe (see Instance). Each target carries
// the limits of one attempt against it (connect and first-byte timeouts,
// stream keepalive), resolved from the target, route and server blocks.
package router

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
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
	// Price is the target's configured price (cost strategy).
	Price float64
}

// Route is a model name or pattern and its targets.
type Route struct {
	Name     string
	Strategy string
	Targets  []Target
	Pattern  bool
	// StickyHeader names the request header that pins a session.
	StickyHeader string
	// Retry is the route's retry policy.
	Retry config.RetryPolicy
	next  atomic.Uint64
	total int
	r     *Router

	budgetMu sync.Mutex
	budget   float64
}

// maxRetryTokens is the most retries a route may spend in a burst.
const maxRetryTokens = 10

// Router resolves models to routes.
type Router struct {
	exact     map[string]*Route
	patterns  []*Route
	aliases   map[string]*Route
	routes    []*Route
	instances map[string]*Instance
}

// New builds a Router from config routes; srv supplies the default attempt
// limits (nil means the built-in defaults).
func New(routes []config.Route, srv *config.Server) (*Router, error) {
	if srv == nil {
		srv = &config.Server{}
	}
	r := &Router{exact: map[string]*Route{}, aliases: map[string]*Route{}, instances: map[string]*Instance{}}
	for _, c := range routes {
		rt := &Route{Name: c.Model, Strategy: c.Strategy, Pattern: strings.Contains(c.Model, "*"),
			StickyHeader: c.StickyHeader, r: r, budget: maxRetryTokens}
		if rt.Strategy == "" {
			rt.Strategy = "failover"
		}
		var err error
		if rt.Retry, err = c.Retry.Policy(); err != nil {
			return nil, fmt.Errorf("route %q: %w", c.Model, err)
		}
		for _, t := range c.Targets {
			w := t.Weight
			if w == 0 {
				w = 1
			}
			rt.Targets = append(rt.Targets, Target{Instance: t.Instance, Model: t.Model, Weight: w, Bounds: srv.Resolve(&c, &t), Price: t.Price})
			rt.total += w
			if r.instances[t.Instance] == nil {
				r.instances[t.Instance] = &Instance{Name: t.Instance}
			}
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
func (rt *Route) Plan(requested string) []Target { return rt.PlanFor(requested, "") }

// PlanFor is Plan for a request whose sticky header has value session
// (empty: none): the target the session hashes to comes first.
func (rt *Route) PlanFor(requested, session string) []Target {
	var out []Target
	switch rt.Strategy {
	case "least_busy", "latency", "cost":
		out = rt.ranked()
	default:
		out = rt.rotated()
	}
	if session != "" && len(out) > 1 {
		best, score := 0, uint64(0)
		for i, t := range out {
			if s := rendezvous(session, t.Instance); i == 0 || s > score {
				best, score = i, s
			}
		}
		pick := out[best]
		copy(out[1:best+1], out[:best])
		out[0] = pick
	}
	for i := range out {
		if out[i].Model == "" {
			out[i].Model = requested
		}
	}
	return out
}

// rendezvous scores target for session (FNV-1a of both).
func rendezvous(session, instance string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(session))
	h.Write([]byte{0})
	h.Write([]byte(instance))
	return h.Sum64()
}

// exploreShare is the share of requests the latency strategy sends to a
// random target first, so that a recovered or idle target is measured
// again.
const exploreShare = 0.05

// ranked orders the targets by the strategy's measure, ties in random
// order.
func (rt *Route) ranked() []Target {
	out := slices.Clone(rt.Targets)
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	switch rt.Strategy {
	case "least_busy":
		slices.SortStableFunc(out, func(a, b Target) int {
			return cmpInt(rt.r.Instance(a.Instance).InFlight(), rt.r.Instance(b.Instance).InFlight())
		})
	case "latency":
		if rand.Float64() < exploreShare {
			return out
		}
		slices.SortStableFunc(out, func(a, b Target) int {
			return cmpInt(int64(rt.r.Instance(a.Instance).Latency()), int64(rt.r.Instance(b.Instance).Latency()))
		})
	case "cost":
		// Unpriced targets come last, the rest cheapest first, ties in
		// configured order.
		out = slices.Clone(rt.Targets)
		slices.SortStableFunc(out, func(a, b Target) int {
			pa, pb := a.Price, b.Price
			if pa <= 0 {
				pa = math.Inf(1)
			}
			if pb <= 0 {
				pb = math.Inf(1)
			}
			switch {
			case pa < pb:
				return -1
			case pa > pb:
				return 1
			}
			return 0
		})
	}
	return out
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// rotated orders the targets for failover, round_robin and weighted.
func (rt *Route) rotated() []Target {
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
		out[i] = t
	}
	return out
}

// Instance returns what the router observes of the named instance; an
// instance no route targets gets a fresh, unshared record.
func (r *Router) Instance(name string) *Instance {
	if in := r.instances[name]; in != nil {
		return in
	}
	return &Instance{Name: name}
}

// SetBreaker sets the circuit breaker policy of every instance; call it
// before serving.
func (r *Router) SetBreaker(p config.BreakerPolicy) {
	for _, in := range r.instances {
		in.breaker.mu.Lock()
		in.breaker.p = p
		in.breaker.mu.Unlock()
	}
}

// Circuits returns the routing state of every routed instance.
func (r *Router) Circuits() map[string]Circuit {
	out := make(map[string]Circuit, len(r.instances))
	for name, in := range r.instances {
		out[name] = in.Circuit()
	}
	return out
}

// Admitted adds one request's share to the route's retry budget.
func (rt *Route) Admitted() {
	rt.budgetMu.Lock()
	defer rt.budgetMu.Unlock()
	rt.budget = min(rt.budget+rt.Retry.Budget, maxRetryTokens)
}

// SpendRetry takes one retry from the route's budget: retries may add
// at most Retry.Budget (a share) to the requests the route serves, after
// an initial allowance of maxRetryTokens, so that a dead upstream does
// not see its load multiplied. It reports false when the budget is spent.
func (rt *Route) SpendRetry() bool {
	rt.budgetMu.Lock()
	defer rt.budgetMu.Unlock()
	if rt.budget < 1 {
		return false
	}
	rt.budget--
	return true
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
