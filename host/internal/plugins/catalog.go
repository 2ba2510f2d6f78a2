// Package plugins finds, starts and supervises plugin processes: one
// process per configured instance, each watched by its own supervisor.
//
// Lifecycle of an instance: start the binary (gRPC only, AutoMTLS, an
// explicit environment, an optional SHA-256 pin) → Describe → decode the
// instance's config block against the returned schema → resolve
// credentials → Configure → ready. A supervisor then polls the process and
// its health; when the process exits or stops answering, it is killed and
// started again with backoff, and requests see the new process as soon as
// it is ready. Problems that a restart cannot fix (no binary, checksum
// mismatch, bad config, missing credentials) leave the instance "failed"
// with the reason, retried slowly so that a binary dropped into the
// plugins dir or a secret mounted later is picked up without a restart of
// the host.
package plugins

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// BinaryPrefix starts every plugin binary's name.
const BinaryPrefix = "llmproxy-"

// BinaryName is the file name of the plugin for kind ("provider" or
// "storage") and type ("openai").
func BinaryName(kind, typ string) string { return BinaryPrefix + kind + "-" + typ }

// Find returns the path of the plugin binary for kind and type in dir, or
// an error that says where it was looked for.
func Find(dir, kind, typ string) (string, error) {
	p := filepath.Join(dir, BinaryName(kind, typ))
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("plugin binary %s not found in %s (build it with `make build` or drop it there)", BinaryName(kind, typ), dir)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("plugin %s is not an executable file", p)
	}
	return p, nil
}

// Installed lists the plugin binaries in dir by name.
func Installed(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if len(e.Name()) > len(BinaryPrefix) && e.Name()[:len(BinaryPrefix)] == BinaryPrefix && !e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// FileSHA256 returns the hex SHA-256 of a file.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
