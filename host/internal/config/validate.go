package config

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// recordRanges copies block positions from the syntax tree into the
// decoded structs, which gohcl cannot do for blocks decoded by label.
func recordRanges(body hcl.Body, f *File) {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return
	}
	f.ranges = map[string]hcl.Range{}
	var providers, storage, secrets, middleware, routes, keys int
	for _, b := range sb.Blocks {
		switch b.Type {
		case "limits":
			if f.Limits != nil {
				f.Limits.DeclRange = b.DefRange()
			}
			f.ranges[b.Type] = b.DefRange()
		case "server", "logging", "documents", "telemetry", "circuit_breaker", "cache", "responses", "store":
			f.ranges[b.Type] = b.DefRange()
			for name, a := range b.Body.Attributes {
				f.ranges[b.Type+"."+name] = a.Expr.Range()
			}
		case "api_key":
			f.ranges[fmt.Sprintf("api_key[%d]", keys)] = b.DefRange()
			if keys < len(f.APIKeys) {
				recordKeyRanges(b, &f.APIKeys[keys])
			}
			keys++
		case "provider":
			if providers < len(f.Providers) {
				f.Providers[providers].DeclRange = b.DefRange()
				recordSourceRanges(b.Body, &f.Providers[providers])
			}
			providers++
		case "storage":
			if storage < len(f.Storage) {
				f.Storage[storage].DeclRange = b.DefRange()
				recordSourceRanges(b.Body, &f.Storage[storage])
			}
			storage++
		case "secrets":
			if secrets < len(f.Secrets) {
				f.Secrets[secrets].DeclRange = b.DefRange()
				recordSourceRanges(b.Body, &f.Secrets[secrets])
			}
			secrets++
		case "middleware":
			if middleware < len(f.Middleware) {
				f.Middleware[middleware].DeclRange = b.DefRange()
				recordSourceRanges(b.Body, &f.Middleware[middleware])
			}
			middleware++
		case "route":
			if routes < len(f.Routes) {
				f.Routes[routes].DeclRange = b.DefRange()
			}
			routes++
		}
	}
}

// recordKeyRanges records where an api_key block and its attributes are,
// and where each element of a storage_ops list literal is.
func recordKeyRanges(b *hclsyntax.Block, k *APIKey) {
	k.DeclRange = b.DefRange()
	k.AttrRanges = map[string]hcl.Range{}
	for name, a := range b.Body.Attributes {
		k.AttrRanges[name] = a.Expr.Range()
	}
	if a, ok := b.Body.Attributes["storage_ops"]; ok {
		if t, ok := a.Expr.(*hclsyntax.TupleConsExpr); ok && len(t.Exprs) == len(k.StorageOps) {
			for _, e := range t.Exprs {
				k.OpRanges = append(k.OpRanges, e.Range())
			}
		}
	}
}

// keyRange returns where attribute attr of k is, falling back to the
// block itself.
func (k *APIKey) keyRange(attr string) hcl.Range {
	if r, ok := k.AttrRanges[attr]; ok {
		return r
	}
	return k.DeclRange
}

func recordSourceRanges(body *hclsyntax.Body, inst *Instance) {
	c := 0
	for _, b := range body.Blocks {
		if b.Type != "credential" || c >= len(inst.Credentials) {
			continue
		}
		s := 0
		for _, sb := range b.Body.Blocks {
			if sb.Type == "from" && s < len(inst.Credentials[c].Sources) {
				inst.Credentials[c].Sources[s].DeclRange = sb.DefRange()
				s++
			}
		}
		c++
	}
}

func errAt(r hcl.Range, summary, detail string) *hcl.Diagnostic {
	rr := r
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: &rr}
}

var validStrategies = map[string]bool{"": true, "failover": true, "round_robin": true, "weighted": true,
	"least_busy": true, "latency": true, "cost": true}

var validCredentialKinds = map[string]string{
	"env":   "name",
	"file":  "path",
	"value": "value",
}

func (f *File) validate() hcl.Diagnostics {
	var diags hcl.Diagnostics
	if _, err := Duration(f.Server.RequestTimeout, DefaultRequestTimeout); err != nil {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid server.request_timeout", Detail: err.Error(), Subject: f.Range("server.request_timeout")})
	}
	for _, a := range []struct{ name, v string }{{"shutdown_grace", f.Server.ShutdownGrace}, {"drain_delay", f.Server.DrainDelay},
		{"read_timeout", f.Server.ReadTimeout}, {"read_idle_timeout", f.Server.ReadIdleTimeout}} {
		name := a.name
		if d, err := Duration(a.v, 0); err != nil || d < 0 {
			detail := "durations may not be negative"
			if err != nil {
				detail = err.Error()
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid server." + name, Detail: detail, Subject: f.Range("server." + name)})
		}
	}
	switch f.Server.Platform {
	case "", PlatformAuto, PlatformProbe, PlatformOff:
	default:
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid server.platform",
			Detail: `platform must be "auto", "probe" or "off"`, Subject: f.Range("server.platform")})
	}
	if s := f.Server.PageTokenSecret; s != "" && len(s) < 16 {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid server.page_token_secret",
			Detail: "page_token_secret must be at least 16 bytes; leave it out for a random key per process"})
	}
	if f.Logging != nil && f.Logging.Format != "" && f.Logging.Format != "text" && f.Logging.Format != "json" {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid logging.format", Detail: `format must be "text" or "json"`, Subject: f.Range("logging.format")})
	}
	diags = append(diags, f.validateStore()...)
	seenKeys := map[string]bool{}
	for i := range f.APIKeys {
		k := &f.APIKeys[i]
		at := f.Range(fmt.Sprintf("api_key[%d]", i))
		switch {
		case k.Key == "" && k.KeySHA256 == "":
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "API key without a secret",
				Detail: fmt.Sprintf("api_key %q needs key or key_sha256", k.Name), Subject: at})
		case k.Key != "" && k.KeySHA256 != "":
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "API key with two secrets",
				Detail: fmt.Sprintf("api_key %q sets both key and key_sha256; keep one", k.Name), Subject: at})
		case k.KeySHA256 != "":
			if b, err := hex.DecodeString(k.KeySHA256); err != nil || len(b) != 32 {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid key_sha256",
					Detail: fmt.Sprintf("api_key %q: key_sha256 must be 64 hex digits", k.Name), Subject: at})
			}
		}
		diags = append(diags, k.validateRights()...)
		if seenKeys[k.Name] {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate api_key", Detail: k.Name, Subject: at})
		}
		seenKeys[k.Name] = true
	}
	instances := map[string]string{}
	backends := map[string]bool{}
	for _, in := range f.Secrets {
		backends[in.Name] = true
	}
	check := func(kind string, list []Instance) {
		for _, in := range list {
			if prev, dup := instances[in.Name]; dup {
				diags = append(diags, errAt(in.DeclRange, "Duplicate instance name",
					fmt.Sprintf("%s %q reuses the name of a %s instance; instance names are unique", kind, in.Name, prev)))
			}
			instances[in.Name] = kind
			if !validName(in.Name) {
				diags = append(diags, errAt(in.DeclRange, "Invalid instance name",
					fmt.Sprintf("%q: use letters, digits, '_' and '-'", in.Name)))
			}
			if !validName(in.Type) {
				diags = append(diags, errAt(in.DeclRange, "Invalid type", fmt.Sprintf("%q: use letters, digits, '_' and '-'", in.Type)))
			}
			for _, c := range in.Credentials {
				if len(c.Sources) == 0 {
					diags = append(diags, errAt(in.DeclRange, "Credential without sources",
						fmt.Sprintf("credential %q of %s needs at least one from \"env\" | \"file\" | \"value\" block", c.Name, in.Name)))
				}
				for _, s := range c.Sources {
					attr, ok := validCredentialKinds[s.Kind]
					switch {
					case !ok && backends[s.Kind] && kind == "secrets" && s.Kind == in.Name:
						diags = append(diags, errAt(s.DeclRange, "Secrets block reads itself",
							fmt.Sprintf("secrets %q cannot take its own credentials from itself", in.Name)))
						continue
					case !ok && backends[s.Kind]:
						if len(s.Reference()) == 0 {
							diags = append(diags, errAt(s.DeclRange, "Incomplete credential source",
								fmt.Sprintf("from %q needs a reference such as path or secret", s.Kind)))
						}
						continue
					case !ok:
						diags = append(diags, errAt(s.DeclRange, "Unknown credential source",
							fmt.Sprintf("from %q: use env, file, value or the name of a secrets block", s.Kind)))
						continue
					}
					if extra := builtinExtras(s); extra != "" {
						diags = append(diags, errAt(s.DeclRange, "Unexpected attribute in credential source",
							fmt.Sprintf("from %q does not take %s; it is for secrets backends", s.Kind, extra)))
					}
					if (attr == "name" && s.Name == "") || (attr == "path" && s.Path == "") || (attr == "value" && s.Value == "") {
						diags = append(diags, errAt(s.DeclRange, "Incomplete credential source",
							fmt.Sprintf("from %q needs %s", s.Kind, attr)))
					}
				}
			}
			if in.MaxObjectBytes < 0 {
				diags = append(diags, errAt(in.DeclRange, "Invalid max_object_bytes", "max_object_bytes may not be negative"))
			}
			if in.Presign != nil {
				for name, v := range map[string]string{"default_ttl": in.Presign.DefaultTTL, "min_ttl": in.Presign.MinTTL, "max_ttl": in.Presign.MaxTTL} {
					if _, err := Duration(v, 0); err != nil {
						diags = append(diags, errAt(in.DeclRange, "Invalid presign."+name, err.Error()))
					}
				}
			}
		}
	}
	check("provider", f.Providers)
	check("storage", f.Storage)
	check("secrets", f.Secrets)
	check("middleware", f.Middleware)
	for _, in := range slices.Concat(f.Providers, f.Storage) {
		if in.HookTimeout != "" {
			diags = append(diags, errAt(in.DeclRange, "Unsupported argument",
				fmt.Sprintf("%q: hook_timeout applies to middleware instances only", in.Name)))
		}
	}
	for _, in := range f.Middleware {
		if d, err := Duration(in.HookTimeout, time.Second); err != nil || d <= 0 {
			diags = append(diags, errAt(in.DeclRange, "Invalid hook_timeout",
				fmt.Sprintf("middleware %q: hook_timeout %q must be a positive duration such as \"2s\"", in.Name, in.HookTimeout)))
		}
	}
	checkMiddleware := func(at hcl.Range, owner string, names []string) {
		seen := map[string]bool{}
		for _, n := range names {
			if instances[n] != "middleware" {
				diags = append(diags, errAt(at, "Unknown middleware",
					fmt.Sprintf("%s lists %q, which is not a configured middleware instance", owner, n)))
			}
			if seen[n] {
				diags = append(diags, errAt(at, "Duplicate middleware", fmt.Sprintf("%s lists %q twice", owner, n)))
			}
			seen[n] = true
		}
	}
	for _, k := range f.APIKeys {
		checkMiddleware(k.DeclRange, fmt.Sprintf("api_key %q", k.Name), k.Middleware)
	}
	for _, r := range f.Routes {
		checkMiddleware(r.DeclRange, fmt.Sprintf("route %q", r.Model), r.Middleware)
	}
	for i := range f.APIKeys {
		diags = append(diags, f.APIKeys[i].validateNames(instances)...)
	}
	seenRoutes := map[string]bool{}
	for _, r := range f.Routes {
		if !validStrategies[r.Strategy] {
			diags = append(diags, errAt(r.DeclRange, "Invalid strategy",
				fmt.Sprintf("route %q: strategy %q; use failover, round_robin, weighted, least_busy, latency or cost", r.Model, r.Strategy)))
		}
		if seenRoutes[r.Model] {
			diags = append(diags, errAt(r.DeclRange, "Duplicate route", r.Model))
		}
		seenRoutes[r.Model] = true
		if len(r.Targets) == 0 {
			diags = append(diags, errAt(r.DeclRange, "Route without targets",
				fmt.Sprintf("route %q needs at least one target \"<instance>\" { } block", r.Model)))
		}
		for _, t := range r.Targets {
			if instances[t.Instance] != "provider" {
				diags = append(diags, errAt(r.DeclRange, "Unknown route target",
					fmt.Sprintf("route %q targets %q, which is not a configured provider instance", r.Model, t.Instance)))
			}
			if t.Weight < 0 {
				diags = append(diags, errAt(r.DeclRange, "Invalid weight", "weights must be positive"))
			}
		}
		if strings.Count(r.Model, "*") > 0 && len(r.Aliases) > 0 {
			diags = append(diags, errAt(r.DeclRange, "Aliases on a pattern route",
				fmt.Sprintf("route %q is a pattern; aliases need an exact model name", r.Model)))
		}
	}
	diags = append(diags, f.validateAttempts()...)
	diags = append(diags, f.validateTraffic()...)
	diags = append(diags, f.validateCache()...)
	diags = append(diags, f.validateResponses()...)
	return diags
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

var validStorageOps = func() map[string]bool {
	m := map[string]bool{"*": true}
	for _, op := range StorageOps {
		m[op] = true
	}
	return m
}()

// validateRights refuses storage operation names that do not exist, at
// the element that names them.
func (k *APIKey) validateRights() hcl.Diagnostics {
	var diags hcl.Diagnostics
	for i, op := range k.StorageOps {
		if validStorageOps[op] {
			continue
		}
		r := k.keyRange("storage_ops")
		if i < len(k.OpRanges) {
			r = k.OpRanges[i]
		}
		diags = append(diags, errAt(r, "Unknown storage operation",
			fmt.Sprintf("api_key %q: storage_ops lists %q; use %s or \"*\"", k.Name, op, strings.Join(StorageOps, ", "))))
	}
	return diags
}

// validateNames flags exact instance names that grant nothing: a name no
// instance has, a storage instance in passthrough, a provider instance in
// instances. instances maps each configured name to its kind.
func (k *APIKey) validateNames(instances map[string]string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, list := range []struct {
		attr, want string
		names      []string
	}{
		{"passthrough", "provider", k.Passthrough},
		{"instances", "storage", k.Instances},
	} {
		for _, n := range list.names {
			if strings.Contains(n, "*") {
				continue
			}
			switch kind, ok := instances[n]; {
			case !ok:
				diags = append(diags, warnAt(k.keyRange(list.attr), "Unknown instance in "+list.attr,
					fmt.Sprintf("api_key %q: %s names %q, which is not a configured instance", k.Name, list.attr, n)))
			case kind != list.want:
				hint := "passthrough lists provider instances (transparent mode)"
				if list.want == "provider" {
					hint = "instances lists storage instances; passthrough lists provider instances"
				}
				diags = append(diags, errAt(k.keyRange(list.attr), "Wrong kind of instance in "+list.attr,
					fmt.Sprintf("api_key %q: %q is a %s instance; %s", k.Name, n, kind, hint)))
			}
		}
	}
	if len(k.Instances) > 0 && len(k.StorageOps) == 0 {
		diags = append(diags, warnAt(k.keyRange("instances"), "Storage instances without operations",
			fmt.Sprintf("api_key %q lists storage instances but no storage_ops, so it may do nothing with them; add storage_ops = [\"get\", …] or [\"*\"]", k.Name)))
	}
	return diags
}

func warnAt(r hcl.Range, summary, detail string) *hcl.Diagnostic {
	d := errAt(r, summary, detail)
	d.Severity = hcl.DiagWarning
	return d
}

// builtinExtras names a backend reference attribute set on a built-in
// source, or returns "".
func builtinExtras(s Source) string {
	for _, a := range []struct{ name, v string }{{"secret", s.Secret}, {"key", s.Key}, {"namespace", s.Namespace}, {"version", s.Version}} {
		if a.v != "" {
			return a.name
		}
	}
	return ""
}
