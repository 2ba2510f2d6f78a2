package deployments

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAlertRules checks the Prometheus rules and runs their unit tests
// with promtool (scripts/install-deps.sh installs it).
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed: run scripts/install-deps.sh (Debian package prometheus)")
	}
	for _, args := range [][]string{
		{"check", "rules", "llmproxy-rules.yaml"},
		{"test", "rules", "llmproxy-rules.test.yaml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "monitoring"
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
