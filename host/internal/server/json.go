package server

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
)

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, err)
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// duplicateKey reports the first object key that body repeats, at any
// depth, as a path such as "model" or "messages[0].content[1].source.url".
// JSON leaves repeated keys undefined and parsers differ (the host's
// keeps the first, Go's encoding/json the last), so the host refuses
// them rather than authorise one value and forward another. Keys are
// compared ignoring case, as encoding/json matches them to fields
// ("MODEL" fills Model too). A body that is not valid JSON has no
// duplicates here; the request parser reports it.
func duplicateKey(pool *fastjson.ParserPool, body []byte) (string, bool) {
	p := pool.Get()
	defer pool.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		return "", false
	}
	return findDuplicate(v)
}

// findDuplicate is duplicateKey on a parsed value. The path is built only
// once a duplicate is found, on the way back up, so that a body without
// one costs no allocation.
func findDuplicate(v *fastjson.Value) (string, bool) {
	path, found := duplicateIn(v)
	return strings.TrimPrefix(path, "."), found
}

// pairwiseKeys is the size up to which an object's keys are compared
// pair by pair rather than through a map of folded keys.
const pairwiseKeys = 32

// duplicateIn returns the path of the first repeated key below v, each
// key preceded by a dot and each index in brackets.
func duplicateIn(v *fastjson.Value) (string, bool) {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		n := o.Len()
		if n == 0 {
			return "", false
		}
		var (
			small [pairwiseKeys][]byte
			keys  = small[:0]
			seen  map[string]struct{}
			dup   string
			found bool
		)
		if n > pairwiseKeys {
			seen = make(map[string]struct{}, n)
		}
		o.Visit(func(k []byte, child *fastjson.Value) {
			if found {
				return
			}
			if seen != nil {
				folded := foldKey(k)
				if _, ok := seen[folded]; ok {
					dup, found = "."+string(k), true
					return
				}
				seen[folded] = struct{}{}
			} else {
				for _, prev := range keys {
					if foldEqual(prev, k) {
						dup, found = "."+string(k), true
						return
					}
				}
				keys = append(keys, k)
			}
			if sub, ok := duplicateIn(child); ok {
				dup, found = "."+string(k)+sub, true
			}
		})
		return dup, found
	case fastjson.TypeArray:
		arr, _ := v.Array()
		for i, child := range arr {
			if sub, ok := duplicateIn(child); ok {
				return "[" + strconv.Itoa(i) + "]" + sub, true
			}
		}
	}
	return "", false
}

// foldKey returns k case-folded the way encoding/json compares a key with
// a field name, so that keys a Go reader would treat as one compare equal
// (the Kelvin sign folds to "k", the long s to "s").
func foldKey(k []byte) string {
	var b strings.Builder
	b.Grow(len(k))
	for _, r := range string(k) {
		b.WriteRune(foldRune(r))
	}
	return b.String()
}

// foldRune folds r as foldKey does.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			r -= 'a' - 'A'
		}
		return r
	}
	return unicode.ToUpper(unicode.ToLower(r))
}

// foldEqual reports whether foldKey(a) == foldKey(b), without allocating.
func foldEqual(a, b []byte) bool {
	for len(a) > 0 && len(b) > 0 {
		ra, na := rune(a[0]), 1
		if ra >= utf8.RuneSelf {
			ra, na = utf8.DecodeRune(a)
		}
		rb, nb := rune(b[0]), 1
		if rb >= utf8.RuneSelf {
			rb, nb = utf8.DecodeRune(b)
		}
		if ra != rb && foldRune(ra) != foldRune(rb) {
			return false
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) == 0 && len(b) == 0
}

// decidedFields are the top-level request fields the host reads itself to
// authorise and route a request.
var decidedFields = []string{"model", "stream"}

// inexactField reports a top-level key of body that a case-insensitive
// reader (encoding/json, in the plugins) takes for one of decidedFields
// while the host, which matches exactly, does not: "Stream": true would
// reach a plugin as a stream the host never set up.
func inexactField(pool *fastjson.ParserPool, body []byte) (string, bool) {
	p := pool.Get()
	defer pool.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		return "", false
	}
	return inexactKey(v)
}

// inexactKey is inexactField on a parsed value.
func inexactKey(v *fastjson.Value) (string, bool) {
	o, err := v.Object()
	if err != nil {
		return "", false
	}
	var bad string
	o.Visit(func(k []byte, _ *fastjson.Value) {
		if bad != "" {
			return
		}
		for _, f := range decidedFields {
			if string(k) != f && foldEqual(k, []byte(f)) {
				bad = string(k)
			}
		}
	})
	return bad, bad != ""
}

// loneSurrogate reports whether body escapes a UTF-16 surrogate (\uD800
// to \uDFFF) that is not half of a high-low pair, which is no character
// at all.
func loneSurrogate(body []byte) bool {
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' || i+1 >= len(body) {
			continue
		}
		if body[i+1] != 'u' {
			i++ // skip the escaped character, which may be a backslash
			continue
		}
		r, ok := hex4(body[i+2:])
		if !ok {
			i++
			continue
		}
		switch {
		case r >= 0xD800 && r < 0xDC00:
			if len(body) >= i+12 && body[i+6] == '\\' && body[i+7] == 'u' {
				if lo, ok := hex4(body[i+8:]); ok && lo >= 0xDC00 && lo < 0xE000 {
					i += 11
					continue
				}
			}
			return true
		case r >= 0xDC00 && r < 0xE000:
			return true
		}
		i += 5
	}
	return false
}

// hex4 reads four hex digits.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}
