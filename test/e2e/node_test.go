package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/llmproxy/llmproxy/test/harness"
)

// runNode runs test/node/<script> with args against the host, with the
// harness API key, and decodes the JSON it printed into a T.
func runNode[T any](t *testing.T, h *harness.Host, script string, args ...string) T {
	t.Helper()
	out := harness.Node(t, script, args, "LLMPROXY_URL="+h.URL, "LLMPROXY_KEY="+harness.Key)
	var res T
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node %s %s printed %q: %v", script, strings.Join(args, " "), out, err)
	}
	return res
}
