package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Proc identifies one process: its PID plus the start time the kernel
// recorded, so that a PID reused by a later process is not mistaken for
// the original.
type Proc struct {
	PID int
	// Start is field 22 of /proc/<pid>/stat (clock ticks after boot).
	Start uint64
	// Comm is the executable name the kernel reports.
	Comm string
}

// ProcStat is what /proc/<pid>/stat says about a process.
type ProcStat struct {
	// State is the one-letter state: R, S, D, T, Z, X, ...
	State byte
	PPID  int
	Start uint64
	Comm  string
}

// ReadProcStat parses /proc/<pid>/stat. It returns an error wrapping
// os.ErrNotExist when there is no such process.
func ReadProcStat(pid int) (ProcStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcStat{}, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	// The command name is in parentheses and may itself contain spaces or
	// parentheses, so split at the last ')'.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return ProcStat{}, fmt.Errorf("stat of pid %d is malformed: %q", pid, b)
	}
	fields := strings.Fields(string(b[end+1:]))
	// fields[0] is field 3 (state); field N is fields[N-3].
	if len(fields) < 20 {
		return ProcStat{}, fmt.Errorf("stat of pid %d has %d fields after the name", pid, len(fields))
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return ProcStat{}, fmt.Errorf("stat of pid %d: ppid %q: %w", pid, fields[1], err)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return ProcStat{}, fmt.Errorf("stat of pid %d: start time %q: %w", pid, fields[19], err)
	}
	return ProcStat{State: fields[0][0], PPID: ppid, Start: start, Comm: string(b[open+1 : end])}, nil
}

// LookupProc returns the Proc of a running process.
func LookupProc(pid int) (Proc, error) {
	st, err := ReadProcStat(pid)
	if err != nil {
		return Proc{}, err
	}
	return Proc{PID: pid, Start: st.Start, Comm: st.Comm}, nil
}

// Running reports whether p is still executing: its PID exists, belongs
// to the same process (same start time) and is not a zombie, i.e. a dead
// process whose exit status nobody has collected yet.
func (p Proc) Running() bool {
	st, err := ReadProcStat(p.PID)
	if err != nil {
		return false
	}
	return st.Start == p.Start && st.State != 'Z' && st.State != 'X'
}

// WaitGone waits up to within for every process in procs to stop
// running and returns those still running at the deadline.
func WaitGone(procs []Proc, within time.Duration) []Proc {
	deadline := time.Now().Add(within)
	for {
		var alive []Proc
		for _, p := range procs {
			if p.Running() {
				alive = append(alive, p)
			}
		}
		if len(alive) == 0 || time.Now().After(deadline) {
			return alive
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Environ reads the environment a process was started with from
// /proc/<pid>/environ.
func Environ(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return nil, fmt.Errorf("read environment of pid %d: %w", pid, err)
	}
	env := map[string]string{}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if len(kv) == 0 {
			continue
		}
		k, v, _ := strings.Cut(string(kv), "=")
		env[k] = v
	}
	return env, nil
}

// PluginProcs returns the Proc of every instance that /readyz reports with
// a PID, keyed by instance name. An instance whose process has exited
// between the /readyz answer and the lookup (one retiring after a reload,
// or one restarting after a crash) is left out: it has no process to
// return.
func (h *Host) PluginProcs(t testing.TB) map[string]Proc {
	t.Helper()
	st, err := h.Instances()
	if err != nil {
		t.Fatalf("read /readyz: %v", err)
	}
	out := map[string]Proc{}
	for name, s := range st {
		if s.PID == 0 {
			continue
		}
		p, err := LookupProc(s.PID)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatalf("instance %s: plugin pid %d from /readyz: %v", name, s.PID, err)
		}
		out[name] = p
	}
	return out
}

// ExitCode waits up to within for the host to exit and returns its exit
// code, or fails the test.
func (h *Host) ExitCode(t testing.TB, within time.Duration) int {
	t.Helper()
	select {
	case <-h.exited:
	case <-time.After(within):
		t.Fatalf("llmproxy did not exit within %v", within)
	}
	return h.Cmd.ProcessState.ExitCode()
}

// RunResult is the outcome of a finished llmproxy command.
type RunResult struct {
	// Code is the exit code (-1 when killed by a signal).
	Code           int
	Stdout, Stderr string
}

// RunLLMProxy runs the llmproxy binary with args to completion (at most
// a minute) in dir, with the test's environment plus env, and returns what
// it printed.
func RunLLMProxy(t testing.TB, dir string, env []string, args ...string) RunResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(BinDir(t), "llmproxy"), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run llmproxy %v: %v", args, err)
	}
	return RunResult{Code: cmd.ProcessState.ExitCode(), Stdout: stdout.String(), Stderr: stderr.String()}
}
