package profile

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestLoopWritesProfiles toggles profiling twice and checks that the
// three profiles are written, gzip-compressed as pprof writes them.
func TestLoopWritesProfiles(t *testing.T) {
	dir := t.TempDir()
	sigs := make(chan os.Signal)
	done := make(chan struct{})
	go func() {
		loop(sigs, dir, "test-1")
		close(done)
	}()
	sigs <- syscall.SIGUSR2
	// Something to profile.
	var sink [][]byte
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
		sink = append(sink, make([]byte, 1024))
	}
	_ = sink
	sigs <- syscall.SIGUSR2
	close(sigs)
	<-done
	for _, f := range []string{"test-1-cpu.pprof", "test-1-allocs-start.pprof", "test-1-allocs.pprof"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("profile not written: %v", err)
		}
		if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			t.Errorf("%s is not a gzip-compressed profile: % x", f, b[:min(len(b), 8)])
		}
	}
}

// TestFromEnvSignals profiles this test process through real signals.
func TestFromEnvSignals(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvDir, dir)
	FromEnv("/bin/selftest")
	self, err := os.FindProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "selftest-"+strconv.Itoa(os.Getpid())+"-allocs.pprof")
	for range 2 {
		if err := self.Signal(syscall.SIGUSR2); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(want); err == nil {
			return
		}
		if time.Now().After(deadline) {
			entries, _ := os.ReadDir(dir)
			t.Fatalf("%s not written; directory holds %v", want, entries)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
