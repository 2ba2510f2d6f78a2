package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// Cache is the top-level cache block: where the exact response cache
// keeps its answers and how much of them. Caching itself is opt-in: a
// route turns it on with its own cache block, an API key with
// cache = true.
//
//	cache {
//	  backend     = "memory"          # or "redis"
//	  redis       = env("REDIS_URL")  # with backend = "redis"
//	  ttl         = "10m"             # for keys that opt in on routes that do not
//	  max_entries = 10000             # memory: entries kept at most
//	  max_bytes   = 67108864          # memory: bytes of answers kept at most
//	  max_entry_bytes = 1048576       # larger answers are not cached
//	}
type Cache struct {
	Backend       string `hcl:"backend,optional"`
	Redis         string `hcl:"redis,optional"`
	Prefix        string `hcl:"prefix,optional"`
	TTL           string `hcl:"ttl,optional"`
	MaxEntries    int    `hcl:"max_entries,optional"`
	MaxBytes      int64  `hcl:"max_bytes,optional"`
	MaxEntryBytes int64  `hcl:"max_entry_bytes,optional"`
	// Timeout bounds each Redis command; a slow cache is a miss.
	Timeout string `hcl:"timeout,optional"`
}

// RouteCache is a route's cache block: answers of the route are cached
// for TTL. Streams are cached only when the request has no tools, unless
// StreamsWithTools is set.
type RouteCache struct {
	TTL              string `hcl:"ttl,optional"`
	StreamsWithTools bool   `hcl:"streams_with_tools,optional"`
}

// validateCache checks the cache block and the routes' cache blocks.
func (f *File) validateCache() hcl.Diagnostics {
	var diags hcl.Diagnostics
	bad := func(summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: f.Range("cache")})
	}
	if c := f.Cache; c != nil {
		switch c.Backend {
		case "", "memory":
		case "redis":
			if c.Redis == "" {
				bad("Invalid cache", `backend = "redis" needs redis = "redis://host:port"`)
			}
		default:
			bad("Invalid cache.backend", fmt.Sprintf(`backend must be "memory" or "redis", not %q`, c.Backend))
		}
		for _, a := range []struct{ name, v string }{{"ttl", c.TTL}, {"timeout", c.Timeout}} {
			if d, err := Duration(a.v, 0); err != nil || d < 0 {
				detail := "durations may not be negative"
				if err != nil {
					detail = err.Error()
				}
				bad("Invalid cache."+a.name, detail)
			}
		}
		if c.MaxEntries < 0 || c.MaxBytes < 0 || c.MaxEntryBytes < 0 {
			bad("Invalid cache", "max_entries, max_bytes and max_entry_bytes may not be negative")
		}
	}
	for _, rt := range f.Routes {
		if rt.Cache == nil {
			continue
		}
		if d, err := Duration(rt.Cache.TTL, 0); err != nil || d < 0 {
			detail := "durations may not be negative"
			if err != nil {
				detail = err.Error()
			}
			r := rt.DeclRange
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid cache.ttl",
				Detail: fmt.Sprintf("route %q: %s", rt.Model, detail), Subject: &r})
		}
	}
	return diags
}
