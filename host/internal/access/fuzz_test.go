package access

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseObject runs the storage path parser on arbitrary raw paths.
// Whatever it accepts must be an object no backend can resolve outside
// its bucket, and must be accepted again, unchanged, when it comes back
// unescaped (as from a signed URL or a document reference).
func FuzzParseObject(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw string, needKey bool) {
		o, err := ParseObject(raw, needKey)
		if err != nil {
			return
		}
		if o.Bucket == "" || o.Bucket == "." || o.Bucket == ".." || strings.ContainsAny(o.Bucket, "/\\") {
			t.Fatalf("bucket %q accepted", o.Bucket)
		}
		if o.Key == "" {
			if needKey {
				t.Fatalf("no key accepted with needKey")
			}
			return
		}
		if !utf8.ValidString(o.Key) || strings.HasPrefix(o.Key, "/") || strings.Contains(o.Key, "//") || strings.Contains(o.Key, "\\") {
			t.Fatalf("key %q accepted", o.Key)
		}
		for _, seg := range strings.Split(o.Key, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("key %q with a dot segment accepted", o.Key)
			}
		}
		for _, r := range o.Key {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
				t.Fatalf("key %q with a control character accepted", o.Key)
			}
		}
		again, err := NewObject(o.Bucket, o.Key)
		if err != nil || again != o {
			t.Fatalf("NewObject(%q, %q) = %+v, %v; the parsers disagree", o.Bucket, o.Key, again, err)
		}
	})
}
