package document

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"unicode"
)

// Canonical MIME types the extractor understands.
const (
	MIMEText     = "text/plain"
	MIMEMarkdown = "text/markdown"
	MIMEHTML     = "text/html"
	MIMECSV      = "text/csv"
	MIMEJSON     = "application/json"
	MIMEPDF      = "application/pdf"
	mimeBinary   = "application/octet-stream"
)

var extensionTypes = map[string]string{
	".txt":      MIMEText,
	".text":     MIMEText,
	".log":      MIMEText,
	".md":       MIMEMarkdown,
	".markdown": MIMEMarkdown,
	".html":     MIMEHTML,
	".htm":      MIMEHTML,
	".csv":      MIMECSV,
	".json":     MIMEJSON,
	".pdf":      MIMEPDF,
}

// aliases maps types seen in the wild to the canonical ones above.
var aliases = map[string]string{
	"text/x-markdown":       MIMEMarkdown,
	"application/x-md":      MIMEMarkdown,
	"text/json":             MIMEJSON,
	"application/csv":       MIMECSV,
	"application/xhtml+xml": MIMEHTML,
	"application/x-pdf":     MIMEPDF,
}

// NormalizeMIME lower-cases t, drops its parameters and maps known aliases
// to canonical types. It returns "" for an empty or unparsable type.
func NormalizeMIME(t string) string {
	t = strings.TrimSpace(t)
	if t == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(t)
	if err != nil {
		return ""
	}
	if a, ok := aliases[mt]; ok {
		return a
	}
	return mt
}

// DetectMIME picks a document's type: the declared type when it is
// specific (text/plain is refined by a text-based extension such as .md
// or .json), else the file name's extension, else content sniffing (with
// JSON recognised inside what sniffs as text).
func DetectMIME(declared, name string, data []byte) string {
	byExt, hasExt := extensionTypes[strings.ToLower(path.Ext(name))]
	if t := NormalizeMIME(declared); t != "" && t != mimeBinary && t != "binary/octet-stream" {
		// Many servers label every text file text/plain; a text-based
		// extension is more specific.
		if t == MIMEText && hasExt && byExt != MIMEPDF {
			return byExt
		}
		return t
	}
	if hasExt {
		return byExt
	}
	t := NormalizeMIME(http.DetectContentType(data))
	if t == MIMEText {
		if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') && json.Valid(trimmed) {
			return MIMEJSON
		}
	}
	return t
}

// mimeSet is a set of allowed types; "type/*" entries match a top-level
// type.
type mimeSet struct {
	exact map[string]bool
	tops  map[string]bool
}

func newMIMESet(types []string) (mimeSet, error) {
	s := mimeSet{exact: map[string]bool{}, tops: map[string]bool{}}
	for _, t := range types {
		t = strings.ToLower(strings.TrimSpace(t))
		if top, ok := strings.CutSuffix(t, "/*"); ok && top != "" && !strings.Contains(top, "/") {
			s.tops[top] = true
			continue
		}
		n := NormalizeMIME(t)
		if n == "" || !strings.Contains(n, "/") {
			return mimeSet{}, fmt.Errorf("%q is not a MIME type", t)
		}
		s.exact[n] = true
	}
	return s, nil
}

func (s mimeSet) allows(t string) bool {
	if s.exact[t] {
		return true
	}
	top, _, _ := strings.Cut(t, "/")
	return s.tops[top]
}

// fileName picks a document name: the Content-Disposition filename, else
// the last segment of the URL path, else "document".
func fileName(disposition string, u *url.URL) string {
	if disposition != "" {
		if _, params, err := mime.ParseMediaType(disposition); err == nil {
			if n := cleanName(params["filename"]); n != "" {
				return n
			}
		}
	}
	if u != nil {
		if n := cleanName(path.Base(u.Path)); n != "" {
			return n
		}
	}
	return "document"
}

// cleanName keeps the base name of n without control characters; it
// returns "" for names that carry nothing.
func cleanName(n string) string {
	n = strings.ReplaceAll(n, "\\", "/")
	n = path.Base(n)
	n = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, n)
	n = strings.TrimSpace(n)
	if n == "." || n == "/" || n == ".." {
		return ""
	}
	if len(n) > 255 {
		n = n[:255]
	}
	return strings.ToValidUTF8(n, "")
}
