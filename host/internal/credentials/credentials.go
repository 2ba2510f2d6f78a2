// Package credentials resolves the secrets a plugin instance needs.
//
// Each credential lists sources, tried in order until one yields a value:
// an environment variable, a file (a mounted Kubernetes secret is a file),
// or an inline value. The resolved secrets go to the plugin in Configure;
// ambient cloud identity (AWS default chain, GCP ADC, Azure managed
// identity, OCI instance principal) is resolved inside the plugin by its
// cloud SDK and needs no entry here. Values are never logged: errors name
// the sources tried, not what they held.
package credentials

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// ErrNotFound means a source had nothing to offer; the next one is tried.
var ErrNotFound = errors.New("not found")

// Source yields one secret.
type Source interface {
	// Resolve returns the secret, ErrNotFound (possibly wrapped) when the
	// source is empty, or another error when it is broken.
	Resolve(ctx context.Context) (string, error)
	// String describes the source without its value.
	String() string
}

// New returns the Source a config block describes.
func New(s config.Source) (Source, error) { return Resolver{}.source(s) }

// source returns the Source a config block describes: a built-in one, or
// a reference to one of r's secrets backends.
func (r Resolver) source(s config.Source) (Source, error) {
	switch s.Kind {
	case "env":
		return envSource(s.Name), nil
	case "file":
		return fileSource{path: s.Path, field: s.Field}, nil
	case "value":
		return valueSource(s.Value), nil
	}
	if r.Backends != nil {
		if b := r.Backends(s.Kind); b != nil {
			return &backendSource{backend: s.Kind, b: b, ref: s.Reference(), field: s.Field}, nil
		}
	}
	return nil, fmt.Errorf("unknown credential source %q (use env, file, value or the name of a secrets block)", s.Kind)
}

type envSource string

func (e envSource) Resolve(context.Context) (string, error) {
	if v := os.Getenv(string(e)); v != "" {
		return v, nil
	}
	return "", fmt.Errorf("environment variable %s is not set: %w", string(e), ErrNotFound)
}

func (e envSource) String() string { return "env " + string(e) }

type fileSource struct{ path, field string }

func (f fileSource) Resolve(context.Context) (string, error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("file %s does not exist: %w", f.path, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", f.path, err)
	}
	if f.field == "" {
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("file %s is empty: %w", f.path, ErrNotFound)
		}
		return v, nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf("file %s is not a JSON object (field %q requested): %w", f.path, f.field, err)
	}
	switch v := m[f.field].(type) {
	case string:
		if v != "" {
			return v, nil
		}
	case nil:
	default:
		out, _ := json.Marshal(v)
		return string(out), nil
	}
	return "", fmt.Errorf("file %s has no field %q: %w", f.path, f.field, ErrNotFound)
}

func (f fileSource) String() string {
	if f.field != "" {
		return fmt.Sprintf("file %s (field %s)", f.path, f.field)
	}
	return "file " + f.path
}

type valueSource string

func (v valueSource) Resolve(context.Context) (string, error) {
	if v == "" {
		return "", fmt.Errorf("empty value: %w", ErrNotFound)
	}
	return string(v), nil
}

func (valueSource) String() string { return "inline value" }

// Resolve resolves every configured credential of an instance. It fails
// when a credential configured without optional = true yields nothing,
// naming the sources it tried; when that is the only kind of problem, the
// error is an *AbsentError.
func Resolve(ctx context.Context, creds []config.Credential) (map[string]string, error) {
	res, err := Resolver{}.Resolve(ctx, creds)
	return res.Values, err
}

// ResolveStatus is Resolve that also reports, per credential, what each
// source of its chain said (see Status). The statuses never hold a value.
func ResolveStatus(ctx context.Context, creds []config.Credential) (map[string]string, []Status, error) {
	res, err := Resolver{}.Resolve(ctx, creds)
	return res.Values, res.Statuses, err
}

// Resolver resolves credential chains whose sources may name secrets
// backends (the `secrets` blocks of the config).
type Resolver struct {
	// Backends returns the backend of a `secrets` block by name, or nil
	// when there is none.
	Backends func(name string) Backend
}

// Resolution is the outcome of resolving an instance's credentials.
type Resolution struct {
	// Values are the credentials by name.
	Values map[string]string
	// Statuses say, per credential, what each source said.
	Statuses []Status
	// Expires is when the first of the values stops working; zero when
	// none expires.
	Expires time.Time
	// RefreshAfter is the earliest poll a store asked for; zero for none.
	RefreshAfter time.Time
	// Leases are the store leases behind the values, each once.
	Leases []Lease
}

// Resolve resolves every credential (see the package Resolve). One read
// of a backend reference serves every credential that names a field of
// it, so that an AWS key id and its secret come from the same lease.
func (r Resolver) Resolve(ctx context.Context, creds []config.Credential) (Resolution, error) {
	ctx = withReadCache(ctx)
	out := make(map[string]string, len(creds))
	statuses := make([]Status, 0, len(creds))
	var expires, poll time.Time
	var (
		problems []string
		absent   []config.Credential
		broken   bool
	)
	for _, c := range creds {
		v, st, err := r.resolveOne(ctx, c)
		statuses = append(statuses, st)
		if v != "" && !st.Expires.IsZero() && (expires.IsZero() || st.Expires.Before(expires)) {
			expires = st.Expires
		}
		if v != "" && !st.refreshAfter.IsZero() && (poll.IsZero() || st.refreshAfter.Before(poll)) {
			poll = st.refreshAfter
		}
		switch {
		case err != nil:
			broken = true
			problems = append(problems, fmt.Sprintf("credential %s: %v", c.Name, err))
		case v == "" && !c.Optional:
			absent = append(absent, c)
			problems = append(problems, fmt.Sprintf("credential %s: no source produced a value (tried %s)", c.Name, strings.Join(st.tried(), ", ")))
		case v != "":
			out[c.Name] = v
		}
	}
	leases := collectLeases(statuses)
	if len(problems) > 0 {
		msg := strings.Join(problems, "; ")
		res := Resolution{Values: out, Statuses: statuses, Expires: expires, RefreshAfter: poll, Leases: leases}
		if !broken {
			return res, &AbsentError{Credentials: absent, msg: msg}
		}
		return res, errors.New(msg)
	}
	return Resolution{Values: out, Statuses: statuses, Expires: expires, RefreshAfter: poll, Leases: leases}, nil
}

// CheckRequired fails when the plugin requires a credential the instance
// does not configure.
func CheckRequired(creds []config.Credential, required []schema.Credential) error {
	configured := map[string]bool{}
	for _, c := range creds {
		configured[c.Name] = true
	}
	var problems []string
	for _, r := range required {
		if r.Required && !configured[r.Name] {
			problems = append(problems, fmt.Sprintf("credential %s is required by the plugin but not configured; add a credential %q { from \"env\" { name = \"...\" } } block", r.Name, r.Name))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// resolveOne walks one credential's chain: a source that has nothing
// ("unavailable") passes to the next, a source that should have worked but
// did not ("failed") ends the chain with its error, so that a broken store
// never silently gives way to another identity.
func (r Resolver) resolveOne(ctx context.Context, c config.Credential) (string, Status, error) {
	st := Status{Name: c.Name, Rotation: RotationStatic}
	for i, s := range c.Sources {
		src, err := r.source(s)
		if err != nil {
			return "", st, err
		}
		switch src.(type) {
		case fileSource:
			st.Rotation = RotationWatched
		case *backendSource:
			st.Rotation = RotationLeased
		}
		var (
			v   string
			sec Secret
		)
		if bs, ok := src.(*backendSource); ok {
			v, sec, err = bs.resolve(ctx)
		} else {
			v, err = src.Resolve(ctx)
		}
		switch {
		case err == nil:
			st.Expires, st.Version, st.refreshAfter = sec.Expires, sec.Version, sec.RefreshAfter
			if bs, ok := src.(*backendSource); ok && sec.LeaseID != "" {
				st.lease = &Lease{Backend: bs.backend, ID: sec.LeaseID, Renewable: sec.Renewable, Expires: sec.Expires, b: bs.b}
			}
			if st.Rotation == RotationLeased && sec.Expires.IsZero() {
				st.Rotation = RotationPolled
				if sec.RefreshAfter.IsZero() {
					st.Rotation = RotationStatic
				}
			}
			st.Source = src.String()
			st.Sources = append(st.Sources, SourceStatus{Source: src.String(), State: SourceUsed})
			for _, rest := range c.Sources[i+1:] {
				if r, err := New(rest); err == nil {
					st.Sources = append(st.Sources, SourceStatus{Source: r.String(), State: SourceNotTried})
				}
			}
			return v, st, nil
		case errors.Is(err, ErrNotFound):
			st.Sources = append(st.Sources, SourceStatus{Source: src.String(), State: SourceUnavailable, Reason: err.Error()})
		default:
			st.Sources = append(st.Sources, SourceStatus{Source: src.String(), State: SourceFailed, Reason: err.Error()})
			return "", st, fmt.Errorf("%s: %w", src, err)
		}
	}
	return "", st, nil
}
