package cache

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/config"
)

func TestCanonical(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"sorted keys", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
			`{"messages":[{"content":"hi","role":"user"}],"model":"m"}`},
		{"whitespace", "{ \"model\" : \"m\" ,\n \"temperature\" : 0.5 }", `{"model":"m","temperature":0.5}`},
		{"ignored fields", `{"model":"m","stream":true,"user":"u-1","metadata":{"a":"b"},"safety_identifier":"x","prompt_cache_key":"k"}`,
			`{"model":"m"}`},
		{"nested user kept", `{"model":"m","tools":[{"user":"kept"}]}`, `{"model":"m","tools":[{"user":"kept"}]}`},
		{"numbers keep their text", `{"model":"m","temperature":1.0,"seed":12345678901234567890}`,
			`{"model":"m","seed":12345678901234567890,"temperature":1.0}`},
		{"escapes normalised", `{"model":"\u006d"}`, `{"model":"m"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonical([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("Canonical(%s) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
	for _, bad := range []string{``, `[1,2]`, `{"model":`, `"s"`} {
		if _, err := Canonical([]byte(bad)); err == nil {
			t.Errorf("Canonical(%q) = nil error, want one", bad)
		}
	}
}

func TestKey(t *testing.T) {
	base := Request{Body: []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`), Route: "m",
		Targets: []Target{{"a", "x"}, {"b", "y"}}}
	k0, err := Key(&base)
	if err != nil {
		t.Fatal(err)
	}
	same := []func(r *Request){
		func(r *Request) {
			r.Body = []byte(`{"messages":[{"content":"hi","role":"user"}], "model":"m", "user":"someone"}`)
		},
		func(r *Request) { r.Targets = []Target{{"b", "y"}, {"a", "x"}} },
	}
	for i, f := range same {
		r := base
		f(&r)
		if k, _ := Key(&r); k != k0 {
			t.Errorf("same #%d: key changed", i)
		}
	}
	differ := map[string]func(r *Request){
		"stream":       func(r *Request) { r.Stream = true },
		"route":        func(r *Request) { r.Route = "other" },
		"instance":     func(r *Request) { r.Targets = []Target{{"a", "x"}, {"c", "y"}} },
		"target model": func(r *Request) { r.Targets = []Target{{"a", "x"}, {"b", "z"}} },
		"document":     func(r *Request) { r.Documents = [][]byte{{1}} },
		"content": func(r *Request) {
			r.Body = []byte(`{"model":"m","messages":[{"role":"user","content":"hi!"}]}`)
		},
		"temperature": func(r *Request) {
			r.Body = []byte(`{"model":"m","temperature":0,"messages":[{"role":"user","content":"hi"}]}`)
		},
	}
	for name, f := range differ {
		r := base
		f(&r)
		if k, _ := Key(&r); k == k0 {
			t.Errorf("%s: key did not change", name)
		}
	}
}

func TestParseCacheControl(t *testing.T) {
	for h, want := range map[string]Directive{
		"":                      Use,
		"max-age=0":             Use,
		"no-cache":              Refresh,
		"No-Cache, max-age=10":  Refresh,
		"no-store":              Skip,
		"no-cache, no-store":    Skip,
		`private, no-store="x"`: Skip,
	} {
		if got := ParseCacheControl(h); got != want {
			t.Errorf("ParseCacheControl(%q) = %v, want %v", h, got, want)
		}
	}
}

func TestHasTools(t *testing.T) {
	for body, want := range map[string]bool{
		`{"model":"m"}`:                               false,
		`{"model":"m","tools":[]}`:                    false,
		`{"model":"m","tools":[{"type":"function"}]}`: true,
		`{"model":"m","functions":[{"name":"f"}]}`:    true,
		`{"model":"m","tools":"nonsense"}`:            true,
	} {
		if got := HasTools([]byte(body)); got != want {
			t.Errorf("HasTools(%s) = %v, want %v", body, got, want)
		}
	}
}

func entry(n int) *Entry { return &Entry{Body: []byte(strings.Repeat("x", n))} }

func TestMemoryBounds(t *testing.T) {
	ctx := context.Background()
	t.Run("entries", func(t *testing.T) {
		m, err := NewMemory(3, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"a", "b", "c"} {
			m.Put(ctx, k, entry(10), time.Minute)
		}
		m.Get(ctx, "a") // a is now the most recently used
		m.Put(ctx, "d", entry(10), time.Minute)
		if e, _ := m.Get(ctx, "b"); e != nil {
			t.Error("b, the least recently used, was not evicted")
		}
		for _, k := range []string{"a", "c", "d"} {
			if e, _ := m.Get(ctx, k); e == nil {
				t.Errorf("%s was evicted", k)
			}
		}
		if n, size := m.Len(); n != 3 || size != 30 {
			t.Errorf("Len() = %d entries, %d bytes; want 3, 30", n, size)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		m, _ := NewMemory(100, 100)
		for _, k := range []string{"a", "b", "c", "d"} {
			m.Put(ctx, k, entry(30), time.Minute)
		}
		if n, size := m.Len(); n != 3 || size != 90 {
			t.Errorf("Len() = %d entries, %d bytes; want 3, 90", n, size)
		}
		if e, _ := m.Get(ctx, "a"); e != nil {
			t.Error("a was not evicted")
		}
		m.Put(ctx, "huge", entry(101), time.Minute)
		if e, _ := m.Get(ctx, "huge"); e != nil {
			t.Error("an entry larger than the cache was kept")
		}
		m.Put(ctx, "b", entry(5), time.Minute) // replacing counts the new size only
		if _, size := m.Len(); size != 65 {
			t.Errorf("bytes after replace = %d, want 65", size)
		}
	})
	t.Run("expiry", func(t *testing.T) {
		m, _ := NewMemory(10, 1000)
		now := time.Unix(1000, 0)
		m.now = func() time.Time { return now }
		m.Put(ctx, "a", entry(1), time.Minute)
		now = now.Add(59 * time.Second)
		if e, _ := m.Get(ctx, "a"); e == nil {
			t.Fatal("entry expired early")
		}
		now = now.Add(time.Second)
		if e, _ := m.Get(ctx, "a"); e != nil {
			t.Fatal("expired entry served")
		}
		if n, size := m.Len(); n != 0 || size != 0 {
			t.Errorf("expired entry still held: %d, %d", n, size)
		}
	})
}

func TestCacheMaxEntryBytes(t *testing.T) {
	x, err := New(&config.Cache{MaxEntryBytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	x.Put(ctx, "small", entry(10), 0)
	x.Put(ctx, "big", &Entry{Chunks: [][]byte{[]byte("123456"), []byte("78901")}}, 0)
	if e, _ := x.Get(ctx, "small"); e == nil {
		t.Error("entry at the limit not kept")
	}
	if e, _ := x.Get(ctx, "big"); e != nil {
		t.Error("entry over the limit kept")
	}
}

func TestPolicy(t *testing.T) {
	cfg := &config.File{
		Cache: &config.Cache{TTL: "1m"},
		Routes: []config.Route{
			{Model: "cached", Cache: &config.RouteCache{TTL: "10m", StreamsWithTools: true}},
			{Model: "default-ttl", Cache: &config.RouteCache{}},
			{Model: "plain"},
		},
	}
	p, err := NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		route string
		key   bool
		ok    bool
		want  Rule
	}{
		{"cached", false, true, Rule{TTL: 10 * time.Minute, StreamsWithTools: true}},
		{"default-ttl", false, true, Rule{TTL: time.Minute}},
		{"plain", false, false, Rule{}},
		{"plain", true, true, Rule{TTL: time.Minute}},
	}
	for _, tt := range tests {
		got, ok := p.For(tt.route, tt.key)
		if ok != tt.ok || got != tt.want {
			t.Errorf("For(%q, %v) = %+v, %v; want %+v, %v", tt.route, tt.key, got, ok, tt.want, tt.ok)
		}
	}
	var none *Policy
	if _, ok := none.For("x", true); ok {
		t.Error("a nil policy caches")
	}
}
