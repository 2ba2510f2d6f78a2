package main

import (
	"bytes"
	"context"
	"io"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/llmproxy/llmproxy/sdk/extractor"
)

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

// extractHTML returns the text of an HTML document without markup,
// scripts and styles, one line per block element. It runs the tokenizer
// (linear in the input, no tree is built) and stops at
// lim.MaxTextBytes.
func extractHTML(ctx context.Context, data []byte, lim extractor.Limits) (*extractor.Text, error) {
	z := html.NewTokenizer(bytes.NewReader(data))
	var b strings.Builder
	skip := 0
	newline := func() {
		if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
			b.WriteByte('\n')
		}
	}
	done := func(truncated bool) (*extractor.Text, error) {
		s, cut := extractor.Truncate(strings.TrimSpace(b.String()), lim.MaxTextBytes)
		return &extractor.Text{Text: s, Truncated: truncated || cut}, nil
	}
	for n := 1; ; n++ {
		if n%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if int64(b.Len()) > lim.MaxTextBytes {
			return done(true)
		}
		switch z.Next() {
		case html.ErrorToken:
			if err := z.Err(); err != io.EOF {
				return nil, extractor.Unreadable("malformed HTML: %v", err)
			}
			return done(false)
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
			if s := b.String(); len(s) > 0 && !strings.HasSuffix(s, "\n") && !strings.HasSuffix(s, " ") {
				b.WriteByte(' ')
			}
			b.WriteString(strings.ToValidUTF8(text, ""))
		}
	}
}
