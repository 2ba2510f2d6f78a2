// Package docs tests that the documentation runs: every HCL snippet in
// the READMEs and docs/ loads with the real config loader and passes
// `llmproxy validate`, and the README's quick start answers as it says.
package docs

import (
	"bufio"
	"bytes"
	"strings"
)

// Block is one fenced code block of a Markdown file.
type Block struct {
	// Lang is the first word of the fence info ("hcl", "sh").
	Lang string
	// Flags are the other words of the info ("fragment", "invalid").
	Flags []string
	// Line is the 1-based line of the first line of Text in the file.
	Line int
	Text string
}

// Has reports whether the fence info carries flag.
func (b Block) Has(flag string) bool {
	for _, f := range b.Flags {
		if f == flag {
			return true
		}
	}
	return false
}

// Blocks returns the fenced code blocks of a Markdown document, in order.
// Fences are runs of at least three backticks or tildes, indented by up
// to three spaces; a block ends at a fence of the same character at least
// as long, or at the end of the document.
func Blocks(md []byte) []Block {
	var (
		out   []Block
		open  string // the opening fence, "" outside a block
		cur   Block
		text  strings.Builder
		line  int
		lines = bufio.NewScanner(bytes.NewReader(md))
	)
	lines.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for lines.Scan() {
		line++
		raw := lines.Text()
		trimmed := strings.TrimLeft(raw, " ")
		indent := len(raw) - len(trimmed)
		if open == "" {
			fence := fenceOf(trimmed)
			if fence == "" || indent > 3 {
				continue
			}
			info := strings.Fields(trimmed[len(fence):])
			cur = Block{Line: line + 1}
			if len(info) > 0 {
				cur.Lang = info[0]
			}
			if len(info) > 1 {
				cur.Flags = info[1:]
			}
			open = fence
			text.Reset()
			continue
		}
		if f := fenceOf(trimmed); f != "" && f[0] == open[0] && len(f) >= len(open) && strings.TrimSpace(trimmed[len(f):]) == "" && indent <= 3 {
			cur.Text = text.String()
			out = append(out, cur)
			open = ""
			continue
		}
		text.WriteString(raw)
		text.WriteByte('\n')
	}
	if open != "" {
		cur.Text = text.String()
		out = append(out, cur)
	}
	return out
}

// fenceOf returns the run of backticks or tildes starting s when it is at
// least three long, or "".
func fenceOf(s string) string {
	if s == "" || (s[0] != '`' && s[0] != '~') {
		return ""
	}
	n := 0
	for n < len(s) && s[n] == s[0] {
		n++
	}
	if n < 3 {
		return ""
	}
	return s[:n]
}
