package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/llmproxy/llmproxy/test/harness"
)

// Names the host config gives things.
const (
	apiKey   = "sk-ragbench"
	bucket   = "rag-docs"
	instance = "store"
)

// Bounds on starting and stopping the host.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// hostConfig is the config of a host with the echo provider, the storage
// instance "store" of backend b, and a document fetcher allowed to reach
// 127.0.0.1 (the benchmark's document server). The server block is added
// by startHost.
func hostConfig(b harness.StorageBackend) string {
	return fmt.Sprintf(`
logging {
  level = "warn"
}

api_key "bench" {
  key         = %q
  models      = ["*"]
  passthrough = ["*"]
  instances   = ["*"]
  storage_ops = ["*"]
  admin       = true
}

provider "echo" {
  type = "echo"
}

route "echo" {
  target "echo" {}
}

storage %q {
  type            = %q
  allowed_buckets = [%q]
  presign {
    min_ttl = "1s"
    max_ttl = "1h"
  }
  %s
}

documents {
  allow_cidrs = ["127.0.0.1/32"]
}
`, apiKey, instance, b.Type, bucket, b.Body)
}

// host is a running llmproxy.
type host struct {
	url  string
	proc *harness.Process
	// pids are the plugin processes by instance name.
	pids map[string]int
}

// startHost writes the config into dir, starts llmproxy and waits until
// its instances are ready.
func startHost(ctx context.Context, bin, dir, body string) (*host, error) {
	addr, err := harness.FreeAddress()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf("server {\n  listen = %q\n  plugins_dir = %q\n}\n%s", addr, filepath.Join(bin, "plugins"), body)
	path := filepath.Join(dir, "llmproxy.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	cmd := exec.Command(filepath.Join(bin, "llmproxy"), "-config", path)
	p, _, err := harness.Launch(ctx, "llmproxy", filepath.Join(dir, "llmproxy.log"), cmd, false, startTimeout)
	if err != nil {
		return nil, err
	}
	h := &host{url: "http://" + addr, proc: p}
	names := []string{"echo", instance}
	st, err := harness.WaitInstances(ctx, h.url, names, p, startTimeout, apiKey)
	if err != nil {
		h.stop()
		return nil, err
	}
	h.pids = map[string]int{}
	for _, n := range names {
		h.pids[n] = st[n].PID
	}
	return h, nil
}

// stop ends the host.
func (h *host) stop() { h.proc.Stop(stopTimeout) }
