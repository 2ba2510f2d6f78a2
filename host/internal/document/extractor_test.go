package document

import (
	"context"
	"regexp"
	"strings"
	"sync/atomic"

	"github.com/llmproxy/llmproxy/sdk/extractor"
)

// scanExtractor stands in for the extractor plugins in this package's
// tests (the plugins themselves are tested in their own modules and end
// to end). It reads what the tests' documents hold: the strings a PDF
// shows with Tj, and the text between the tags of HTML outside scripts.
// A document containing "UNREADABLE" is refused with 422; one containing
// "STALL" blocks until the context ends.
type scanExtractor struct {
	calls atomic.Int64
}

var _ Extractor = (*scanExtractor)(nil)

var (
	shownText  = regexp.MustCompile(`\(([^)]*)\) Tj`)
	scriptTag  = regexp.MustCompile(`(?s)<script>.*?</script>`)
	htmlText   = regexp.MustCompile(`>([^<]+)<`)
	handledSet = map[string]bool{MIMEPDF: true, MIMEHTML: true}
)

func (x *scanExtractor) Handles(mimeType string) bool { return handledSet[mimeType] }

func (x *scanExtractor) Extract(ctx context.Context, name, mimeType string, data []byte) (string, error) {
	x.calls.Add(1)
	s := string(data)
	switch {
	case strings.Contains(s, "UNREADABLE"):
		return "", extractor.Unreadable("document %q: the page tree is cyclic", name)
	case strings.Contains(s, "STALL"):
		<-ctx.Done()
		return "", ctx.Err()
	}
	re := shownText
	if mimeType == MIMEHTML {
		s, re = scriptTag.ReplaceAllString(s, ""), htmlText
	}
	var out []string
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return strings.Join(out, "\n"), nil
}
