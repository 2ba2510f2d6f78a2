package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Process is a child process whose output goes to a log file. Benchmarks
// and other tools that run the binaries outside `go test` use it; tests use
// Start.
type Process struct {
	Name    string
	Cmd     *exec.Cmd
	logPath string
	logf    *os.File
	exited  chan struct{}
}

// Launch starts cmd with its output in the file logPath. With firstLine, it
// waits (up to within) for the first line of stdout — the URL that fakes
// and proxies print — and returns it; the rest of stdout goes to the log.
// On Linux the kernel kills the child when the caller dies.
func Launch(ctx context.Context, name, logPath string, cmd *exec.Cmd, firstLine bool, within time.Duration) (*Process, string, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, "", fmt.Errorf("%s log: %w", name, err)
	}
	cmd.Stderr = logf
	bindToCaller(cmd)
	var stdout io.ReadCloser
	if firstLine {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			logf.Close()
			return nil, "", fmt.Errorf("%s stdout: %w", name, err)
		}
	} else {
		cmd.Stdout = logf
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, "", fmt.Errorf("start %s (%s): %w", name, cmd.Path, err)
	}
	p := &Process{Name: name, Cmd: cmd, logPath: logPath, logf: logf, exited: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		if stdout != nil {
			br := bufio.NewReader(stdout)
			line, _ := br.ReadString('\n')
			lines <- strings.TrimSpace(line)
			io.Copy(logf, br)
		}
		cmd.Wait()
		close(p.exited)
	}()
	if !firstLine {
		return p, "", nil
	}
	select {
	case line := <-lines:
		if !strings.HasPrefix(line, "http://127.0.0.1:") {
			p.Stop(time.Second)
			return nil, "", fmt.Errorf("%s printed %q instead of its URL; log:\n%s", name, line, p.LogTail())
		}
		return p, line, nil
	case <-time.After(within):
		p.Stop(time.Second)
		return nil, "", fmt.Errorf("%s did not print its URL within %v", name, within)
	case <-ctx.Done():
		p.Stop(time.Second)
		return nil, "", fmt.Errorf("start %s: %w", name, ctx.Err())
	}
}

// Exited is closed when the process ends.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Stop sends SIGTERM, waits up to timeout for the process to exit and
// kills it if it does not.
func (p *Process) Stop(timeout time.Duration) {
	defer p.logf.Close()
	select {
	case <-p.exited:
		return
	default:
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.Cmd.Process.Kill()
		<-p.exited
	}
}

// LogTail returns the last 4000 bytes of the process's log.
func (p *Process) LogTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// FreeAddress returns a free 127.0.0.1 address.
func FreeAddress() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// DevKey is the key of the embedded default config, an admin key there.
const DevKey = "sk-llmproxy-dev"

// ReadyInstances reads the instance states of a host's /readyz, and the
// raw body for error messages. Only admin keys see instance states: it
// presents each of adminKeys (by default Key, then DevKey) until one
// does.
func ReadyInstances(url string, adminKeys ...string) (map[string]InstanceStatus, string, error) {
	if len(adminKeys) == 0 {
		adminKeys = []string{Key, DevKey}
	}
	var (
		raw string
		err error
	)
	for _, key := range adminKeys {
		var st map[string]InstanceStatus
		if st, raw, err = readyAs(url, key); err == nil && st != nil {
			return st, raw, nil
		}
	}
	if err == nil {
		err = fmt.Errorf("/readyz shows no instances to keys %v: %s", adminKeys, raw)
	}
	return nil, raw, err
}

func readyAs(url, key string) (map[string]InstanceStatus, string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	req, err := http.NewRequest("GET", url+"/readyz", nil)
	if err != nil {
		return nil, "", err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("GET /readyz: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", fmt.Errorf("read /readyz: %w", err)
	}
	var body struct {
		Instances map[string]InstanceStatus `json:"instances"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, string(raw), fmt.Errorf("decode /readyz: %w", err)
	}
	return body.Instances, string(raw), nil
}

// WaitInstances polls the host at url until the named instances are
// ready with a plugin process, and returns their states; adminKeys are
// as for ReadyInstances. It gives up when host exits, ctx ends or within
// passes.
func WaitInstances(ctx context.Context, url string, names []string, host *Process, within time.Duration, adminKeys ...string) (map[string]InstanceStatus, error) {
	deadline := time.Now().Add(within)
	last := ""
	for time.Now().Before(deadline) {
		select {
		case <-host.Exited():
			return nil, fmt.Errorf("%s exited during start; log:\n%s", host.Name, host.LogTail())
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for %s: %w", host.Name, ctx.Err())
		default:
		}
		st, raw, err := ReadyInstances(url, adminKeys...)
		if err == nil {
			ok := true
			for _, n := range names {
				ok = ok && st[n].State == "ready" && st[n].PID > 0
			}
			if ok {
				return st, nil
			}
		}
		last = raw
		time.Sleep(20 * time.Millisecond)
	}
	return nil, fmt.Errorf("%s instances %v not ready within %v (last /readyz: %s); log:\n%s", host.Name, names, within, last, host.LogTail())
}
