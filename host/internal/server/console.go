package server

import (
	"context"
	"sort"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/console"
)

// newConsole returns the web console of s, which signs in with the admin
// keys of the routing in use and dispatches its API calls to s.
func (s *Server) newConsole() *console.Console {
	return console.New(console.Options{
		Admin:    s.isAdmin,
		Dispatch: s.Handle,
		Info:     s.consoleInfo,
	})
}

// isAdmin reports whether secret is an admin key now: of the config
// file, or of the key store (and not shadowed by a config key's name).
func (s *Server) isAdmin(secret []byte) bool {
	g := s.gen.Load()
	if k := g.Keys.Lookup(secret); k != nil {
		return k.Admin
	}
	if s.opts.StoredKeys == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(s.base, 5*time.Second)
	defer cancel()
	k, err := s.opts.StoredKeys.Lookup(ctx, secret)
	return err == nil && k != nil && k.Admin && g.Keys.ByName(k.Name) == nil
}

// consoleRoute is a route as the console's routes page shows it.
type consoleRoute struct {
	Name     string          `json:"name"`
	Strategy string          `json:"strategy"`
	Pattern  bool            `json:"pattern"`
	Aliases  []string        `json:"aliases"`
	Targets  []consoleTarget `json:"targets"`
	Cache    *consoleCache   `json:"cache"`
}

type consoleTarget struct {
	Instance string `json:"instance"`
	Model    string `json:"model,omitempty"`
	Weight   int    `json:"weight,omitempty"`
}

type consoleCache struct {
	TTL string `json:"ttl"`
}

type consoleInstance struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	Type string `json:"type"`
}

// consoleInfo describes the routes and instances in use for the console.
func (s *Server) consoleInfo() any {
	g := s.gen.Load()
	out := struct {
		Routes    []consoleRoute    `json:"routes"`
		Instances []consoleInstance `json:"instances"`
	}{Routes: []consoleRoute{}, Instances: []consoleInstance{}}
	if g.Router != nil {
		for _, rt := range g.Router.Routes() {
			r := consoleRoute{Name: rt.Name, Strategy: rt.Strategy, Pattern: rt.Pattern, Aliases: g.Router.Aliases(rt)}
			for _, t := range rt.Targets {
				r.Targets = append(r.Targets, consoleTarget{Instance: t.Instance, Model: t.Model, Weight: t.Weight})
			}
			if rule, ok := g.Cache.For(rt.Name, false); ok {
				r.Cache = &consoleCache{TTL: rule.TTL.String()}
			}
			out.Routes = append(out.Routes, r)
		}
	}
	if s.opts.Plugins != nil {
		for _, in := range s.opts.Plugins.Instances() {
			out.Instances = append(out.Instances, consoleInstance{Name: in.Name, Kind: in.Kind(), Type: in.Type})
		}
	}
	sort.Slice(out.Instances, func(i, j int) bool { return out.Instances[i].Name < out.Instances[j].Name })
	return out
}
