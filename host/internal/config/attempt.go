package config

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Bounds are the resolved per-attempt limits of one route target.
type Bounds struct {
	// Connect and FirstByte are zero when unbounded.
	Connect, FirstByte time.Duration
	// StreamKeepalive is always positive.
	StreamKeepalive time.Duration
}

// Resolve returns the limits of a target of route under server, the most
// specific setting winning. The attributes must have passed validation.
func (s *Server) Resolve(route *Route, target *Target) Bounds {
	pick := func(get func(*Attempt) string, def time.Duration) time.Duration {
		for _, a := range []*Attempt{&target.Attempt, &route.Attempt, &s.Attempt} {
			if v := get(a); v != "" {
				d, _ := time.ParseDuration(v)
				return d
			}
		}
		return def
	}
	return Bounds{
		Connect:         pick(func(a *Attempt) string { return a.ConnectTimeout }, DefaultConnectTimeout),
		FirstByte:       pick(func(a *Attempt) string { return a.FirstByteTimeout }, 0),
		StreamKeepalive: pick(func(a *Attempt) string { return a.StreamKeepalive }, DefaultStreamKeepalive),
	}
}

// Supervision is how plugin processes are health-checked.
type Supervision struct {
	Interval, Timeout time.Duration
	Failures          int
}

// Supervision returns the resolved health-check settings.
func (s *Server) Supervision() Supervision {
	out := Supervision{Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout, Failures: DefaultHealthFailures}
	if d, err := time.ParseDuration(s.HealthInterval); err == nil {
		out.Interval = d
	}
	if d, err := time.ParseDuration(s.HealthTimeout); err == nil {
		out.Timeout = d
	}
	if s.HealthFailures > 0 {
		out.Failures = s.HealthFailures
	}
	out.Timeout = min(out.Timeout, out.Interval)
	return out
}

// validateAttempts checks the health and attempt settings of the server,
// every route and every target: durations must parse and be positive
// (zero is allowed for first_byte_timeout, meaning unbounded).
func (f *File) validateAttempts() hcl.Diagnostics {
	var diags hcl.Diagnostics
	check := func(where string, r *hcl.Range, name, v string, zeroOK bool) {
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			err = fmt.Errorf("%s: %q is not a duration such as \"5s\"", where, v)
		case d < 0 || (d == 0 && !zeroOK):
			err = fmt.Errorf("%s: %s must be positive", where, name)
		}
		if err == nil {
			return
		}
		dg := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid " + name, Detail: err.Error()}
		if r != nil {
			rr := *r
			dg.Subject = &rr
		}
		diags = append(diags, dg)
	}
	attempt := func(where string, r *hcl.Range, a *Attempt) {
		check(where, r, "connect_timeout", a.ConnectTimeout, false)
		check(where, r, "first_byte_timeout", a.FirstByteTimeout, true)
		check(where, r, "stream_keepalive", a.StreamKeepalive, false)
	}
	s := f.Server
	check("server", nil, "health_interval", s.HealthInterval, false)
	check("server", nil, "health_timeout", s.HealthTimeout, false)
	if s.HealthFailures < 0 {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid health_failures",
			Detail: "server: health_failures must be positive"})
	}
	attempt("server", nil, &s.Attempt)
	for i := range f.Routes {
		r := &f.Routes[i]
		attempt(fmt.Sprintf("route %q", r.Model), &r.DeclRange, &r.Attempt)
		for j := range r.Targets {
			attempt(fmt.Sprintf("route %q target %q", r.Model, r.Targets[j].Instance), &r.DeclRange, &r.Targets[j].Attempt)
		}
	}
	return diags
}
