package deployments

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Title  string  `json:"title"`
	UID    string  `json:"uid"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

var (
	// labelParts are label matchers and grouping clauses, which hold
	// label names, not metrics.
	labelParts = regexp.MustCompile(`\{[^}]*\}|\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)|\[[^\]]*\]|"[^"]*"`)
	identifier = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promqlWord = map[string]bool{"sum": true, "max": true, "min": true, "avg": true, "rate": true, "increase": true,
		"histogram_quantile": true, "count": true, "by": true, "without": true, "and": true, "or": true, "unless": true,
		"label_values": true, "irate": true, "topk": true, "bottomk": true}
)

// queriedMetrics returns the metric names in a PromQL expression.
func queriedMetrics(expr string) []string {
	var out []string
	for _, id := range identifier.FindAllString(labelParts.ReplaceAllString(expr, " "), -1) {
		if !promqlWord[id] {
			out = append(out, id)
		}
	}
	return out
}

func TestQueriedMetrics(t *testing.T) {
	got := strings.Join(queriedMetrics(`histogram_quantile(0.9, sum by (gen_ai_request_model, le) (rate(x_bucket{job=~"$job",a="b"}[$__rate_interval]))) / on (job) y:z`), ",")
	if got != "x_bucket,y:z" {
		t.Errorf("got %s", got)
	}
}

// externalMetrics reads the metrics the monitoring README lists as coming
// from other features.
func externalMetrics(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("monitoring/README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "## Metrics from other features")
	if !ok {
		t.Fatal("monitoring/README.md has no section on metrics from other features")
	}
	out := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_:]+)`").FindAllStringSubmatch(section, -1) {
		out[m[1]] = true
	}
	return out
}

// recordedMetrics are the names the rules file records.
func recordedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("monitoring/llmproxy-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Record string `json:"record"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				out[r.Record] = true
			}
		}
	}
	return out
}

// hostMetrics starts the host on its embedded default config, sends it a
// chat request and returns the metric names its /metrics serves (a
// histogram's _bucket, _sum and _count included).
func hostMetrics(t *testing.T) map[string]bool {
	t.Helper()
	bin := binDir(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(filepath.Join(bin, "llmproxy"), "-plugins-dir", filepath.Join(bin, "plugins"))
	cmd.Env = append(os.Environ(), "LLMPROXY_LISTEN="+addr, "LLMPROXY_API_KEY=sk-dashboard-test", "TMPDIR="+t.TempDir())
	cmd.Dir = t.TempDir()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the host was not ready within 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions",
		strings.NewReader(`{"model":"echo","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer sk-dashboard-test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("chat: %d", resp.StatusCode)
	}
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		var name, typ string
		if _, err := fmt.Sscanf(line, "# TYPE %s %s", &name, &typ); err != nil {
			continue
		}
		out[name] = true
		if typ == "histogram" || typ == "summary" {
			out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = true, true, true
		}
	}
	return out
}

// TestDashboardMetrics parses the Grafana dashboard and checks that every
// metric it queries exists: served by a running host, recorded by a rule,
// or listed in monitoring/README.md as coming from another feature.
func TestDashboardMetrics(t *testing.T) {
	b, err := os.ReadFile("monitoring/llmproxy-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard needs a title and a uid")
	}
	served, recorded, external := hostMetrics(t), recordedMetrics(t), externalMetrics(t)
	for _, want := range []string{"llmproxy_requests_total", "llmproxy_request_duration_seconds_bucket", "llmproxy_instance_ready",
		"llmproxy_config_reloads_total", "llmproxy_config_last_reload_successful", "process_resident_memory_bytes"} {
		if !served[want] {
			t.Errorf("the host does not serve %s", want)
		}
	}
	var all []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	queries := 0
	for _, p := range all {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			names := queriedMetrics(tg.Expr)
			if len(names) == 0 {
				t.Errorf("panel %q query %s names no metric: %s", p.Title, tg.RefID, tg.Expr)
			}
			for _, n := range names {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
				if !served[n] && !recorded[n] && !external[n] && !external[base] {
					t.Errorf("panel %q queries %s, which the host does not serve, no rule records and monitoring/README.md does not list", p.Title, n)
				}
			}
		}
	}
	t.Logf("%d panels, %d queries checked", len(all), queries)
}
