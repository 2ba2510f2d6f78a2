package document

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/llmproxy/llmproxy/sdk/extractor"
	"github.com/llmproxy/llmproxy/sdk/openai"
)

// ErrNoText is returned by Extract for types it has no text extractor for.
var ErrNoText = errors.New("no text extractor for this type")

// Extractor turns the bytes of untrusted documents into text outside the
// host process. The host implements it over its extractor plugins
// (llmproxy-extractor-*), which run under CPU, memory and wall-clock
// limits; the Resolver never parses PDF, HTML or any other complex
// format itself.
type Extractor interface {
	// Handles reports whether an extractor plugin takes mimeType.
	Handles(mimeType string) bool
	// Extract returns the text of one document. A document that cannot
	// be read (malformed, hostile, over a limit, or one that made the
	// extractor process fail) is a 422 *openai.Error with code
	// extractor.CodeUnreadable; an extractor that cannot run is a 503.
	// A cancelled ctx returns its error.
	Extract(ctx context.Context, name, mimeType string, data []byte) (string, error)
}

// maxIndentBytes bounds the output of pretty-printing JSON, whose size
// grows with nesting depth times the number of values.
const maxIndentBytes = 64 << 20

// Extract returns the text of data for the simple types the host reads
// itself: text and Markdown as they are, JSON pretty-printed (as it is
// when deeply nested), CSV as one " | "-separated line per record.
// Invalid UTF-8 is dropped. Every other type, PDF and HTML included, is
// ErrNoText: those are parsed by extractor plugins only. The work is
// linear in the size of data, which the Resolver has already bounded.
func Extract(mimeType string, data []byte) (string, error) {
	switch mimeType {
	case MIMEText, MIMEMarkdown:
		return validUTF8(data), nil
	case MIMEJSON:
		return extractJSON(data)
	case MIMECSV:
		return extractCSV(data)
	case MIMEHTML, MIMEPDF:
		return "", fmt.Errorf("extract %s: %w", mimeType, ErrNoText)
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

func extractJSON(data []byte) (string, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !json.Valid(data) {
		return "", errors.New("extract json: invalid JSON")
	}
	if int64(len(data))*int64(2*jsonDepth(data)+1) > maxIndentBytes {
		return validUTF8(data), nil
	}
	var out bytes.Buffer
	if err := json.Indent(&out, data, "", "  "); err != nil {
		return "", fmt.Errorf("extract json: %w", err)
	}
	return out.String(), nil
}

// jsonDepth returns the deepest nesting of arrays and objects in valid
// JSON.
func jsonDepth(data []byte) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

func extractCSV(data []byte) (string, error) {
	rd := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))))
	rd.FieldsPerRecord = -1
	rd.LazyQuotes = true
	rd.ReuseRecord = true
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

// extractText returns the text of one document: through the Extractor
// for the types it handles, in the host for the simple ones. A document
// nobody can extract still travels, with empty text, for plugins that
// read the bytes natively; one that an extractor refuses does not.
func (r *Resolver) extractText(ctx context.Context, name, mimeType string, data []byte) (string, error) {
	if r.extractor != nil && r.extractor.Handles(mimeType) {
		text, err := r.extractor.Extract(ctx, name, mimeType, data)
		var oe *openai.Error
		switch {
		case err == nil:
		case errors.As(err, &oe), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return "", err
		default:
			return "", errUnreadable("document %q could not be read: %v", name, err)
		}
		text, _ = extractor.Truncate(text, r.s.maxTextBytes)
		return text, nil
	}
	text, err := Extract(mimeType, data)
	if err != nil {
		return "", nil
	}
	text, _ = extractor.Truncate(text, r.s.maxTextBytes)
	return text, nil
}

// errUnreadable returns the 422 error of a document that cannot be read.
func errUnreadable(format string, args ...any) *openai.Error {
	return openai.NewError(http.StatusUnprocessableEntity, openai.TypeInvalidRequest, extractor.CodeUnreadable, fmt.Sprintf(format, args...))
}
