package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// httpClient is the benchmark's client; the bound only guards against a
// hang of a large transfer.
var httpClient = &http.Client{Timeout: 5 * time.Minute}

// client drives one host's storage instance and chat API.
type client struct {
	url, typ string
	// prefix keeps this run's keys apart from any other's.
	prefix string

	mu   sync.Mutex
	keys []string
}

// do sends one request with the benchmark key and returns the status and
// body.
func (c *client) do(ctx context.Context, method, path string, body io.Reader, size int64, contentType string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, body)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.ContentLength = size
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return resp.StatusCode, out, nil
}

// objectPath is the host path of a storage operation on rag-docs/key.
func (c *client) objectPath(op, key string) string {
	return "/-" + c.typ + "/" + instance + "/" + op + "/" + bucket + "/" + key
}

// put uploads size bytes of body to key.
func (c *client) put(ctx context.Context, key, contentType string, body io.Reader, size int64) error {
	c.mu.Lock()
	c.keys = append(c.keys, key)
	c.mu.Unlock()
	status, out, err := c.do(ctx, "PUT", c.objectPath("put", key), body, size, contentType)
	if err != nil {
		return err
	}
	var res struct {
		Size int64 `json:"size"`
	}
	if status != http.StatusOK || json.Unmarshal(out, &res) != nil || res.Size != size {
		return fmt.Errorf("put %s: status %d, want 200 with size %d: %s", key, status, size, out)
	}
	return nil
}

// presign returns a presigned GET URL of key.
func (c *client) presign(ctx context.Context, key string) (string, error) {
	status, out, err := c.do(ctx, "GET", c.objectPath("presign", key)+"?ttl=600", nil, 0, "")
	if err != nil {
		return "", err
	}
	var res struct {
		URL string `json:"url"`
	}
	if status != http.StatusOK || json.Unmarshal(out, &res) != nil || res.URL == "" {
		return "", fmt.Errorf("presign %s: status %d: %s", key, status, out)
	}
	return res.URL, nil
}

// chatURL asks the echo model about the document at u and checks that
// the provider received it under name with size bytes.
func (c *client) chatURL(ctx context.Context, u, name string, size int) error {
	body, err := json.Marshal(map[string]any{
		"model": "echo",
		"messages": []map[string]any{{"role": "user", "content": []map[string]any{
			{"type": "text", "text": "summarise"},
			{"type": "document", "source": map[string]any{"type": "url", "url": u}},
		}}},
	})
	if err != nil {
		return fmt.Errorf("encode chat: %w", err)
	}
	status, out, err := c.do(ctx, "POST", "/v1/chat/completions", bytes.NewReader(body), int64(len(body)), "application/json")
	if err != nil {
		return err
	}
	want := fmt.Sprintf(`[document %q (text/markdown, %d bytes): `, name, size)
	wantJSON, _ := json.Marshal(want)
	if status != http.StatusOK || !bytes.Contains(out, wantJSON[1:len(wantJSON)-1]) {
		return fmt.Errorf("chat about %s: status %d, the answer does not report %s: %.500s", u, status, want, out)
	}
	return nil
}

// get reads key into w and returns the number of bytes read.
func (c *client) get(ctx context.Context, key string, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.url+c.objectPath("get", key), nil)
	if err != nil {
		return 0, fmt.Errorf("get %s: %w", key, err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("get %s: %w", key, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
		return 0, fmt.Errorf("get %s: status %d: %s", key, resp.StatusCode, b)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("get %s: after %d bytes: %w", key, n, err)
	}
	return n, nil
}

// cleanup deletes every object the client uploaded.
func (c *client) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range c.keys {
		c.do(ctx, "DELETE", c.objectPath("delete", k), nil, 0, "")
	}
	c.keys = nil
}

// makeDoc returns a Markdown document of about size bytes whose words
// depend on n, so that every document has its own content.
func makeDoc(n, size int) string {
	words := []string{"qubit", "gateway", "storage", "document", "retrieval", "context", "model", "vector",
		"latency", "stream", "cache", "object", "bucket", "presign", "token", "answer"}
	var b strings.Builder
	fmt.Fprintf(&b, "# Document %d\n\n", n)
	r := rand.New(rand.NewPCG(uint64(n), 42))
	for b.Len() < size-1 {
		w := words[r.IntN(len(words))]
		if b.Len()+len(w)+1 > size-1 {
			break
		}
		b.WriteString(w)
		b.WriteByte(' ')
	}
	for b.Len() < size-1 {
		b.WriteByte('x')
	}
	b.WriteByte('\n')
	return b.String()
}

// docServer serves Markdown documents on 127.0.0.1 and counts the
// requests for each path.
type docServer struct {
	srv  *http.Server
	url  string
	mu   sync.Mutex
	docs map[string]string
	hits map[string]int
}

func newDocServer() *docServer {
	d := &docServer{docs: map[string]string{}, hits: map[string]int{}}
	d.srv = &http.Server{Handler: http.HandlerFunc(d.serve), ReadHeaderTimeout: 10 * time.Second}
	return d
}

// start listens on a free 127.0.0.1 port.
func (d *docServer) start() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("document server: %w", err)
	}
	d.url = "http://" + l.Addr().String()
	go d.srv.Serve(l)
	return nil
}

func (d *docServer) serve(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.hits[r.URL.Path]++
	doc, ok := d.docs[r.URL.Path]
	d.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/markdown")
	io.WriteString(w, doc)
}

// add serves body at path and returns its URL.
func (d *docServer) add(path, body string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.docs[path] = body
	return d.url + path
}

// hitCount returns how many requests path received.
func (d *docServer) hitCount(path string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hits[path]
}

func (d *docServer) close() { d.srv.Close() }

// patternReader yields n pseudo-random bytes determined by a seed, so
// that a large body can be produced twice without holding it in memory.
type patternReader struct {
	rng  *rand.ChaCha8
	left int64
}

func newPatternReader(seed byte, n int64) *patternReader {
	var key [32]byte
	for i := range key {
		key[i] = seed + byte(i)
	}
	return &patternReader{rng: rand.NewChaCha8(key), left: n}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n, _ := p.rng.Read(b)
	p.left -= int64(n)
	return n, nil
}
