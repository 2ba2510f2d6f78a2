package main

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"strings"
)

// buildPDF writes objs as objects 1..n with a correct cross-reference
// table; object 1 must be the catalog. extra is added to the trailer.
func buildPDF(objs []string, extra string) []byte {
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
	extra = strings.ReplaceAll(extra, "XREF", fmt.Sprint(xref))
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R %s >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, extra, xref)
	return b.Bytes()
}

// makePDF builds a PDF with one page per text, in the standard Helvetica
// font.
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
	return buildPDF(objs, "")
}

const (
	catalog = "<< /Type /Catalog /Pages 2 0 R >>"
	page3   = "<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>"
	text4   = "<< /Length 28 >>\nstream\nBT (hostile but short) Tj ET\nendstream"
)

// selfKidsPDF is a page tree node that lists itself in /Kids.
func selfKidsPDF() []byte {
	return buildPDF([]string{catalog, "<< /Type /Pages /Kids [2 0 R] /Count 1 >>"}, "")
}

// hugeCountPDF claims two billion pages and holds one.
func hugeCountPDF() []byte {
	return buildPDF([]string{catalog, "<< /Type /Pages /Kids [3 0 R] /Count 2147483647 >>", page3, text4}, "")
}

// cycleKidsPDF has two page tree nodes that list each other.
func cycleKidsPDF() []byte {
	return buildPDF([]string{catalog, "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", "<< /Type /Pages /Kids [2 0 R] /Count 1 >>"}, "")
}

// parentCyclePDF has a page whose /Parent is itself and which has no
// /Resources, so finding its inherited resources walks the cycle.
func parentCyclePDF() []byte {
	return buildPDF([]string{catalog, "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", "<< /Type /Page /Parent 3 0 R /Contents 4 0 R >>", text4}, "")
}

// fanOutPDF is a page tree of 8 levels whose nodes list the next level's
// node 40 times: 40^8 pages from a few hundred bytes.
func fanOutPDF() []byte {
	objs := []string{catalog}
	for level := 0; level < 8; level++ {
		next := fmt.Sprintf("%d 0 R ", level+3)
		objs = append(objs, fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count 1 >>", strings.Repeat(next, 40)))
	}
	objs = append(objs, "<< /Type /Page /Contents 11 0 R >>", "<< /Length 28 >>\nstream\nBT (hostile but short) Tj ET\nendstream")
	return buildPDF(objs, "")
}

// bombPDF has one page whose content stream inflates to n bytes.
func bombPDF(n int) []byte {
	var z bytes.Buffer
	w := zlib.NewWriter(&z)
	chunk := bytes.Repeat([]byte("BT (x) Tj ET\n"), 1<<10)
	for written := 0; written < n; written += len(chunk) {
		w.Write(chunk)
	}
	w.Close()
	stream := fmt.Sprintf("<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream", z.Len(), z.Bytes())
	return buildPDF([]string{catalog, "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", page3, stream}, "")
}

// hugeSizePDF declares a cross-reference table of 10^12 entries.
func hugeSizePDF() []byte {
	return bytes.Replace(makePDF("x"), []byte("/Size 6"), []byte("/Size 999999999999"), 1)
}

// prevLoopPDF's cross-reference section names itself as the previous
// one, which the PDF library would follow without end.
func prevLoopPDF() []byte {
	return buildPDF([]string{catalog, "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", page3, text4}, "/Prev XREF")
}

// hugeXrefStartPDF's cross-reference table starts at object 10^8, which
// would make the PDF library allocate a table of that many entries.
func hugeXrefStartPDF() []byte {
	return bytes.Replace(makePDF("x"), []byte("xref\n0 6\n"), []byte("xref\n100000000 6\n"), 1)
}

// sharedCMapPDF has pages that all use one font whose ToUnicode map
// (maps "A" to "B") is padded to pad bytes.
func sharedCMapPDF(pages, pad int) []byte {
	cmap := "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n" +
		"1 begincodespacerange <00> <FF> endcodespacerange\n1 beginbfchar <41> <0042> endbfchar\n" +
		"endcmap CMapName currentdict /CMap defineresource pop end end\n" + strings.Repeat(" ", pad)
	fontID, cmapID := 3+2*pages, 4+2*pages
	objs := []string{catalog, ""}
	kids := make([]string, pages)
	for i := range pages {
		kids[i] = fmt.Sprintf("%d 0 R", 3+2*i)
		objs = append(objs,
			fmt.Sprintf("<< /Type /Page /Parent 2 0 R /Contents %d 0 R /Resources << /Font << /F1 %d 0 R >> >> >>", 4+2*i, fontID),
			"<< /Length 20 >>\nstream\nBT /F1 9 Tf (A) Tj ET\nendstream")
	}
	objs[1] = fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), pages)
	objs = append(objs,
		fmt.Sprintf("<< /Type /Font /Subtype /Type0 /BaseFont /Mapped /ToUnicode %d 0 R >>", cmapID),
		fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(cmap), cmap))
	return buildPDF(objs, "")
}
