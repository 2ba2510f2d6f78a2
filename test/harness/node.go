package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// NodeTimeout bounds one run of a Node script.
const NodeTimeout = time.Minute

// NodeDir returns the absolute path of test/node, the npm package that
// holds the Node scripts of the end-to-end tests. It is resolved from the
// working directory of the test, which is a package directory directly
// under test/ (such as test/e2e).
func NodeDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "node"))
	if err != nil {
		t.Fatalf("node dir: %v", err)
	}
	return dir
}

// Node runs `node script args...` in test/node with the environment of the
// test plus env ("NAME=value" entries, which win over inherited ones) and
// returns what the script printed on standard output. Before running it
// checks that every dependency of test/node/package.json is installed,
// failing with the command that installs them if one is not. A script
// that exits non-zero or runs longer than NodeTimeout fails the test with
// its standard error.
func Node(t testing.TB, script string, args []string, env ...string) []byte {
	t.Helper()
	dir := NodeDir(t)
	checkNodeModules(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), NodeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s %s: %v\nstderr: %s", script, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// checkNodeModules fails the test unless every dependency named in
// dir/package.json has been installed into dir/node_modules.
func checkNodeModules(t testing.TB, dir string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		t.Fatalf("node package: %v", err)
	}
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(raw, &pkg); err != nil {
		t.Fatalf("%s: %v", filepath.Join(dir, "package.json"), err)
	}
	names := make([]string, 0, len(pkg.Dependencies))
	for name := range pkg.Dependencies {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", filepath.FromSlash(name), "package.json")); err != nil {
			t.Fatalf("the %s npm package is not installed in %s: run `npm ci --prefix test/node` (%v)", name, dir, err)
		}
	}
}
