package credentials

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/config"
)

// kubeSecret lays out dir the way the kubelet mounts a secret volume: a
// timestamped directory holding the data, a ..data symlink to it, and one
// symlink per key through ..data.
type kubeSecret struct {
	t   *testing.T
	dir string
	gen int
}

func newKubeSecret(t *testing.T, key, value string) *kubeSecret {
	k := &kubeSecret{t: t, dir: t.TempDir()}
	k.write(key, value)
	if err := os.Symlink(filepath.Join("..data", key), filepath.Join(k.dir, key)); err != nil {
		t.Fatal(err)
	}
	return k
}

// write makes a new generation directory and flips ..data to it with a
// rename, then removes the old generation, as the kubelet's atomic writer
// does.
func (k *kubeSecret) write(key, value string) {
	k.gen++
	gen := filepath.Join(k.dir, "..gen"+string(rune('0'+k.gen)))
	if err := os.Mkdir(gen, 0o755); err != nil {
		k.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(gen, key), []byte(value+"\n"), 0o600); err != nil {
		k.t.Fatal(err)
	}
	tmp := filepath.Join(k.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(gen), tmp); err != nil {
		k.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(k.dir, "..data")); err != nil {
		k.t.Fatal(err)
	}
	if k.gen > 1 {
		os.RemoveAll(filepath.Join(k.dir, "..gen"+string(rune('0'+k.gen-1))))
	}
}

func TestWatcherSeesSymlinkFlip(t *testing.T) {
	k := newKubeSecret(t, "api_key", "sk-first")
	creds := []config.Credential{{Name: "api_key", Sources: []config.Source{{Kind: "file", Path: filepath.Join(k.dir, "api_key")}}}}
	changed := make(chan string, 16)
	w, err := Watch(creds, time.Hour, func() {
		v, _ := Resolve(context.Background(), creds)
		changed <- v["api_key"]
	})
	if err != nil || w == nil {
		t.Fatalf("Watch: %v, %v", w, err)
	}
	defer w.Close()

	for i, want := range []string{"sk-second", "sk-third"} {
		k.write("api_key", want)
		deadline := time.After(2 * time.Second)
		for got := ""; got != want; {
			select {
			case got = <-changed:
			case <-deadline:
				t.Fatalf("flip %d: no notification with %q within 2s (last %q)", i+1, want, got)
			}
		}
	}
}

func TestWatcherPlainFileRewrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	os.WriteFile(path, []byte("one"), 0o600)
	creds := []config.Credential{{Name: "k", Sources: []config.Source{{Kind: "file", Path: path}}}}
	fired := make(chan struct{}, 16)
	w, err := Watch(creds, time.Hour, func() { fired <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	os.WriteFile(path, []byte("two"), 0o600)
	select {
	case <-fired:
	case <-time.After(2 * time.Second):
		t.Fatal("no notification after rewriting the file")
	}
}

func TestWatchWithoutFiles(t *testing.T) {
	w, err := Watch([]config.Credential{{Name: "k", Sources: []config.Source{{Kind: "env", Name: "X"}}}}, 0, func() {})
	if w != nil || err != nil {
		t.Fatalf("Watch of env-only credentials = %v, %v; want nil, nil", w, err)
	}
	w.Close()
}

func TestResolveStatusPerSource(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("not json"), 0o600)
	t.Setenv("LLMPROXY_TEST_STATUS", "s3cr3t-status")
	tests := []struct {
		name    string
		sources []config.Source
		want    []SourceState
		wantErr bool
	}{
		{"unavailable then used then not tried",
			[]config.Source{{Kind: "env", Name: "LLMPROXY_TEST_UNSET"}, {Kind: "env", Name: "LLMPROXY_TEST_STATUS"}, {Kind: "value", Value: "v"}},
			[]SourceState{SourceUnavailable, SourceUsed, SourceNotTried}, false},
		{"failed stops the chain",
			[]config.Source{{Kind: "file", Path: bad, Field: "k"}, {Kind: "env", Name: "LLMPROXY_TEST_STATUS"}},
			[]SourceState{SourceFailed}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, st, err := ResolveStatus(context.Background(), []config.Credential{{Name: "k", Sources: tt.sources}})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			var got []SourceState
			for _, s := range st[0].Sources {
				got = append(got, s.State)
				if s.Reason != "" && strings.Contains(s.Reason, "s3cr3t-status") {
					t.Errorf("reason holds the value: %q", s.Reason)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("states %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("states %v, want %v", got, tt.want)
				}
			}
		})
	}
}
