package config

import (
	"strings"
	"testing"
	"time"
)

func TestAttemptBoundsResolve(t *testing.T) {
	src := `
server {
  listen             = "127.0.0.1:0"
  connect_timeout    = "4s"
  stream_keepalive   = "20s"
  health_interval    = "1s"
  health_timeout     = "5s"
  health_failures    = 2
}
api_key "dev" { key = "sk-1" }
provider "a" { type = "echo" }
provider "b" { type = "echo" }
route "m" {
  first_byte_timeout = "30s"
  target "a" { connect_timeout = "500ms" }
  target "b" {}
}
route "n" {
  target "a" {}
}
`
	f, diags := Parse([]byte(src), "test.hcl", t.TempDir())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	tests := []struct {
		route, target int
		want          Bounds
	}{
		{0, 0, Bounds{Connect: 500 * time.Millisecond, FirstByte: 30 * time.Second, StreamKeepalive: 20 * time.Second}},
		{0, 1, Bounds{Connect: 4 * time.Second, FirstByte: 30 * time.Second, StreamKeepalive: 20 * time.Second}},
		{1, 0, Bounds{Connect: 4 * time.Second, StreamKeepalive: 20 * time.Second}},
	}
	for _, tt := range tests {
		r := &f.Routes[tt.route]
		if got := f.Server.Resolve(r, &r.Targets[tt.target]); got != tt.want {
			t.Errorf("route %s target %d: %+v, want %+v", r.Model, tt.target, got, tt.want)
		}
	}
	// The health timeout never exceeds the interval.
	if got, want := f.Server.Supervision(), (Supervision{Interval: time.Second, Timeout: time.Second, Failures: 2}); got != want {
		t.Errorf("supervision %+v, want %+v", got, want)
	}

	f, diags = Parse([]byte(base), "test.hcl", t.TempDir())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	want := Bounds{Connect: DefaultConnectTimeout, StreamKeepalive: DefaultStreamKeepalive}
	if got := f.Server.Resolve(&f.Routes[0], &f.Routes[0].Targets[0]); got != want {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
}

func TestAttemptBoundsInvalid(t *testing.T) {
	tests := []struct{ src, want string }{
		{"route \"x\" {\n  connect_timeout = \"soon\"\n  target \"echo\" {}\n}\n", `route "x": "soon" is not a duration`},
		{"route \"x\" {\n  target \"echo\" { stream_keepalive = \"0s\" }\n}\n", `route "x" target "echo": stream_keepalive must be positive`},
		{"route \"x\" {\n  target \"echo\" { first_byte_timeout = \"-1s\" }\n}\n", "first_byte_timeout must be positive"},
	}
	for _, tt := range tests {
		_, diags := Parse([]byte(base+tt.src), "test.hcl", t.TempDir())
		if !diags.HasErrors() || !strings.Contains(diags.Error(), tt.want) {
			t.Errorf("%s: diagnostics %v, want %q", tt.src, diags, tt.want)
		}
	}
	_, diags := Parse([]byte(strings.Replace(base, `server { listen = "127.0.0.1:0" }`, `server {
  health_interval = "often"
}`, 1)), "test.hcl", t.TempDir())
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "health_interval") {
		t.Errorf("a bad health_interval passed: %v", diags)
	}
}
