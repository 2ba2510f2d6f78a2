package cache

import (
	"bytes"
	"testing"
)

// FuzzCanonical checks that canonicalisation never panics, is idempotent,
// and that a body and its canonical form have the same key.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"b":1,"a":[1,2,{"d":null,"c":true}],"user":"x","stream":true}`,
		`{"model":"\u00e9\ud83d\ude00","n":1e400}`,
		`{"x":-0.0,"y":1.50,"z":"<&>"}`,
		`[]`, `{`, `{"a":{"a":{"a":{}}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := Canonical(body)
		if err != nil {
			return
		}
		again, err := Canonical(c)
		if err != nil {
			t.Fatalf("canonical form %s does not parse: %v", c, err)
		}
		if !bytes.Equal(c, again) {
			t.Fatalf("not idempotent:\n%s\n%s", c, again)
		}
		k1, err1 := Key(&Request{Body: body, Route: "r"})
		k2, err2 := Key(&Request{Body: c, Route: "r"})
		if err1 != nil || err2 != nil || k1 != k2 {
			t.Fatalf("keys differ: %v %v", err1, err2)
		}
	})
}
