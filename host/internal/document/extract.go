package document

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/ledongthuc/pdf"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// ErrNoText is returned by Extract for types it has no text extractor for.
var ErrNoText = errors.New("no text extractor for this type")

// Extract returns the text of data, a document of the given (normalized)
// MIME type: text and Markdown as they are, HTML without markup, scripts
// and styles, JSON pretty-printed, CSV as one " | "-separated line per
// record, and the text of a PDF. Invalid UTF-8 is dropped.
func Extract(mimeType string, data []byte) (string, error) {
	switch mimeType {
	case MIMEText, MIMEMarkdown:
		return validUTF8(data), nil
	case MIMEHTML:
		return extractHTML(data)
	case MIMEJSON:
		return extractJSON(data)
	case MIMECSV:
		return extractCSV(data)
	case MIMEPDF:
		return extractPDF(data)
	}
	if strings.HasPrefix(mimeType, "text/") {
		return validUTF8(data), nil
	}
	return "", fmt.Errorf("extract %s: %w", mimeType, ErrNoText)
}

func validUTF8(b []byte) string {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "")
}

// skipped are elements whose content is not document text.
var skipped = map[atom.Atom]bool{
	atom.Script: true, atom.Style: true, atom.Noscript: true, atom.Template: true,
	atom.Head: true, atom.Svg: true, atom.Iframe: true, atom.Object: true,
}

// blocks are elements that start a new line of text.
var blocks = map[atom.Atom]bool{
	atom.P: true, atom.Div: true, atom.Br: true, atom.Li: true, atom.Tr: true,
	atom.H1: true, atom.H2: true, atom.H3: true, atom.H4: true, atom.H5: true, atom.H6: true,
	atom.Section: true, atom.Article: true, atom.Header: true, atom.Footer: true,
	atom.Blockquote: true, atom.Pre: true, atom.Table: true, atom.Ul: true, atom.Ol: true,
	atom.Hr: true, atom.Title: true, atom.Dt: true, atom.Dd: true, atom.Main: true, atom.Nav: true,
}

func extractHTML(data []byte) (string, error) {
	z := html.NewTokenizer(bytes.NewReader(data))
	var b strings.Builder
	skip := 0
	newline := func() {
		s := b.String()
		if len(s) > 0 && !strings.HasSuffix(s, "\n") {
			b.WriteByte('\n')
		}
	}
	for {
		switch z.Next() {
		case html.ErrorToken:
			if err := z.Err(); err != io.EOF {
				return "", fmt.Errorf("extract html: %w", err)
			}
			return strings.TrimSpace(b.String()), nil
		case html.StartTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			if skipped[a] {
				skip++
			} else if blocks[a] && skip == 0 {
				newline()
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			if skipped[a] && skip > 0 {
				skip--
			} else if blocks[a] && skip == 0 {
				newline()
			}
		case html.SelfClosingTagToken:
			name, _ := z.TagName()
			if blocks[atom.Lookup(name)] && skip == 0 {
				newline()
			}
		case html.TextToken:
			if skip > 0 {
				continue
			}
			text := strings.Join(strings.Fields(html.UnescapeString(string(z.Text()))), " ")
			if text == "" {
				continue
			}
			s := b.String()
			if len(s) > 0 && !strings.HasSuffix(s, "\n") && !strings.HasSuffix(s, " ") {
				b.WriteByte(' ')
			}
			b.WriteString(validUTF8([]byte(text)))
		}
	}
}

func extractJSON(data []byte) (string, error) {
	var out bytes.Buffer
	if err := json.Indent(&out, bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), "", "  "); err != nil {
		return "", fmt.Errorf("extract json: %w", err)
	}
	return out.String(), nil
}

func extractCSV(data []byte) (string, error) {
	rd := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))))
	rd.FieldsPerRecord = -1
	rd.LazyQuotes = true
	var b strings.Builder
	for {
		rec, err := rd.Read()
		if err == io.EOF {
			return strings.TrimSuffix(b.String(), "\n"), nil
		}
		if err != nil {
			return "", fmt.Errorf("extract csv: %w", err)
		}
		b.WriteString(validUTF8([]byte(strings.Join(rec, " | "))))
		b.WriteByte('\n')
	}
}

// extractPDF reads the text of every page. The PDF library panics on some
// malformed files; that becomes an error.
func extractPDF(data []byte) (text string, err error) {
	defer func() {
		if r := recover(); r != nil {
			text, err = "", fmt.Errorf("extract pdf: malformed file: %v", r)
		}
	}()
	rd, err := pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return "", fmt.Errorf("extract pdf: %w", err)
	}
	var b strings.Builder
	for i := 1; i <= rd.NumPage(); i++ {
		p := rd.Page(i)
		if p.V.IsNull() {
			continue
		}
		t, err := p.GetPlainText(nil)
		if err != nil {
			return "", fmt.Errorf("extract pdf: page %d: %w", i, err)
		}
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString(t)
	}
	return validUTF8([]byte(b.String())), nil
}
