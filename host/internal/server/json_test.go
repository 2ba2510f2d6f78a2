package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/valyala/fastjson"
)

// TestFoldEqual: foldEqual agrees with comparing foldKey's results.
func TestFoldEqual(t *testing.T) {
	words := []string{"", "model", "MODEL", "Model", "mode", "models", "stream", "ſtream", "Stream",
		"key", "\u212aey", "KEY", "kéy", "KÉY", "\xff", "\xfe", "a\xffb", "straße", "STRASSE"}
	for _, a := range words {
		for _, b := range words {
			want := foldKey([]byte(a)) == foldKey([]byte(b))
			if got := foldEqual([]byte(a), []byte(b)); got != want {
				t.Errorf("foldEqual(%q, %q) = %v, want %v", a, b, got, want)
			}
		}
	}
}

// TestDuplicateKeyWide: objects wider than pairwiseKeys are checked
// through the map of folded keys.
func TestDuplicateKeyWide(t *testing.T) {
	var keys []string
	for i := range pairwiseKeys + 8 {
		keys = append(keys, fmt.Sprintf(`"k%d":%d`, i, i))
	}
	var pool fastjson.ParserPool
	wide := "{" + strings.Join(keys, ",") + "}"
	if got, dup := duplicateKey(&pool, []byte(`{"a":`+wide+`}`)); dup {
		t.Errorf("duplicateKey(wide) = %q, want none", got)
	}
	repeated := "{" + strings.Join(keys, ",") + `,"K3":1}`
	if got, _ := duplicateKey(&pool, []byte(`{"a":[`+repeated+`]}`)); got != "a[0].K3" {
		t.Errorf("duplicateKey(wide with K3 twice) = %q, want a[0].K3", got)
	}
}

// TestCheckKeysAllocs: checking the keys of an ordinary request body
// does not allocate beyond the parse.
func TestCheckKeysAllocs(t *testing.T) {
	body := []byte(`{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},` +
		`{"role":"user","content":[{"type":"text","text":"hi"}]}],"temperature":0.2,"max_tokens":64,"stream":false}`)
	var pool fastjson.ParserPool
	p := pool.Get()
	v, err := p.ParseBytes(body)
	if err != nil {
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(100, func() {
		if _, dup := findDuplicate(v); dup {
			t.Fatal("duplicate found")
		}
		if _, bad := inexactKey(v); bad {
			t.Fatal("inexact key found")
		}
	})
	if n != 0 {
		t.Errorf("checking the keys allocates %v times, want 0", n)
	}
}

// FuzzFoldEqual: foldEqual agrees with comparing foldKey's results on any
// bytes, valid UTF-8 or not.
func FuzzFoldEqual(f *testing.F) {
	f.Add("model", "MODEL")
	f.Add("ſtream", "STREAM")
	f.Add("\u212aey", "key")
	f.Add("a\xffb", "A\xfeB")
	f.Fuzz(func(t *testing.T, a, b string) {
		want := foldKey([]byte(a)) == foldKey([]byte(b))
		if got := foldEqual([]byte(a), []byte(b)); got != want {
			t.Errorf("foldEqual(%q, %q) = %v, want %v", a, b, got, want)
		}
	})
}
