// Package proto holds the .proto sources of the plugin protocol and, in
// its subdirectories, the Go code generated from them.
package proto

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedCodeIsFresh regenerates the Go code into a temporary
// directory and fails when it differs from the committed code: run
// `make proto` after editing a .proto file.
func TestGeneratedCodeIsFresh(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Fatal("protoc is not installed: run scripts/install-deps.sh")
	}
	out := t.TempDir()
	cmd := exec.Command("../../scripts/protogen.sh", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protogen.sh: %v\n%s", err, b)
	}
	n := 0
	err := filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		fresh, _ := os.ReadFile(p)
		committed, err := os.ReadFile(rel)
		if err != nil {
			t.Errorf("%s is generated but not committed: run `make proto`", rel)
			return nil
		}
		if !bytes.Equal(fresh, committed) {
			t.Errorf("%s is stale: run `make proto` and commit the result", rel)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("protogen.sh generated nothing")
	}
}
