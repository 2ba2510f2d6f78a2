package document

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// makePDF builds a minimal PDF with one page per text, using the standard
// Helvetica font, with a correct cross-reference table.
func makePDF(pages ...string) []byte {
	var objs []string
	kids := make([]string, len(pages))
	fontID := 3 + 2*len(pages)
	for i, text := range pages {
		pageID, contentID := 3+2*i, 4+2*i
		kids[i] = fmt.Sprintf("%d 0 R", pageID)
		stream := fmt.Sprintf("BT /F1 18 Tf 72 720 Td (%s) Tj ET", text)
		objs = append(objs,
			fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R /Resources << /Font << /F1 %d 0 R >> >> >>", contentID, fontID),
			fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(stream), stream))
	}
	objs = append([]string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), len(pages)),
	}, objs...)
	objs = append(objs, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

func TestExtractGolden(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "extract", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name     string
		mimeType string
		data     []byte
	}{
		{"json", MIMEJSON, read("data.json")},
		{"csv", MIMECSV, read("table.csv")},
		{"markdown", MIMEMarkdown, read("notes.md")},
		{"text", MIMEText, read("plain.txt")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Extract(tt.mimeType, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "extract", tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("Extract(%s) =\n%s\nwant\n%s", tt.mimeType, got, want)
			}
		})
	}
}

func TestExtractErrors(t *testing.T) {
	tests := []struct {
		name     string
		mimeType string
		data     []byte
		noText   bool
	}{
		{"invalid json", MIMEJSON, []byte(`{"a":`), false},
		{"pdf is never parsed in the host", MIMEPDF, makePDF("x"), true},
		{"html is never parsed in the host", MIMEHTML, []byte("<p>x</p>"), true},
		{"image", "image/png", []byte("\x89PNG"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Extract(tt.mimeType, tt.data)
			if err == nil {
				t.Fatal("Extract succeeded, want an error")
			}
			if got := errors.Is(err, ErrNoText); got != tt.noText {
				t.Errorf("errors.Is(ErrNoText) = %v, want %v (%v)", got, tt.noText, err)
			}
		})
	}
}

// TestExtractJSONDeepNesting checks that pretty-printing cannot blow up:
// deeply nested JSON is returned as it is.
func TestExtractJSONDeepNesting(t *testing.T) {
	deep := strings.Repeat("[", 9000) + strings.Repeat("]", 9000)
	got, err := Extract(MIMEJSON, []byte(deep))
	if err != nil {
		t.Fatal(err)
	}
	if got != deep {
		t.Errorf("got %d bytes, want the input as it is", len(got))
	}
	if d := jsonDepth([]byte(`{"a":"[[[\"]]","b":[{}]}`)); d != 3 {
		t.Errorf("jsonDepth = %d, want 3", d)
	}
}

func TestDetectMIME(t *testing.T) {
	tests := []struct {
		name, declared, file string
		data                 string
		want                 string
	}{
		{"declared wins", "text/markdown; charset=utf-8", "x.txt", "hi", MIMEMarkdown},
		{"alias", "text/x-markdown", "", "hi", MIMEMarkdown},
		{"text/plain refined by extension", "text/plain; charset=utf-8", "a.json", "{}", MIMEJSON},
		{"text/plain not refined to pdf", "text/plain", "a.pdf", "x", MIMEText},
		{"octet-stream falls through to extension", "application/octet-stream", "a.pdf", "x", MIMEPDF},
		{"extension upper case", "", "A.CSV", "a,b", MIMECSV},
		{"sniff pdf", "", "blob", "%PDF-1.7\n", MIMEPDF},
		{"sniff html", "", "blob", "<!DOCTYPE html><p>x", MIMEHTML},
		{"sniff json", "", "blob", ` {"a":[1,2]}`, MIMEJSON},
		{"brace text is not json", "", "blob", "{not json", MIMEText},
		{"sniff text", "", "blob", "just words", MIMEText},
		{"sniff png", "", "blob", "\x89PNG\r\n\x1a\n", "image/png"},
		{"garbage declared", ";;;", "a.md", "x", MIMEMarkdown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DetectMIME(tt.declared, tt.file, []byte(tt.data)); got != tt.want {
				t.Errorf("DetectMIME = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMIMESet(t *testing.T) {
	s, err := newMIMESet([]string{"text/*", "application/PDF", "text/x-markdown"})
	if err != nil {
		t.Fatal(err)
	}
	for typ, want := range map[string]bool{
		"text/plain": true, "text/csv": true, "application/pdf": true, MIMEMarkdown: true,
		"application/json": false, "image/png": false,
	} {
		if got := s.allows(typ); got != want {
			t.Errorf("allows(%s) = %v, want %v", typ, got, want)
		}
	}
	if _, err := newMIMESet([]string{"pdf"}); err == nil {
		t.Error(`newMIMESet("pdf") succeeded, want an error`)
	}
}
