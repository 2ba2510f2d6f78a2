package main

import (
	"slices"
	"testing"

	gcs "cloud.google.com/go/storage"
)

func TestCursorToken(t *testing.T) {
	for _, c := range []cursor{{name: "a/b.txt"}, {name: "dir/", prefix: true}, {name: "ключ/日本語 #?%"}} {
		got, err := decodeCursor(encodeCursor(c))
		if err != nil || got != c {
			t.Errorf("round trip of %+v = %+v, %v", c, got, err)
		}
	}
	for _, bad := range []string{"!!", "eA", "eHl6"} {
		if _, err := decodeCursor(bad); err == nil {
			t.Errorf("decodeCursor(%q) accepted a token it never made", bad)
		}
	}
}

func TestCursorStart(t *testing.T) {
	tests := []struct {
		c         cursor
		delimiter string
		want      string
	}{
		{cursor{}, "/", ""},
		{cursor{name: "p/f01"}, "/", "p/f01"},
		{cursor{name: "p/d0/", prefix: true}, "/", "p/d00"},
		{cursor{name: "p/d0::", prefix: true}, "::", "p/d0:;"},
	}
	for _, tt := range tests {
		if got := tt.c.start(tt.delimiter); got != tt.want {
			t.Errorf("%+v.start(%q) = %q, want %q", tt.c, tt.delimiter, got, tt.want)
		}
	}
}

// objs builds a backend batch: names ending in "/" are prefixes.
func objs(names ...string) []*gcs.ObjectAttrs {
	var out []*gcs.ObjectAttrs
	for _, n := range names {
		if n[len(n)-1] == '/' {
			out = append(out, &gcs.ObjectAttrs{Prefix: n})
		} else {
			out = append(out, &gcs.ObjectAttrs{Name: n})
		}
	}
	return out
}

func TestMergerPage(t *testing.T) {
	type batch struct {
		names []string
		done  bool
	}
	tests := []struct {
		name      string
		after     cursor
		batches   []batch
		limit     int
		wantNames []string
		wantNext  *cursor
	}{
		{
			name:      "prefixes every page, beyond the last object, are held back",
			batches:   []batch{{[]string{"d0/", "d2-z", "d1/", "f00", "f01", "d2/", "z/"}, false}},
			limit:     3,
			wantNames: []string{"d0/", "d1/", "d2-z"},
			wantNext:  &cursor{name: "d2-z"},
		},
		{
			name:      "last page returns everything",
			batches:   []batch{{[]string{"f01", "d2/", "z/"}, true}},
			limit:     7,
			wantNames: []string{"d2/", "f01", "z/"},
		},
		{
			name:      "the cursor entry and its prefix are not repeated",
			after:     cursor{name: "d0/", prefix: true},
			batches:   []batch{{[]string{"d0/", "d0/x", "d1/", "e"}, true}},
			limit:     5,
			wantNames: []string{"d1/", "e"},
		},
		{
			name:      "object cursor is exclusive",
			after:     cursor{name: "a"},
			batches:   []batch{{[]string{"a", "b"}, true}},
			limit:     5,
			wantNames: []string{"b"},
		},
		{
			name:      "a page of prefixes only bounds at its last prefix",
			batches:   []batch{{[]string{"a/", "b/"}, false}},
			limit:     1,
			wantNames: []string{"a/"},
			wantNext:  &cursor{name: "a/", prefix: true},
		},
		{
			name:      "exactly full and done has no token",
			batches:   []batch{{[]string{"a", "b"}, true}},
			limit:     2,
			wantNames: []string{"a", "b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := merger{after: tt.after}
			for _, b := range tt.batches {
				m.add(objs(b.names...), b.done)
			}
			res := m.page("bkt", tt.limit)
			var got []string
			for _, o := range res.Objects {
				got = append(got, o.Key)
			}
			got = append(got, res.CommonPrefixes...)
			slices.Sort(got)
			if !slices.Equal(got, tt.wantNames) {
				t.Errorf("page = %v, want %v", got, tt.wantNames)
			}
			switch {
			case tt.wantNext == nil && res.NextPageToken != "":
				t.Errorf("NextPageToken = %q, want none", res.NextPageToken)
			case tt.wantNext != nil:
				c, err := decodeCursor(res.NextPageToken)
				if err != nil || c != *tt.wantNext {
					t.Errorf("next cursor = %+v, %v; want %+v", c, err, *tt.wantNext)
				}
			}
		})
	}
}
