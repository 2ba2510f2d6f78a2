package document

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Entry is a cached document: its bytes and its extracted text.
type Entry struct {
	Name     string
	MIMEType string
	Data     []byte
	Text     string
}

// size is the number of bytes the entry holds.
func (e *Entry) size() int64 {
	return int64(len(e.Name) + len(e.MIMEType) + len(e.Data) + len(e.Text))
}

// Cache stores documents by key. Entries returned by Get are shared and
// must not be modified. Get reports a miss as (nil, false, nil).
type Cache interface {
	Get(ctx context.Context, key string) (*Entry, bool, error)
	Set(ctx context.Context, key string, e *Entry, ttl time.Duration) error
	Close() error
}

// Stats are the cache counters of a Resolver.
type Stats struct {
	Hits   uint64
	Misses uint64
	// Errors counts cache backend failures; they are served as misses.
	Errors uint64
}

// counting wraps a Cache with hit, miss and error counters and turns
// backend errors into misses: a broken cache costs a fetch, not a request.
type counting struct {
	Cache
	hits, misses, errs atomic.Uint64
}

func (c *counting) get(ctx context.Context, key string) (*Entry, bool) {
	e, ok, err := c.Cache.Get(ctx, key)
	switch {
	case err != nil:
		c.errs.Add(1)
		c.misses.Add(1)
		return nil, false
	case ok:
		c.hits.Add(1)
		return e, true
	}
	c.misses.Add(1)
	return nil, false
}

func (c *counting) set(ctx context.Context, key string, e *Entry, ttl time.Duration) {
	if err := c.Cache.Set(ctx, key, e, ttl); err != nil {
		c.errs.Add(1)
	}
}

func (c *counting) stats() Stats {
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Errors: c.errs.Load()}
}

// Cache key constructors. Keys are hashes, so neither a URL's signature
// nor an object key is stored in clear in a shared cache.
func urlKey(u string) string { return "url:" + digest(u) }

func objectKey(storage, bucket, key, etag string) string {
	return "obj:" + digest(storage, bucket, key, etag)
}

func contentKey(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha:" + hex.EncodeToString(sum[:])
}

func digest(parts ...string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, p := range parts {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// MemoryCache is an in-process LRU cache bounded by total bytes, with a
// TTL per entry. It is safe for concurrent use.
type MemoryCache struct {
	mu       sync.Mutex
	lru      *simplelru.LRU[string, memItem]
	bytes    int64
	maxBytes int64
	now      func() time.Time
}

type memItem struct {
	entry   *Entry
	size    int64
	expires time.Time
}

var _ Cache = (*MemoryCache)(nil)

// NewMemoryCache returns a MemoryCache holding at most maxBytes of
// entries; an entry larger than maxBytes is not cached.
func NewMemoryCache(maxBytes int64) (*MemoryCache, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("memory cache: max bytes must be positive, got %d", maxBytes)
	}
	c := &MemoryCache{maxBytes: maxBytes, now: time.Now}
	l, err := simplelru.NewLRU[string, memItem](1<<30, func(_ string, it memItem) { c.bytes -= it.size })
	if err != nil {
		return nil, fmt.Errorf("memory cache: %w", err)
	}
	c.lru = l
	return c, nil
}

// Get implements Cache.
func (c *MemoryCache) Get(_ context.Context, key string) (*Entry, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.lru.Get(key)
	if !ok {
		return nil, false, nil
	}
	if !c.now().Before(it.expires) {
		c.lru.Remove(key)
		return nil, false, nil
	}
	return it.entry, true, nil
}

// Set implements Cache.
func (c *MemoryCache) Set(_ context.Context, key string, e *Entry, ttl time.Duration) error {
	size := e.size() + int64(len(key))
	if size > c.maxBytes || ttl <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Remove(key)
	c.lru.Add(key, memItem{entry: e, size: size, expires: c.now().Add(ttl)})
	c.bytes += size
	for c.bytes > c.maxBytes {
		if _, _, ok := c.lru.RemoveOldest(); !ok {
			break
		}
	}
	return nil
}

// Len returns the number of entries and the bytes they hold.
func (c *MemoryCache) Len() (entries int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.bytes
}

// Close implements Cache.
func (c *MemoryCache) Close() error { return nil }

// noCache is the "none" backend.
type noCache struct{}

var _ Cache = noCache{}

// Get implements Cache; it always misses.
func (noCache) Get(context.Context, string) (*Entry, bool, error) { return nil, false, nil }

// Set implements Cache; it stores nothing.
func (noCache) Set(context.Context, string, *Entry, time.Duration) error { return nil }

// Close implements Cache.
func (noCache) Close() error { return nil }

// Encoding of an Entry for byte-oriented backends: a magic, then four
// length-prefixed fields.
const entryMagic = "LPD1"

var errBadEntry = errors.New("malformed cache entry")

func encodeEntry(e *Entry) []byte {
	b := make([]byte, 0, len(entryMagic)+int(e.size())+4*binary.MaxVarintLen64)
	b = append(b, entryMagic...)
	for _, f := range [][]byte{[]byte(e.Name), []byte(e.MIMEType), e.Data, []byte(e.Text)} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

func decodeEntry(b []byte) (*Entry, error) {
	rest, ok := bytesCutPrefix(b, entryMagic)
	if !ok {
		return nil, errBadEntry
	}
	var fields [4][]byte
	for i := range fields {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return nil, errBadEntry
		}
		fields[i] = rest[k : k+int(n)]
		rest = rest[k+int(n):]
	}
	if len(rest) != 0 {
		return nil, errBadEntry
	}
	return &Entry{Name: string(fields[0]), MIMEType: string(fields[1]), Data: fields[2], Text: string(fields[3])}, nil
}

func bytesCutPrefix(b []byte, prefix string) ([]byte, bool) {
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return nil, false
	}
	return b[len(prefix):], true
}
