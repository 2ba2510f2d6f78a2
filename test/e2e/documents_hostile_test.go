package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/test/harness"
)

// hostileHCL runs the echo provider and the document extractor with one
// process and tight limits, so that a failure shows within seconds.
const hostileHCL = harness.APIKeyBlock + harness.EchoBlock + `
documents {
  allow_cidrs = ["127.0.0.1/32"]
  cache {
    backend = "none" # every request reaches the extractor
  }
  extract {
    processes   = 1
    timeout     = "2s"
    cpu_seconds = 2
  }
}
`

// extractTimeout is the extract.timeout of hostileHCL.
const extractTimeout = 2 * time.Second

// pdfFile writes objects (object 1 the catalog) as a PDF with a correct
// cross-reference table.
func pdfFile(objs ...string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

const (
	pdfCatalog = "<< /Type /Catalog /Pages 2 0 R >>"
	pdfPage    = "<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>"
	pdfText    = "<< /Length 33 >>\nstream\nBT (Quantum basics for all) Tj ET\nendstream"
)

var (
	// selfKidsPDF is a /Pages node that lists itself in /Kids.
	selfKidsPDF = pdfFile(pdfCatalog, "<< /Type /Pages /Kids [2 0 R] /Count 1 >>")
	// hugeCountPDF claims two billion pages and holds one.
	hugeCountPDF = pdfFile(pdfCatalog, "<< /Type /Pages /Kids [3 0 R] /Count 2147483647 >>", pdfPage, pdfText)
	// goodPDF is one page of text.
	goodPDF = pdfFile(pdfCatalog, "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", pdfPage, pdfText)
)

// filePart is an OpenAI file part carrying data inline.
func filePart(name string, data []byte) map[string]any {
	return map[string]any{"type": "file", "file": map[string]any{
		"filename": name, "file_data": "data:application/pdf;base64," + base64.StdEncoding.EncodeToString(data),
	}}
}

// urlPart is a document part with a URL source.
func urlPart(u string) map[string]any {
	return map[string]any{"type": "document", "source": map[string]any{"type": "url", "url": u}}
}

// chatClient gives up on an answer long after any extraction limit, so
// that a gateway stuck on a document fails the test instead of hanging it.
var chatClient = &http.Client{Timeout: 30 * time.Second}

// chatWith sends one user message with a text part and part. A request
// that gets no answer is status 0.
func chatWith(t *testing.T, h *harness.Host, part map[string]any) (int, []byte) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"model": "echo",
		"messages": []any{map[string]any{"role": "user", "content": []any{
			map[string]any{"type": "text", "text": "summarize"}, part,
		}}},
	})
	req, _ := http.NewRequest(http.MethodPost, h.URL+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+harness.Key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := chatClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// wantUnreadable checks a 422 document_unreadable that names the part.
func wantUnreadable(t *testing.T, status int, out []byte, says string) {
	t.Helper()
	var e struct {
		Error struct{ Message, Type, Code, Param string }
	}
	json.Unmarshal(out, &e)
	if status != http.StatusUnprocessableEntity || e.Error.Code != "document_unreadable" || e.Error.Param != "messages[0].content[1]" ||
		!strings.Contains(e.Error.Message, "messages[0].content[1]") || !strings.Contains(e.Error.Message, says) {
		t.Errorf("status %d %s, want 422 document_unreadable naming messages[0].content[1] and saying %q", status, out, says)
	}
}

// wantServed checks that a normal PDF is read after whatever came before.
func wantServed(t *testing.T, h *harness.Host) {
	t.Helper()
	status, out := chatWith(t, h, filePart("good.pdf", goodPDF))
	if status != http.StatusOK || !bytes.Contains(out, []byte(`(application/pdf, `+strconv.Itoa(len(goodPDF))+` bytes): Quantum basics for all]`)) {
		t.Fatalf("normal PDF: status %d %s", status, out)
	}
}

// cpuTicks returns the CPU time (user + system, in clock ticks) pid has
// used.
func cpuTicks(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	u, _ := strconv.ParseUint(f[11], 10, 64)
	s, _ := strconv.ParseUint(f[12], 10, 64)
	return u + s
}

// extractorProcs returns the running extractor processes of the host.
func extractorProcs(t *testing.T, h *harness.Host) []int {
	t.Helper()
	entries, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, e := range entries {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(e)))
		st, err := harness.ReadProcStat(pid)
		if err == nil && st.PPID == h.Cmd.Process.Pid && strings.HasPrefix(st.Comm, "llmproxy-extrac") && st.State != 'Z' {
			out = append(out, pid)
		}
	}
	return out
}

// stopProcess stops pid with SIGSTOP and waits until the kernel reports
// it stopped.
func stopProcess(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for range 500 {
		if st, err := harness.ReadProcStat(pid); err == nil && st.State == 'T' {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("process %d did not stop", pid)
}

// waitExtractor waits until the host has exactly one extractor process
// other than old, and returns it.
func waitExtractor(t *testing.T, h *harness.Host, old int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if ps := extractorProcs(t, h); len(ps) == 1 && ps[0] != old {
			return ps[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("extractor process %d not replaced (now %v)", old, extractorProcs(t, h))
	return 0
}

// TestDocumentsHostilePDF sends the self-referencing and the huge-count
// PDFs inline and by URL, four requests at once: each is refused with
// 422 document_unreadable within the extraction limit, the host's CPU
// goes back to idle, and the next normal document is read.
func TestDocumentsHostilePDF(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pdf")
		switch r.URL.Path {
		case "/self.pdf":
			w.Write(selfKidsPDF)
		case "/count.pdf":
			w.Write(hugeCountPDF)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	h := harness.Start(t, hostileHCL, harness.Options{WaitFor: []string{"echo"}})
	pid := h.Cmd.Process.Pid

	parts := []struct {
		name string
		part map[string]any
		says string
	}{
		{"inline self-referencing", filePart("self.pdf", selfKidsPDF), "cyclic"},
		{"inline huge count", filePart("count.pdf", hugeCountPDF), "claims 2147483647 pages"},
		{"url self-referencing", urlPart(srv.URL + "/self.pdf"), "cyclic"},
		{"url huge count", urlPart(srv.URL + "/count.pdf"), "claims 2147483647 pages"},
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, out := chatWith(t, h, p.part)
			wantUnreadable(t, status, out, p.says)
		}()
	}
	wg.Wait()
	// Four documents, one process: even one after the other, each ends
	// within the limit.
	if el := time.Since(start); el > 4*extractTimeout {
		t.Errorf("four hostile documents took %s", el)
	}

	before := cpuTicks(t, pid)
	time.Sleep(time.Second)
	if used := cpuTicks(t, pid) - before; used > 20 {
		t.Errorf("host used %d CPU ticks in the second after the hostile documents; want it idle", used)
	}
	for _, ep := range extractorProcs(t, h) {
		if st, _ := harness.ReadProcStat(ep); st.State == 'R' {
			t.Errorf("extractor process %d still running", ep)
		}
	}
	wantServed(t, h)
}

// TestDocumentsExtractorFailureCostsOneRequest makes the extractor
// process hang (stopped, as a parser stuck in a loop looks to the host)
// and then crash during a document: each costs that request only (422
// naming the part), the process is replaced, and the next document is
// read.
func TestDocumentsExtractorFailureCostsOneRequest(t *testing.T) {
	h := harness.Start(t, hostileHCL, harness.Options{WaitFor: []string{"echo"}})
	wantServed(t, h)
	procs := extractorProcs(t, h)
	if len(procs) != 1 {
		t.Fatalf("extractor processes %v, want one", procs)
	}
	hung := procs[0]

	t.Run("hang", func(t *testing.T) {
		stopProcess(t, hung)
		start := time.Now()
		status, out := chatWith(t, h, filePart("good.pdf", goodPDF))
		wantUnreadable(t, status, out, "took longer than 2s")
		if el := time.Since(start); el > extractTimeout+2*time.Second {
			t.Errorf("answered after %s", el)
		}
		next := waitExtractor(t, h, hung)
		wantServed(t, h)
		if ps := extractorProcs(t, h); len(ps) != 1 || ps[0] != next {
			t.Errorf("extractor processes %v, want only %d", ps, next)
		}
		_, _, metrics := h.Do(t, http.MethodGet, "/metrics", "")
		for _, want := range []string{`llmproxy_extractor_replaced_total{type="document"} 1`, `llmproxy_extractor_processes{type="document"} 1`} {
			if !bytes.Contains(metrics, []byte(want)) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	t.Run("crash", func(t *testing.T) {
		victim := extractorProcs(t, h)[0]
		stopProcess(t, victim)
		type result struct {
			status int
			out    []byte
		}
		done := make(chan result, 1)
		go func() {
			status, out := chatWith(t, h, filePart("good.pdf", goodPDF))
			done <- result{status, out}
		}()
		time.Sleep(300 * time.Millisecond)
		syscall.Kill(victim, syscall.SIGKILL)
		select {
		case r := <-done:
			wantUnreadable(t, r.status, r.out, "the extractor stopped on it")
		case <-time.After(extractTimeout + 2*time.Second):
			t.Fatal("no answer after the extractor crashed")
		}
		waitExtractor(t, h, victim)
		wantServed(t, h)
	})
}

// TestDocumentsShutdownDuringExtraction stops the host while a request
// waits on a stuck extraction: the host exits promptly.
func TestDocumentsShutdownDuringExtraction(t *testing.T) {
	h := harness.Start(t, harness.APIKeyBlock+harness.EchoBlock+`
documents {
  extract {
    processes = 1
    timeout   = "5m"
  }
}
`, harness.Options{WaitFor: []string{"echo"}})
	procs := extractorProcs(t, h)
	if len(procs) != 1 {
		t.Fatalf("extractor processes %v, want one", procs)
	}
	stopProcess(t, procs[0])
	go chatWith(t, h, filePart("good.pdf", goodPDF))
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	h.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("host still running 10s after SIGTERM")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("host took %s to stop", el)
	}
	time.Sleep(100 * time.Millisecond)
	if st, err := harness.ReadProcStat(procs[0]); err == nil && st.State != 'Z' {
		t.Errorf("extractor process %d outlived the host (state %c)", procs[0], st.State)
	}
}

// TestDocumentsExtractorDiesWithHost kills the host outright: its
// extractor processes do not outlive it.
func TestDocumentsExtractorDiesWithHost(t *testing.T) {
	h := harness.Start(t, hostileHCL, harness.Options{WaitFor: []string{"echo"}})
	var procs []harness.Proc
	for _, pid := range extractorProcs(t, h) {
		p, err := harness.LookupProc(pid)
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	if len(procs) != 1 {
		t.Fatalf("extractor processes %v, want one", procs)
	}
	h.Cmd.Process.Kill()
	<-h.Exited()
	for _, p := range harness.WaitGone(procs, 5*time.Second) {
		t.Errorf("extractor process %d outlived the host", p.PID)
	}
}
