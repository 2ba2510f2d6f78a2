package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
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
  key       = %q
  models    = ["*"]
  instances = ["*"]
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
	url    string
	cmd    *exec.Cmd
	logf   *os.File
	exited chan struct{}
	// pids are the plugin processes by instance name.
	pids map[string]int
}

// startHost writes the config into dir, starts llmproxy and waits until
// its instances are ready.
func startHost(ctx context.Context, bin, dir, body string) (*host, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf("server {\n  listen = %q\n  plugins_dir = %q\n}\n%s", addr, filepath.Join(bin, "plugins"), body)
	path := filepath.Join(dir, "llmproxy.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	logf, err := os.Create(filepath.Join(dir, "llmproxy.log"))
	if err != nil {
		return nil, fmt.Errorf("host log: %w", err)
	}
	cmd := exec.Command(filepath.Join(bin, "llmproxy"), "-config", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start llmproxy: %w", err)
	}
	h := &host{url: "http://" + addr, cmd: cmd, logf: logf, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(h.exited)
	}()
	if err := h.waitReady(ctx, []string{"echo", instance}); err != nil {
		h.stop()
		return nil, err
	}
	return h, nil
}

// waitReady polls /readyz until the instances are ready and records their
// plugin PIDs.
func (h *host) waitReady(ctx context.Context, names []string) error {
	deadline := time.Now().Add(startTimeout)
	last := ""
	for time.Now().Before(deadline) {
		select {
		case <-h.exited:
			return fmt.Errorf("llmproxy exited during start; log:\n%s", h.logTail())
		case <-ctx.Done():
			return fmt.Errorf("wait for llmproxy: %w", ctx.Err())
		default:
		}
		st, raw, err := readyz(h.url)
		if err == nil {
			ok := true
			for _, n := range names {
				ok = ok && st[n].State == "ready" && st[n].PID > 0
			}
			if ok {
				h.pids = map[string]int{}
				for _, n := range names {
					h.pids[n] = st[n].PID
				}
				return nil
			}
		}
		last = raw
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("llmproxy instances %v not ready within %v (last /readyz: %s); log:\n%s", names, startTimeout, last, h.logTail())
}

// readyz reads the instance states of /readyz.
func readyz(url string) (map[string]harness.InstanceStatus, string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url + "/readyz")
	if err != nil {
		return nil, "", fmt.Errorf("GET /readyz: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", fmt.Errorf("read /readyz: %w", err)
	}
	var body struct {
		Instances map[string]harness.InstanceStatus `json:"instances"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, string(raw), fmt.Errorf("decode /readyz: %w", err)
	}
	return body.Instances, string(raw), nil
}

// stop sends SIGTERM, waits for the host to exit and kills it if it does
// not.
func (h *host) stop() {
	defer h.logf.Close()
	select {
	case <-h.exited:
		return
	default:
	}
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(stopTimeout):
		h.cmd.Process.Kill()
		<-h.exited
	}
}

// logTail returns the end of the host's log.
func (h *host) logTail() string {
	b, err := os.ReadFile(h.logf.Name())
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// freeAddr returns a free 127.0.0.1 address.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
