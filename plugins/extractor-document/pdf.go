package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/ledongthuc/pdf"

	"github.com/llmproxy/llmproxy/sdk/extractor"
)

// Limits of the PDF walk that are not configurable: a real document's
// page tree is a few levels deep, and its character maps are small.
const (
	// maxTreeDepth bounds the page tree's depth. A /Kids array that lists
	// one of its ancestors (or the node itself) makes the tree infinitely
	// deep, so the walk reports such a cycle when it passes this depth.
	maxTreeDepth = 64
	// maxCMapBytes bounds the decoded size of one font's ToUnicode map.
	maxCMapBytes = 1 << 20
	// checkEvery is how many content-stream operators run between checks
	// of the call's context.
	checkEvery = 4096
)

// abort is panicked inside the PDF library's callbacks to stop a walk;
// extractPDF recovers it and returns its error.
type abort struct{ err error }

// errFull stops the content walk when the text reached its limit.
var errFull = errors.New("text limit reached")

// objectCount finds the /Size entries of cross-reference trailers and
// streams, which the PDF library allocates a table for before reading
// anything else.
var objectCount = regexp.MustCompile(`/Size\s+(\d{1,19})`)

// xrefSection finds the first subsection header of each cross-reference
// table ("xref" then the first object number and the count), from which
// the PDF library sizes its table before reading the entries.
var xrefSection = regexp.MustCompile(`xref\s+(\d{1,19})\s+(\d{1,19})\s`)

// xrefOffsets find where the cross-reference sections are: the final
// startxref and the /Prev entries of trailers and xref streams (an
// outline item's "/Prev 12 0 R" is not matched: a reference follows).
var (
	startXref = regexp.MustCompile(`startxref\s+(\d{1,19})`)
	prevXref  = regexp.MustCompile(`/Prev\s+(\d{1,19})\s*(?:/|>>)`)
)

// checkXrefChain refuses a file whose chain of cross-reference sections
// revisits a section, which the PDF library would follow forever. Every
// section of a chain is the final startxref or a /Prev target, so a
// cycle shows as a /Prev that repeats one of those.
func checkXrefChain(data []byte) error {
	seen := map[string]bool{}
	if m := startXref.FindAllSubmatch(data, -1); len(m) > 0 {
		seen[string(m[len(m)-1][1])] = true
	}
	for _, m := range prevXref.FindAllSubmatch(data, -1) {
		if seen[string(m[1])] {
			return extractor.Unreadable("malformed PDF: the cross-reference sections form a cycle at offset %s", m[1])
		}
		seen[string(m[1])] = true
	}
	return nil
}

// extractPDF returns the text of every page of a PDF, in page order,
// pages separated by a blank line. It never trusts the document's own
// counts: the page tree is walked with caps on depth, nodes and pages,
// every content stream and character map is decompressed once under a
// running byte budget before the PDF library interprets it, and the
// text stops growing at lim.MaxTextBytes.
func extractPDF(ctx context.Context, data []byte, lim extractor.Limits) (text *extractor.Text, err error) {
	defer func() {
		if r := recover(); r != nil {
			text = nil
			if a, ok := r.(abort); ok {
				err = a.err
				return
			}
			err = extractor.Unreadable("malformed PDF: %v", r)
		}
	}()
	for _, m := range objectCount.FindAllSubmatch(data, -1) {
		if n, perr := strconv.ParseInt(string(m[1]), 10, 64); perr != nil || n > int64(len(data)) {
			return nil, extractor.Unreadable("malformed PDF: cross-reference table claims %s objects in %d bytes", m[1], len(data))
		}
	}
	for _, m := range xrefSection.FindAllSubmatch(data, -1) {
		start, err1 := strconv.ParseInt(string(m[1]), 10, 64)
		n, err2 := strconv.ParseInt(string(m[2]), 10, 64)
		if size := int64(len(data)); err1 != nil || err2 != nil || start > size || n > size || start+n > size {
			return nil, extractor.Unreadable("malformed PDF: cross-reference section for objects %s to %s+%s in %d bytes", m[1], m[1], m[2], len(data))
		}
	}
	if err := checkXrefChain(data); err != nil {
		return nil, err
	}
	rd, err := pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, extractor.Unreadable("not a readable PDF: %v", err)
	}
	root := rd.Trailer().Key("Root").Key("Pages")
	if root.IsNull() {
		return nil, extractor.Unreadable("malformed PDF: the catalog has no page tree")
	}
	// /Count is checked, never trusted: a tree that claims far more
	// pages than it holds is built to make readers that trust it loop,
	// and one that holds more than it claims lists nodes more than once.
	count := root.Key("Count").Int64()
	pages, truncated, err := walkPages(root, lim.MaxPages, count)
	if err != nil {
		return nil, err
	}
	switch {
	case count > 0 && int64(len(pages)) > count:
		return nil, extractor.Unreadable("malformed PDF: the page tree lists more pages than its /Count of %d (shared or repeated nodes)", count)
	case !truncated && count > lim.MaxPages && count > int64(len(pages)):
		return nil, extractor.Unreadable("malformed PDF: the page tree claims %d pages but holds %d", count, len(pages))
	}
	run := &pdfRun{ctx: ctx, lim: lim}
	for i, p := range pages {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t, err := run.page(i+1, p)
		if err != nil {
			return nil, err
		}
		if t = strings.TrimSpace(t); t != "" {
			if run.out.Len() > 0 {
				run.out.WriteString("\n\n")
			}
			run.out.WriteString(t)
		}
		if run.full {
			truncated = true
			break
		}
	}
	s, cut := extractor.Truncate(run.out.String(), lim.MaxTextBytes)
	return &extractor.Text{Text: s, Pages: int64(len(pages)), Truncated: truncated || cut}, nil
}

// walkPages returns the leaves of a page tree in document order, at most
// maxPages of them (truncated then says there were more), and stops
// early once it found more than declared (the root's /Count) when that
// is positive. It refuses a tree deeper than maxTreeDepth, which is how a
// cycle shows, and one whose nodes, counted with repetitions (a /Kids
// array may list one node many times), exceed a few per page.
func walkPages(root pdf.Value, maxPages, declared int64) (pages []pdf.Value, truncated bool, err error) {
	type node struct {
		v     pdf.Value
		depth int
	}
	maxNodes := 4*maxPages + 1024
	pushed := int64(1)
	stack := []node{{root, 0}}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n.depth > maxTreeDepth {
			return nil, false, extractor.Unreadable("malformed PDF: the page tree is cyclic or deeper than %d levels", maxTreeDepth)
		}
		if n.v.Kind() != pdf.Dict {
			continue
		}
		kids := n.v.Key("Kids")
		if n.v.Key("Type").Name() != "Page" && kids.Kind() == pdf.Array {
			k := kids.Len()
			if pushed += int64(k); pushed > maxNodes {
				return nil, false, extractor.Unreadable("malformed PDF: the page tree has more than %d nodes", maxNodes)
			}
			for i := k - 1; i >= 0; i-- {
				stack = append(stack, node{kids.Index(i), n.depth + 1})
			}
			continue
		}
		if int64(len(pages)) >= maxPages {
			return pages, true, nil
		}
		pages = append(pages, n.v)
		if declared > 0 && int64(len(pages)) > declared {
			return pages, false, nil
		}
	}
	return pages, false, nil
}

// pdfRun is the state of one extraction.
type pdfRun struct {
	ctx context.Context
	lim extractor.Limits
	// decoded counts the bytes decompressed so far.
	decoded int64
	// encoders are the text encodings of the fonts read so far, by
	// fontKey: a font shared by every page is measured and parsed once.
	encoders map[string]pdf.TextEncoding
	out      strings.Builder
	full     bool
}

// inherited returns a page attribute, looking up the /Parent chain for
// at most maxTreeDepth levels.
func inherited(v pdf.Value, key string) (pdf.Value, error) {
	for depth := 0; !v.IsNull(); depth++ {
		if depth > maxTreeDepth {
			return pdf.Value{}, extractor.Unreadable("malformed PDF: a page's /Parent chain is cyclic or longer than %d", maxTreeDepth)
		}
		if r := v.Key(key); !r.IsNull() {
			return r, nil
		}
		v = v.Key("Parent")
	}
	return pdf.Value{}, nil
}

// measure decompresses a stream (or array of streams) once against the
// run's budget, so that the PDF library, which reads streams without a
// bound, only ever sees streams known to fit. max additionally bounds
// this one value when positive.
func (r *pdfRun) measure(what string, v pdf.Value, max int64) error {
	var streams []pdf.Value
	switch v.Kind() {
	case pdf.Stream:
		streams = []pdf.Value{v}
	case pdf.Array:
		if v.Len() > 1<<16 {
			return extractor.Unreadable("malformed PDF: %s lists %d streams", what, v.Len())
		}
		for i := 0; i < v.Len(); i++ {
			streams = append(streams, v.Index(i))
		}
	default:
		return nil
	}
	var total int64
	for _, s := range streams {
		if s.Kind() != pdf.Stream {
			continue
		}
		budget := r.lim.MaxDecodedBytes - r.decoded
		rc := s.Reader()
		n, err := io.Copy(io.Discard, io.LimitReader(rc, budget+1))
		rc.Close()
		r.decoded += n
		total += n
		if r.decoded > r.lim.MaxDecodedBytes {
			return extractor.Unreadable("PDF decompresses to more than %d bytes", r.lim.MaxDecodedBytes)
		}
		if max > 0 && total > max {
			return extractor.Unreadable("malformed PDF: %s decompresses to more than %d bytes", what, max)
		}
		if err != nil {
			return extractor.Unreadable("malformed PDF: %s: %v", what, err)
		}
	}
	return nil
}

// fonts returns the text encodings of a page's fonts by resource name.
func (r *pdfRun) fonts(page int, p pdf.Value) (map[string]pdf.TextEncoding, error) {
	res, err := inherited(p, "Resources")
	if err != nil {
		return nil, err
	}
	dict := res.Key("Font")
	names := dict.Keys()
	if len(names) > 1<<12 {
		return nil, extractor.Unreadable("malformed PDF: page %d has %d fonts", page, len(names))
	}
	out := make(map[string]pdf.TextEncoding, len(names))
	for _, name := range names {
		f := pdf.Font{V: dict.Key(name)}
		key := fontKey(name, f.V)
		if enc, ok := r.encoders[key]; ok {
			out[name] = enc
			continue
		}
		if err := r.measure(fmt.Sprintf("page %d font %s ToUnicode map", page, name), f.V.Key("ToUnicode"), maxCMapBytes); err != nil {
			return nil, err
		}
		enc := f.Encoder()
		if r.encoders == nil {
			r.encoders = map[string]pdf.TextEncoding{}
		}
		r.encoders[key] = enc
		out[name] = enc
	}
	return out, nil
}

// fontKey identifies a font across pages, which share font objects in
// practice. The PDF library does not expose object identity, so the key
// is built from what defines the text encoding; two fonts that collide
// only share an encoder (their text may come out wrong), they never let
// a character map be read unmeasured.
func fontKey(name string, v pdf.Value) string {
	return strings.Join([]string{
		name, v.Key("Subtype").Name(), v.Key("BaseFont").Name(), v.Key("Encoding").Name(),
		strconv.FormatInt(v.Key("ToUnicode").Key("Length").Int64(), 10),
	}, "\x00")
}

// page returns the text of one page.
func (r *pdfRun) page(num int, p pdf.Value) (string, error) {
	contents := p.Key("Contents")
	if contents.IsNull() {
		return "", nil
	}
	if err := r.measure(fmt.Sprintf("page %d contents", num), contents, 0); err != nil {
		return "", err
	}
	fonts, err := r.fonts(num, p)
	if err != nil {
		return "", err
	}
	room := r.lim.MaxTextBytes - int64(r.out.Len())
	var b strings.Builder
	var enc pdf.TextEncoding = rawEncoding{}
	show := func(v pdf.Value) {
		if v.Kind() == pdf.String {
			b.WriteString(enc.Decode(v.RawString()))
		}
	}
	ops := 0
	err = interpret(contents, func(stk *pdf.Stack, op string) {
		args := popArgs(stk)
		if ops++; ops%checkEvery == 0 {
			if err := r.ctx.Err(); err != nil {
				panic(abort{err})
			}
		}
		switch op {
		case "BT", "T*":
			b.WriteByte('\n')
		case "Tf":
			enc = rawEncoding{}
			if len(args) == 2 {
				if e, ok := fonts[args[0].Name()]; ok {
					enc = e
				}
			}
		case "'", "\"":
			b.WriteByte('\n')
			if len(args) > 0 {
				show(args[len(args)-1])
			}
		case "Tj":
			if len(args) == 1 {
				show(args[0])
			}
		case "TJ":
			if len(args) == 1 {
				for i := 0; i < args[0].Len(); i++ {
					show(args[0].Index(i))
				}
			}
		}
		if int64(b.Len()) > room {
			panic(abort{errFull})
		}
	})
	if errors.Is(err, errFull) {
		r.full = true
		return b.String(), nil
	}
	return b.String(), err
}

// interpret runs the PDF library's content-stream interpreter and turns
// an abort into its error.
func interpret(v pdf.Value, do func(stk *pdf.Stack, op string)) (err error) {
	defer func() {
		if r := recover(); r != nil {
			a, ok := r.(abort)
			if !ok {
				panic(r)
			}
			err = a.err
		}
	}()
	pdf.Interpret(v, do)
	return nil
}

// popArgs pops an operator's operands, first operand first.
func popArgs(stk *pdf.Stack) []pdf.Value {
	args := make([]pdf.Value, stk.Len())
	for i := len(args) - 1; i >= 0; i-- {
		args[i] = stk.Pop()
	}
	return args
}

// rawEncoding passes text through, for text shown before any font is
// selected or in a font the page does not declare.
type rawEncoding struct{}

func (rawEncoding) Decode(raw string) string { return raw }
