package config

import (
	"fmt"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
)

// Store drivers.
const (
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"
)

// DefaultStorePath is the SQLite file of a store block without a path,
// beside the config file.
const DefaultStorePath = "llmproxy.db"

// DefaultUsageBuffer is how many usage records wait for the database
// before new ones are dropped.
const DefaultUsageBuffer = 10000

// Store is the store block: where llmproxy keeps the keys created through
// the admin API, usage records and stored responses. Without the block
// there is no store: only the config file's keys authenticate and the
// admin API answers that no store is configured.
//
//	store {
//	  driver = "sqlite"        # embedded, a file beside the config (default)
//	  path   = "llmproxy.db"
//	}
//
//	store {
//	  driver = "postgres"      # shared by many replicas
//	  url    = env("LLMPROXY_DATABASE_URL")
//	}
type Store struct {
	// Driver is "sqlite" (the default) or "postgres".
	Driver string `hcl:"driver,optional"`
	// Path is the SQLite database file, relative to the config file's
	// directory.
	Path string `hcl:"path,optional"`
	// URL is the PostgreSQL connection URL (postgres://user:pass@host/db).
	URL string `hcl:"url,optional"`
	// UsageBuffer bounds the usage records waiting to be written; when it
	// is full, new records are dropped and counted.
	UsageBuffer int `hcl:"usage_buffer,optional"`
}

// applyDefaults fills in the driver, path and buffer and makes a SQLite
// path absolute, relative to baseDir.
func (s *Store) applyDefaults(baseDir string) {
	if s.Driver == "" {
		s.Driver = StoreSQLite
	}
	if s.Driver == StoreSQLite {
		if s.Path == "" {
			s.Path = DefaultStorePath
		}
		if !filepath.IsAbs(s.Path) {
			if abs, err := filepath.Abs(filepath.Join(baseDir, s.Path)); err == nil {
				s.Path = abs
			}
		}
	}
	if s.UsageBuffer == 0 {
		s.UsageBuffer = DefaultUsageBuffer
	}
}

// Source is what the driver connects to: the file path or the URL.
func (s *Store) Source() string {
	if s.Driver == StorePostgres {
		return s.URL
	}
	return s.Path
}

func (f *File) validateStore() hcl.Diagnostics {
	s := f.Store
	if s == nil {
		return nil
	}
	var diags hcl.Diagnostics
	bad := func(attr, detail string) {
		at := f.Range("store." + attr)
		if at == nil {
			at = f.Range("store")
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid store." + attr, Detail: detail, Subject: at})
	}
	switch s.Driver {
	case StoreSQLite:
		if s.URL != "" {
			bad("url", `url is for driver = "postgres"; the sqlite driver takes a path`)
		}
	case StorePostgres:
		if s.URL == "" {
			bad("url", `driver = "postgres" needs url, e.g. url = env("LLMPROXY_DATABASE_URL")`)
		}
		if s.Path != "" {
			bad("path", `path is for driver = "sqlite"; the postgres driver takes a url`)
		}
	default:
		bad("driver", fmt.Sprintf("driver %q is not %q or %q", s.Driver, StoreSQLite, StorePostgres))
	}
	if s.UsageBuffer < 0 {
		bad("usage_buffer", "usage_buffer must be a positive number of records")
	}
	return diags
}
