package document

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestMemoryCacheBudgetAndTTL(t *testing.T) {
	ctx := context.Background()
	c, err := NewMemoryCache(100)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	entry := func(n int) *Entry { return &Entry{Data: bytes.Repeat([]byte("x"), n)} }

	steps := []struct {
		name    string
		do      func()
		present []string
		absent  []string
		bytes   int64
	}{
		{"first entry", func() { c.Set(ctx, "a", entry(39), time.Minute) }, []string{"a"}, nil, 40},
		{"second entry", func() { c.Set(ctx, "b", entry(39), time.Minute) }, []string{"a", "b"}, nil, 80},
		// a was just read, so b is the least recently used.
		{"over budget evicts LRU", func() { c.Get(ctx, "a"); c.Set(ctx, "c", entry(39), time.Minute) }, []string{"a", "c"}, []string{"b"}, 80},
		{"replace keeps accounting", func() { c.Set(ctx, "c", entry(9), time.Minute) }, []string{"a", "c"}, nil, 50},
		{"too large is not cached", func() { c.Set(ctx, "big", entry(200), time.Minute) }, []string{"a", "c"}, []string{"big"}, 50},
		{"zero ttl is not cached", func() { c.Set(ctx, "z", entry(1), 0) }, nil, []string{"z"}, 50},
		{"expired entries are misses", func() { now = now.Add(2 * time.Minute) }, nil, []string{"a", "c"}, 0},
	}
	for _, st := range steps {
		st.do()
		for _, k := range st.present {
			if _, ok, _ := c.Get(ctx, k); !ok {
				t.Errorf("%s: %q missing", st.name, k)
			}
		}
		for _, k := range st.absent {
			if _, ok, _ := c.Get(ctx, k); ok {
				t.Errorf("%s: %q present", st.name, k)
			}
		}
		if _, b := c.Len(); b != st.bytes {
			t.Errorf("%s: bytes = %d, want %d", st.name, b, st.bytes)
		}
	}
	if _, err := NewMemoryCache(0); err == nil {
		t.Error("NewMemoryCache(0) succeeded, want an error")
	}
}

func TestEntryEncoding(t *testing.T) {
	e := &Entry{Name: "q.md", MIMEType: MIMEMarkdown, Data: []byte("# Q\x00\xff"), Text: "# Q"}
	b := encodeEntry(e)
	got, err := decodeEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != e.Name || got.MIMEType != e.MIMEType || !bytes.Equal(got.Data, e.Data) || got.Text != e.Text {
		t.Errorf("round trip = %+v, want %+v", got, e)
	}
	bad := map[string][]byte{
		"empty":          nil,
		"wrong magic":    []byte("XXXX"),
		"truncated":      b[:len(b)-1],
		"trailing bytes": append(append([]byte(nil), b...), 0),
		"huge length":    append([]byte(entryMagic), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
	}
	for name, in := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeEntry(in); err == nil {
				t.Error("decodeEntry succeeded, want an error")
			}
		})
	}
}

func TestCacheKeys(t *testing.T) {
	keys := []string{
		urlKey("https://a.example/x"),
		urlKey("https://a.example/y"),
		objectKey("prod", "b", "k", "e1"),
		objectKey("prod", "b", "k", "e2"),
		objectKey("prod", "bk", "", "e1"),
		contentKey([]byte("x")),
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			t.Errorf("duplicate key %s", k)
		}
		seen[k] = true
		if strings.Contains(k, "example") || strings.Contains(k, "prod") {
			t.Errorf("key %s carries clear text", k)
		}
	}
}
