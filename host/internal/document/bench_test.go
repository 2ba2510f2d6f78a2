package document

import (
	"context"
	"strings"
	"testing"
)

// noDocBody is a typical chat body of about 1.5 KB with no document part.
var noDocBody = []byte(`{"model":"gpt-4o","stream":true,"temperature":0.2,"messages":[` +
	`{"role":"system","content":"You are a helpful assistant. Answer briefly and cite sources."},` +
	`{"role":"user","content":[{"type":"text","text":"` + strings.Repeat("Explain quantum error correction. ", 30) + `"},` +
	`{"type":"image_url","image_url":{"url":"https://example.com/diagram.png"}}]},` +
	`{"role":"assistant","content":"Quantum error correction protects logical qubits."},` +
	`{"role":"user","content":"And surface codes?"}],` +
	`"tools":[{"type":"function","function":{"name":"search","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}}]}`)

// smallBody is a minimal chat body.
var smallBody = []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"Hello, how are you today?"}]}`)

func BenchmarkResolveNoDocuments(b *testing.B) {
	r, err := New(Config{}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		body []byte
	}{{"small", smallBody}, {"1.5KB", noDocBody}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			for b.Loop() {
				out, _, err := r.Resolve(ctx, bc.body, ResolveOptions{})
				if err != nil || len(out) != len(bc.body) {
					b.Fatal("body changed")
				}
			}
		})
	}
}

func benchmarkResolveURL(b *testing.B, backend string) {
	srv := docServer(b)
	r, err := New(Config{AllowCIDRs: []string{"127.0.0.1/32"}, Cache: &CacheConfig{Backend: backend}}, Options{HostResolver: mapResolver{}})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	body := chatBody(`{"type":"document","source":{"type":"url","url":"` + srv.URL + `/guide.html"}}`)
	ctx := context.Background()
	if _, _, err := r.Resolve(ctx, body, ResolveOptions{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, docs, err := r.Resolve(ctx, body, ResolveOptions{}); err != nil || len(docs) != 1 {
			b.Fatal(err)
		}
	}
}

// BenchmarkResolveCacheHit resolves a URL document already in the memory
// cache.
func BenchmarkResolveCacheHit(b *testing.B) { benchmarkResolveURL(b, BackendMemory) }

// BenchmarkResolveCacheMiss resolves the same document with no cache: a
// fetch from a loopback server and text extraction every time.
func BenchmarkResolveCacheMiss(b *testing.B) { benchmarkResolveURL(b, BackendNone) }
