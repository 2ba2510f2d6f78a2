// Package profile takes CPU and allocation profiles of a running llmproxy
// host or plugin on a signal, without opening a listener.
//
// It is off unless the process starts with LLMPROXY_PROFILE_DIR set (for a
// plugin, through the env block of its provider or storage instance).
// Then the first SIGUSR2 starts a CPU profile and snapshots the allocation
// profile, and the next SIGUSR2 stops the CPU profile and writes, into
// that directory:
//
//	<name>-<pid>-cpu.pprof           CPU time between the two signals
//	<name>-<pid>-allocs-start.pprof  allocations up to the first signal
//	<name>-<pid>-allocs.pprof        allocations up to the second signal
//
// so that `go tool pprof -sample_index=alloc_space -base
// <name>-<pid>-allocs-start.pprof <name>-<pid>-allocs.pprof` shows what
// was allocated in between. The gateway benchmark (test/cmd/bench -pprof)
// sends the signals around its load phase.
package profile

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
)

// EnvDir names the environment variable that turns profiling on and names
// the directory the profiles are written to.
const EnvDir = "LLMPROXY_PROFILE_DIR"

// FromEnv starts listening for SIGUSR2 when EnvDir is set; name prefixes
// the profile files. Errors are reported on stderr, which is the log of
// both the host and the plugins; they never stop the process.
func FromEnv(name string) {
	dir := os.Getenv(EnvDir)
	if dir == "" {
		return
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR2)
	go loop(sigs, dir, fmt.Sprintf("%s-%d", filepath.Base(name), os.Getpid()))
}

// loop toggles profiling on every signal received from sigs.
func loop(sigs <-chan os.Signal, dir, prefix string) {
	var cpu *bytes.Buffer
	for range sigs {
		if cpu == nil {
			cpu = new(bytes.Buffer)
			if err := writeProfile(dir, prefix+"-allocs-start.pprof", "allocs"); err != nil {
				report(err)
			}
			if err := pprof.StartCPUProfile(cpu); err != nil {
				report(fmt.Errorf("start CPU profile: %w", err))
				cpu = nil
			}
			continue
		}
		pprof.StopCPUProfile()
		if err := os.WriteFile(filepath.Join(dir, prefix+"-cpu.pprof"), cpu.Bytes(), 0o600); err != nil {
			report(fmt.Errorf("write CPU profile: %w", err))
		}
		cpu = nil
		if err := writeProfile(dir, prefix+"-allocs.pprof", "allocs"); err != nil {
			report(err)
		}
	}
}

// writeProfile writes the named runtime profile into dir/file.
func writeProfile(dir, file, name string) error {
	var b bytes.Buffer
	if err := pprof.Lookup(name).WriteTo(&b, 0); err != nil {
		return fmt.Errorf("%s profile: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write %s profile: %w", name, err)
	}
	return nil
}

func report(err error) {
	fmt.Fprintln(os.Stderr, "profile:", err)
}
