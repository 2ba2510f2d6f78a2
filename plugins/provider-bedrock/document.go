package main

import (
	"encoding/base64"
	"fmt"
	"mime"
	"path"
	"strings"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
)

// imageFormats maps image MIME types to Converse image formats.
var imageFormats = map[string]types.ImageFormat{
	"image/png":  types.ImageFormatPng,
	"image/jpeg": types.ImageFormatJpeg,
	"image/jpg":  types.ImageFormatJpeg,
	"image/gif":  types.ImageFormatGif,
	"image/webp": types.ImageFormatWebp,
}

// documentFormats maps document MIME types to Converse document formats.
var documentFormats = map[string]types.DocumentFormat{
	"application/pdf":    types.DocumentFormatPdf,
	"text/csv":           types.DocumentFormatCsv,
	"application/msword": types.DocumentFormatDoc,
	"application/vnd.openxmlformats-officedocument.wordprocessingml.document": types.DocumentFormatDocx,
	"application/vnd.ms-excel": types.DocumentFormatXls,
	"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": types.DocumentFormatXlsx,
	"text/html":       types.DocumentFormatHtml,
	"text/plain":      types.DocumentFormatTxt,
	"text/markdown":   types.DocumentFormatMd,
	"text/x-markdown": types.DocumentFormatMd,
}

// documentFormat returns the Converse format of a MIME type (parameters
// such as charset are ignored).
func documentFormat(mimeType string) (types.DocumentFormat, bool) {
	mt, _, err := mime.ParseMediaType(mimeType)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(mimeType))
	}
	f, ok := documentFormats[mt]
	return f, ok
}

// dataURL is a decoded data: URL.
type dataURL struct {
	mimeType string
	data     []byte
}

// parseDataURL decodes "data:<mime>;base64,<payload>".
func parseDataURL(s string) (*dataURL, error) {
	rest, ok := strings.CutPrefix(s, "data:")
	if !ok {
		return nil, fmt.Errorf("not a data: URL")
	}
	meta, payload, ok := strings.Cut(rest, ",")
	if !ok {
		return nil, fmt.Errorf("data: URL has no comma before its payload")
	}
	mt, isB64 := strings.CutSuffix(meta, ";base64")
	if !isB64 {
		return nil, fmt.Errorf("data: URL must be base64-encoded")
	}
	data, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		if data, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(payload, "=")); err != nil {
			return nil, fmt.Errorf("data: URL payload is not base64: %w", err)
		}
	}
	return &dataURL{mimeType: strings.ToLower(mt), data: data}, nil
}

// maxDocumentName is Bedrock's limit on a document name's length.
const maxDocumentName = 200

// documentNamer gives each document of a request a name Bedrock accepts:
// only alphanumerics, single spaces, hyphens, parentheses and square
// brackets, at most 200 characters, unique within the request.
type documentNamer struct {
	used map[string]bool
}

// name sanitises file (dropping its extension) and makes it unique by
// appending " (2)", " (3)" ….
func (n *documentNamer) name(file string) string {
	if n.used == nil {
		n.used = map[string]bool{}
	}
	base := sanitizeDocumentName(file)
	name := base
	for i := 2; n.used[strings.ToLower(name)]; i++ {
		suffix := fmt.Sprintf(" (%d)", i)
		trimmed := base
		if len(trimmed)+len(suffix) > maxDocumentName {
			trimmed = strings.TrimRight(trimmed[:maxDocumentName-len(suffix)], " ")
		}
		name = trimmed + suffix
	}
	n.used[strings.ToLower(name)] = true
	return name
}

// sanitizeDocumentName maps a file name to Bedrock's document-name
// alphabet: the extension is dropped, every other character becomes a
// space, and runs of spaces collapse to one.
func sanitizeDocumentName(file string) string {
	file = strings.TrimSpace(file)
	if ext := path.Ext(file); ext != "" && len(ext) <= 6 && ext != file {
		file = strings.TrimSuffix(file, ext)
	}
	var b strings.Builder
	space := false
	for _, r := range file {
		ok := r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)) ||
			r == '-' || r == '(' || r == ')' || r == '[' || r == ']'
		if !ok {
			if !space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		b.WriteRune(r)
		space = false
	}
	s := strings.TrimRight(b.String(), " ")
	if len(s) > maxDocumentName {
		s = strings.TrimRight(s[:maxDocumentName], " ")
	}
	if s == "" {
		s = "document"
	}
	return s
}
