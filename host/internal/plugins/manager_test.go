package plugins

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/llmproxy/llmproxy/host/internal/config"
)

// reloadConfig is a config with an echo instance "a" (chunk_delay
// delayA), when two a second one "b", and storage "s".
func reloadConfig(t *testing.T, dir, delayA string, two bool) *config.File {
	t.Helper()
	src := `server {
  plugins_dir = "` + dir + `"
}
provider "a" {
  type = "echo"
  config {
    chunk_delay = "` + delayA + `"
  }
}
storage "s" {
  type = "local"
  config {
    root = "/tmp/x"
  }
}
`
	if two {
		src += "provider \"b\" {\n  type = \"echo\"\n}\n"
	}
	cfg, diags := config.Parse([]byte(src), "test.hcl", dir)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return cfg
}

func reloadOptions(cfg *config.File, dir string) Options {
	return Options{Dir: dir, Logger: hclog.NewNullLogger(), Files: cfg.Parser.Files()}
}

// TestBuildReusesUnchangedInstances checks which instances a reload keeps
// and which it replaces: a config change, a changed plugin binary and a
// new instance make new ones; everything else is reused as it is.
func TestBuildReusesUnchangedInstances(t *testing.T) {
	dir := t.TempDir()
	echo := filepath.Join(dir, BinaryName("provider", "echo"))
	if err := os.WriteFile(echo, []byte("echo v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	first := reloadConfig(t, dir, "1ms", false)
	cur, fresh := build(first, reloadOptions(first, dir), nil)
	if len(fresh) != 2 {
		t.Fatalf("first build: %d new instances, want 2", len(fresh))
	}
	steps := []struct {
		name   string
		cfg    func() *config.File
		before func()
		// fresh are the names of the instances the step must create.
		fresh []string
	}{
		{name: "same config", cfg: func() *config.File { return reloadConfig(t, dir, "1ms", false) }},
		{name: "instance added", cfg: func() *config.File { return reloadConfig(t, dir, "1ms", true) }, fresh: []string{"b"}},
		{name: "config block changed", cfg: func() *config.File { return reloadConfig(t, dir, "2ms", true) }, fresh: []string{"a"}},
		{name: "plugin binary replaced", cfg: func() *config.File { return reloadConfig(t, dir, "2ms", true) },
			before: func() {
				if err := os.WriteFile(echo, []byte("echo v2"), 0o755); err != nil {
					t.Fatal(err)
				}
			}, fresh: []string{"a", "b"}},
		{name: "instance removed", cfg: func() *config.File { return reloadConfig(t, dir, "2ms", false) }},
	}
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		cfg := st.cfg()
		next, fresh := build(cfg, reloadOptions(cfg, dir), cur)
		got := map[string]bool{}
		for _, in := range fresh {
			got[in.Name] = true
		}
		if len(got) != len(st.fresh) {
			t.Errorf("%s: new instances %v, want %v", st.name, got, st.fresh)
		}
		for _, n := range st.fresh {
			if !got[n] {
				t.Errorf("%s: %s was not replaced", st.name, n)
			}
		}
		for _, n := range next.order {
			if !got[n] && next.instances[n] != cur.instances[n] {
				t.Errorf("%s: %s was replaced without a change", st.name, n)
			}
		}
		cur = next
	}
	if _, ok := cur.instances["b"]; ok {
		t.Errorf("b is still in the set after its removal")
	}
}

// TestCommitKeepsRemovedInstancesUntilFinish checks that a removed
// instance stays reachable by name between Commit and Finish, so that
// requests routed by the previous configuration find it.
func TestCommitKeepsRemovedInstancesUntilFinish(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, BinaryName("provider", "echo")), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	two := reloadConfig(t, dir, "1ms", true)
	s, _ := build(two, reloadOptions(two, dir), nil)
	m := &Manager{}
	m.cur.Store(s)
	one := reloadConfig(t, dir, "1ms", false)
	next, _ := build(one, reloadOptions(one, dir), s)
	m.mu.Lock() // as Prepare leaves it
	r := &Reload{m: m, next: next}
	stale := r.Commit()
	if len(stale) != 1 || stale[0].Name != "b" {
		t.Fatalf("stale %v, want b", stale)
	}
	if m.Get("b") == nil {
		t.Errorf("b is gone before Finish")
	}
	r.Finish()
	if m.Get("b") != nil || m.Get("a") == nil {
		t.Errorf("after Finish: a %v, b %v; want a only", m.Get("a"), m.Get("b"))
	}
}
