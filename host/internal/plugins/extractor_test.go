package plugins

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
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/document"
	"github.com/llmproxy/llmproxy/sdk/extractor"
	"github.com/llmproxy/llmproxy/sdk/openai"
)

// extractorDir holds the llmproxy-extractor-document binary, built once
// from the plugin's module for the tests of this file.
var extractorDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "llmproxy-extractor-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "llmproxy-extractor-document"), ".")
	cmd.Dir = filepath.Join("..", "..", "..", "plugins", "extractor-document")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build the extractor plugin: %v\n%s", err, out)
		os.Exit(1)
	}
	extractorDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startExtractors starts the document extractor with cfg and stops it
// when the test ends.
func startExtractors(t *testing.T, cfg document.ExtractConfig) *Extractors {
	t.Helper()
	x := StartExtractors(&config.File{Documents: &document.Config{Extract: &cfg}}, Options{
		Dir: extractorDir, Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr}),
		Settings: map[string]string{"log_level": "warn"},
	})
	t.Cleanup(x.Stop)
	if !x.Handles("application/pdf") || !x.Handles("text/html") || x.Handles("text/plain") {
		t.Fatalf("extractor handles %+v, want PDF and HTML", x.Status())
	}
	return x
}

// onePID returns the pool's only process.
func onePID(t *testing.T, x *Extractors) int {
	t.Helper()
	st := x.Status()
	if len(st) != 1 || len(st[0].PIDs) != 1 {
		t.Fatalf("status %+v, want one process", st)
	}
	return st[0].PIDs[0]
}

// waitPID waits until the pool has one process other than old.
func waitPID(t *testing.T, x *Extractors, old int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if st := x.Status(); len(st[0].PIDs) == 1 && st[0].PIDs[0] != old {
			return st[0].PIDs[0]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d not replaced: %+v", old, x.Status())
	return 0
}

const samplePDF = "%PDF-1.4\n" +
	"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n" +
	"2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n" +
	"3 0 obj\n<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>\nendobj\n" +
	"4 0 obj\n<< /Length 27 >>\nstream\nBT (Quantum basics) Tj ET\n\nendstream\nendobj\n"

// pdfWithXref adds a cross-reference table and trailer to objects.
func pdfWithXref(objects string) []byte {
	var b bytes.Buffer
	b.WriteString(objects)
	var offsets []int
	for i := 1; ; i++ {
		j := strings.Index(objects, fmt.Sprintf("\n%d 0 obj", i))
		if j < 0 {
			break
		}
		offsets = append(offsets, j+1)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, xref)
	return b.Bytes()
}

// stopProcess stops pid with SIGSTOP and waits until the kernel reports
// it stopped.
func stopProcess(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500; i++ {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if i := bytes.LastIndexByte(b, ')'); i > 0 && len(b) > i+2 && b[i+2] == 'T' {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("process %d did not stop", pid)
}

func wantUnreadable(t *testing.T, err error, says string) {
	t.Helper()
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.Status != 422 || oe.Code != extractor.CodeUnreadable {
		t.Fatalf("err = %v, want 422 %s", err, extractor.CodeUnreadable)
	}
	if !strings.Contains(oe.Message, says) {
		t.Errorf("message %q does not say %q", oe.Message, says)
	}
}

func TestExtractorsReadAndLimit(t *testing.T) {
	x := startExtractors(t, document.ExtractConfig{Processes: 1, CPUSeconds: 3, MemoryBytes: 256 << 20}.WithDefaults())
	ctx := context.Background()
	text, err := x.Extract(ctx, "q.pdf", "application/pdf", pdfWithXref(samplePDF))
	if err != nil || text != "Quantum basics" {
		t.Fatalf("Extract = %q, %v", text, err)
	}
	text, err = x.Extract(ctx, "p.html", "text/html", []byte("<h1>Title</h1><script>x()</script><p>Body</p>"))
	if err != nil || text != "Title\nBody" {
		t.Fatalf("Extract html = %q, %v", text, err)
	}
	pid := onePID(t, x)
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	var cpuSoft, cpuHard, asSoft string
	for _, line := range strings.Split(string(limits), "\n") {
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Max cpu time") && len(f) >= 5:
			cpuSoft, cpuHard = f[3], f[4]
		case strings.HasPrefix(line, "Max address space") && len(f) >= 5:
			asSoft = f[3]
		}
	}
	if asSoft == "" || asSoft == "unlimited" {
		t.Errorf("address space not limited:\n%s", limits)
	}
	// The soft CPU limit was armed before the last document at what the
	// process had used plus the 3 s budget; the hard one is its lifetime
	// budget.
	used, _ := cpuSeconds(pid)
	soft, err1 := strconv.ParseUint(cpuSoft, 10, 64)
	hard, err2 := strconv.ParseUint(cpuHard, 10, 64)
	if err1 != nil || err2 != nil || soft < 3 || soft > used+3 || soft+3 <= used || hard < 3*cpuLifetimeCalls {
		t.Errorf("cpu limits soft %s hard %s with %d s used, want soft within 3 s of use and hard >= %d:\n%s", cpuSoft, cpuHard, used, 3*cpuLifetimeCalls, limits)
	}
}

// TestExtractorsRefusalKeepsProcess checks that a document the plugin
// refuses costs no process.
func TestExtractorsRefusalKeepsProcess(t *testing.T) {
	x := startExtractors(t, document.ExtractConfig{Processes: 1}.WithDefaults())
	pid := onePID(t, x)
	selfRef := pdfWithXref("%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [2 0 R] /Count 1 >>\nendobj\n")
	_, err := x.Extract(context.Background(), "loop.pdf", "application/pdf", selfRef)
	wantUnreadable(t, err, "cyclic")
	if got := onePID(t, x); got != pid || x.Status()[0].Replaced != 0 {
		t.Errorf("process %d replaced by %d after a refusal", pid, got)
	}
}

// TestExtractorsHungProcessReplaced stops the process (as a parser stuck
// in a loop would be, to the host) and checks that the document fails
// with 422 at the deadline, the process is killed and replaced, and the
// next document is read.
func TestExtractorsHungProcessReplaced(t *testing.T) {
	x := startExtractors(t, document.ExtractConfig{Processes: 1, Timeout: "1500ms"}.WithDefaults())
	pid := onePID(t, x)
	stopProcess(t, pid)
	start := time.Now()
	_, err := x.Extract(context.Background(), "q.pdf", "application/pdf", pdfWithXref(samplePDF))
	wantUnreadable(t, err, "took longer than 1.5s")
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("answered after %s", el)
	}
	if syscall.Kill(pid, 0) == nil {
		if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !strings.Contains(string(st), ") Z") {
			t.Errorf("hung process %d still alive", pid)
		}
	}
	next := waitPID(t, x, pid)
	if text, err := x.Extract(context.Background(), "q.pdf", "application/pdf", pdfWithXref(samplePDF)); err != nil || text != "Quantum basics" {
		t.Fatalf("after replacement: %q, %v", text, err)
	}
	if x.Status()[0].Replaced != 1 || onePID(t, x) != next {
		t.Errorf("status %+v, want one replacement", x.Status())
	}
}

// TestExtractorsDeadIdleProcessReplaced kills an idle process: the next
// document is read by a new one.
func TestExtractorsDeadIdleProcessReplaced(t *testing.T) {
	x := startExtractors(t, document.ExtractConfig{Processes: 1}.WithDefaults())
	pid := onePID(t, x)
	syscall.Kill(pid, syscall.SIGKILL)
	time.Sleep(100 * time.Millisecond)
	if text, err := x.Extract(context.Background(), "q.pdf", "application/pdf", pdfWithXref(samplePDF)); err != nil || text != "Quantum basics" {
		t.Fatalf("after the crash: %q, %v", text, err)
	}
	if got := onePID(t, x); got == pid {
		t.Errorf("dead process %d still in the pool", pid)
	}
}

// TestExtractorsStopInterruptsCalls checks that Stop ends a call in
// progress at once.
func TestExtractorsStopInterruptsCalls(t *testing.T) {
	x := startExtractors(t, document.ExtractConfig{Processes: 1, Timeout: "1m"}.WithDefaults())
	stopProcess(t, onePID(t, x))
	errc := make(chan error, 1)
	go func() {
		_, err := x.Extract(context.Background(), "q.pdf", "application/pdf", pdfWithXref(samplePDF))
		errc <- err
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	x.Stop()
	select {
	case err := <-errc:
		var oe *openai.Error
		if !errors.As(err, &oe) || oe.Status != 503 {
			t.Errorf("err = %v, want 503", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("call still running 3s after Stop")
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("Stop took %s", el)
	}
	if len(x.Status()[0].PIDs) != 0 {
		t.Errorf("processes left after Stop: %+v", x.Status())
	}
}

func TestExtractorsNoneInstalled(t *testing.T) {
	x := StartExtractors(&config.File{}, Options{Dir: t.TempDir(), Logger: hclog.NewNullLogger()})
	defer x.Stop()
	if x.Handles("application/pdf") {
		t.Fatal("handles PDF with no extractor installed")
	}
	none := []string{}
	x = StartExtractors(&config.File{Documents: &document.Config{Extract: &document.ExtractConfig{Extractors: &none}}},
		Options{Dir: extractorDir, Logger: hclog.NewNullLogger()})
	defer x.Stop()
	if x.Handles("application/pdf") || len(x.Status()) != 0 {
		t.Fatalf("extractors = [] still started %+v", x.Status())
	}
}

// TestExtractorsCPULimitEndsProcess delivers the SIGXCPU the kernel
// sends at the CPU-time soft limit while a (large) document is being
// read: the process exits, the document fails with 422 saying so, and a
// new process reads the next one.
func TestExtractorsCPULimitEndsProcess(t *testing.T) {
	x := startExtractors(t, document.ExtractConfig{Processes: 1, Timeout: "1m", MaxTextBytes: 64 << 20}.WithDefaults())
	pid := onePID(t, x)
	stopProcess(t, pid)
	large := []byte(strings.Repeat("<p>many words in many paragraphs</p>", 400000))
	errc := make(chan error, 1)
	go func() {
		_, err := x.Extract(context.Background(), "large.html", "text/html", large)
		errc <- err
	}()
	time.Sleep(200 * time.Millisecond)
	syscall.Kill(pid, syscall.SIGXCPU)
	syscall.Kill(pid, syscall.SIGCONT)
	select {
	case err := <-errc:
		wantUnreadable(t, err, "CPU time limit")
	case <-time.After(10 * time.Second):
		t.Fatal("no answer 10s after SIGXCPU")
	}
	waitPID(t, x, pid)
	if text, err := x.Extract(context.Background(), "q.pdf", "application/pdf", pdfWithXref(samplePDF)); err != nil || text != "Quantum basics" {
		t.Fatalf("after the CPU limit: %q, %v", text, err)
	}
}

// TestExtractorsMemoryLimitEndsProcess gives the process 64 MiB and a
// document that needs several times that to read: the process dies at its
// address-space limit, the document fails with 422, and a new process
// reads the next one.
func TestExtractorsMemoryLimitEndsProcess(t *testing.T) {
	x := startExtractors(t, document.ExtractConfig{Processes: 1, MemoryBytes: 64 << 20, MaxTextBytes: 256 << 20}.WithDefaults())
	pid := onePID(t, x)
	large := []byte(strings.Repeat("<p>many words in many paragraphs</p>", 1<<20))
	_, err := x.Extract(context.Background(), "large.html", "text/html", large)
	wantUnreadable(t, err, "the extractor stopped on it")
	waitPID(t, x, pid)
	if text, err := x.Extract(context.Background(), "q.pdf", "application/pdf", pdfWithXref(samplePDF)); err != nil || text != "Quantum basics" {
		t.Fatalf("after the memory limit: %q, %v", text, err)
	}
}
