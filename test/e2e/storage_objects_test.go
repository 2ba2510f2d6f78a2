package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"testing"

	"github.com/llmproxy/llmproxy/test/harness"
)

// testRangeGet reads byte ranges: 206 with Content-Range and exactly the
// requested bytes; 416 for a range past the end or one that cannot be
// parsed (RFC 9110, section 14.2).
func testRangeGet(t *testing.T, s *storageHost) {
	key := s.prefix + "range/alphabet.txt"
	body := "0123456789abcdefghijklmnopqrstuvwxyz"
	s.put(t, key, "text/plain", body)
	n := len(body)

	tests := []struct {
		name, rng    string
		status       int
		contentRange string
		want         string
	}{
		{"whole", "", 200, "", body},
		{"middle", "bytes=2-9", 206, fmt.Sprintf("bytes 2-9/%d", n), "23456789"},
		{"first byte", "bytes=0-0", 206, fmt.Sprintf("bytes 0-0/%d", n), "0"},
		{"open end", "bytes=30-", 206, fmt.Sprintf("bytes 30-35/%d", n), "uvwxyz"},
		{"suffix", "bytes=-4", 206, fmt.Sprintf("bytes 32-35/%d", n), "wxyz"},
		{"end past size", "bytes=34-100", 206, fmt.Sprintf("bytes 34-35/%d", n), "yz"},
		{"start past size", "bytes=100-200", 416, "", ""},
		{"malformed", "bytes=x-y", 416, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.rng != "" {
				hdr = []string{"Range", tt.rng}
			}
			status, h, got := s.Do(t, "GET", s.path("get", ragBucket, key), "", hdr...)
			if tt.status == http.StatusRequestedRangeNotSatisfiable {
				wantError(t, status, got, tt.status, "")
				return
			}
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, got)
			}
			if string(got) != tt.want {
				t.Errorf("body %q, want %q", got, tt.want)
			}
			if cr := h.Get("Content-Range"); cr != tt.contentRange {
				t.Errorf("Content-Range %q, want %q", cr, tt.contentRange)
			}
			if cl := h.Get("Content-Length"); cl != strconv.Itoa(len(tt.want)) {
				t.Errorf("Content-Length %q, want %d", cl, len(tt.want))
			}
		})
	}
}

// testHead reads an object's metadata without its body.
func testHead(t *testing.T, s *storageHost) {
	key := s.prefix + "head/page.html"
	body := "<html><body><p>head me</p></body></html>"
	put := s.put(t, key, "text/html", body)

	status, h, got := s.Do(t, "HEAD", s.path("head", ragBucket, key), "")
	if status != http.StatusOK || len(got) != 0 {
		t.Fatalf("head: status %d, body %q", status, got)
	}
	want := map[string]string{
		"Content-Length": strconv.Itoa(len(body)),
		"Content-Type":   "text/html",
		"ETag":           `"` + put.ETag + `"`,
		"Accept-Ranges":  "bytes",
	}
	for k, v := range want {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
	if h.Get("Last-Modified") == "" {
		t.Error("no Last-Modified")
	}
	if status, _, _ := s.Do(t, "HEAD", s.path("head", ragBucket, s.prefix+"head/missing.html"), ""); status != http.StatusNotFound {
		t.Errorf("head of a missing object: status %d, want 404", status)
	}
}

// listing is the body of a list answer.
type listing struct {
	Bucket  string `json:"bucket"`
	Prefix  string `json:"prefix"`
	Objects []struct {
		Key  string `json:"key"`
		Size int64  `json:"size"`
		ETag string `json:"etag"`
	} `json:"objects"`
	CommonPrefixes []string `json:"common_prefixes"`
	NextPageToken  string   `json:"next_page_token"`
}

// list pages through rag-docs with query q (prefix, delimiter, max_keys)
// and returns the keys and common prefixes of every page, in order, and
// the number of pages.
func (s *storageHost) list(t *testing.T, q string) (keys, prefixes []string, pages int) {
	t.Helper()
	token := ""
	for pages = 1; pages <= 50; pages++ {
		p := s.path("list", ragBucket, "") + "?" + q
		if token != "" {
			p += "&page_token=" + token
		}
		status, _, body := s.Do(t, "GET", p, "")
		if status != http.StatusOK {
			t.Fatalf("list %s: status %d: %s", q, status, body)
		}
		var l listing
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatalf("list %s: %v: %s", q, err, body)
		}
		for _, o := range l.Objects {
			keys = append(keys, o.Key)
		}
		prefixes = append(prefixes, l.CommonPrefixes...)
		if l.NextPageToken == "" {
			return keys, prefixes, pages
		}
		token = l.NextPageToken
	}
	t.Fatalf("list %s: still paging after 50 pages", q)
	return nil, nil, 0
}

// testList lists with a prefix, a delimiter and small pages.
func testList(t *testing.T, s *storageHost) {
	dir := s.prefix + "list/"
	all := []string{dir + "a.txt", dir + "b.txt", dir + "sub/c.txt", dir + "sub/d.txt", dir + "z.txt"}
	for _, k := range all {
		s.put(t, k, "text/plain", "list entry "+k+"\n")
	}
	tests := []struct {
		name         string
		query        string
		keys         []string
		prefixes     []string
		minPages     int
		wantMaxPages int
	}{
		{"prefix", "prefix=" + dir, all, nil, 1, 1},
		{"delimiter", "prefix=" + dir + "&delimiter=/", []string{dir + "a.txt", dir + "b.txt", dir + "z.txt"}, []string{dir + "sub/"}, 1, 1},
		{"nested prefix", "prefix=" + dir + "sub/&delimiter=/", []string{dir + "sub/c.txt", dir + "sub/d.txt"}, nil, 1, 1},
		{"pages of one", "prefix=" + dir + "&max_keys=1", all, nil, 5, 6},
		{"pages of two with delimiter", "prefix=" + dir + "&delimiter=/&max_keys=2", []string{dir + "a.txt", dir + "b.txt", dir + "z.txt"}, []string{dir + "sub/"}, 2, 3},
		{"no match", "prefix=" + dir + "nothing/", nil, nil, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, prefixes, pages := s.list(t, tt.query)
			if !slices.Equal(keys, tt.keys) {
				t.Errorf("keys %q, want %q", keys, tt.keys)
			}
			if !slices.Equal(prefixes, tt.prefixes) {
				t.Errorf("common prefixes %q, want %q", prefixes, tt.prefixes)
			}
			if pages < tt.minPages || pages > tt.wantMaxPages {
				t.Errorf("%d pages, want %d to %d", pages, tt.minPages, tt.wantMaxPages)
			}
		})
	}
	t.Run("bad max_keys", func(t *testing.T) {
		status, _, body := s.Do(t, "GET", s.path("list", ragBucket, "")+"?max_keys=0", "")
		wantError(t, status, body, http.StatusBadRequest, "")
	})
}

// testDelete removes an object: it is gone for get, head and list, and
// deleting it again still succeeds.
func testDelete(t *testing.T, s *storageHost) {
	key := s.prefix + "delete/gone.txt"
	s.put(t, key, "text/plain", "about to be deleted\n")
	for i := range 2 {
		status, _, body := s.Do(t, "DELETE", s.path("delete", ragBucket, key), "")
		if status != http.StatusOK {
			t.Fatalf("delete %d: status %d: %s", i+1, status, body)
		}
		var res struct{ Status, Bucket, Key string }
		if err := json.Unmarshal(body, &res); err != nil || res.Status != "deleted" || res.Key != key {
			t.Errorf("delete %d answered %s", i+1, body)
		}
	}
	status, _, body := s.Do(t, "GET", s.path("get", ragBucket, key), "")
	wantError(t, status, body, http.StatusNotFound, "object_not_found")
	if status, _, _ := s.Do(t, "HEAD", s.path("head", ragBucket, key), ""); status != http.StatusNotFound {
		t.Errorf("head after delete: status %d, want 404", status)
	}
	if keys, _, _ := s.list(t, "prefix="+s.prefix+"delete/"); len(keys) != 0 {
		t.Errorf("list after delete: %q", keys)
	}
}

// largeSize is the size of the object streamed through the host.
const largeSize = 64 << 20

// testLargeObject streams a 64 MiB object through put and get and
// compares the bytes by SHA-256.
func testLargeObject(t *testing.T, s *storageHost) {
	key := s.prefix + "large/blob.bin"
	seed := rand.Uint64()
	want := sha256.New()
	if _, err := io.Copy(want, newPatternReader(seed, largeSize)); err != nil {
		t.Fatal(err)
	}

	req, err := http.NewRequestWithContext(t.Context(), "PUT", s.URL+s.path("put", ragBucket, key), newPatternReader(seed, largeSize))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = largeSize
	req.Header.Set("Authorization", "Bearer "+harness.Key)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("put: status %d: %s", resp.StatusCode, body)
	}
	t.Cleanup(func() { s.Do(t, "DELETE", s.path("delete", ragBucket, key), "") })
	var put putResult
	if err := json.Unmarshal(body, &put); err != nil || put.Size != largeSize {
		t.Fatalf("put answered %s, want size %d", body, largeSize)
	}

	req, err = http.NewRequestWithContext(t.Context(), "GET", s.URL+s.path("get", ragBucket, key), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+harness.Key)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != largeSize {
		t.Fatalf("get: status %d, Content-Length %d; want 200 and %d", resp.StatusCode, resp.ContentLength, largeSize)
	}
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	if err != nil {
		t.Fatalf("get: read body after %d bytes: %v", n, err)
	}
	if n != largeSize || hex.EncodeToString(got.Sum(nil)) != hex.EncodeToString(want.Sum(nil)) {
		t.Errorf("got %d bytes with sha256 %x, want %d bytes with %x", n, got.Sum(nil), largeSize, want.Sum(nil))
	}
}

// patternReader yields n pseudo-random bytes determined by a seed, so
// that a large body can be produced twice without holding it in memory.
type patternReader struct {
	rng  *rand.ChaCha8
	left int64
}

func newPatternReader(seed uint64, n int64) *patternReader {
	var key [32]byte
	for i := range 4 {
		for j := range 8 {
			key[i*8+j] = byte(seed >> (8 * j))
		}
		seed = seed*6364136223846793005 + 1442695040888963407
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
