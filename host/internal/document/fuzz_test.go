package document

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// FuzzResolve runs the document resolver over arbitrary chat bodies. It
// must never panic or hang; it returns either a valid JSON body with one
// document per resolved part, the body unchanged, or an *openai.Error
// (URLs only reach a closed port on 127.0.0.1, or fail to resolve).
func FuzzResolve(f *testing.F) {
	seeds := []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		string(chatBody(`{"type":"file","file":{"filename":"n.md","file_data":"data:text/markdown;base64,` + b64("# Hi") + `"}}`)),
		string(chatBody(`{"type":"file","file":{"filename":"r.pdf","file_data":"` + base64.StdEncoding.EncodeToString(makePDF("Inline")) + `"}}`)),
		string(chatBody(`{"type":"document","source":{"type":"storage","storage":"prod","bucket":"rag-docs","key":"quantum.md"}}`)),
		string(chatBody(`{"type":"document","source":{"type":"url","url":"http://127.0.0.1:1/x.txt"}}`)),
		string(chatBody(`{"type":"docum\u0065nt","source":{"type":"url","url":"data:text/plain,hello"}}`)),
		string(chatBody(`{"type":"file","file":{"file_data":"data:application/json,%7B%22a%22%3A1%7D"}}`)),
		`{"messages":[{"content":[{"type":"file","file":null},{"type":"document"}]}]}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	r, err := New(Config{AllowCIDRs: []string{"127.0.0.1/32"}, Timeout: "2s", ConnectTimeout: "1s", MaxBytes: 1 << 20},
		Options{HostResolver: mapResolver{}, Extractor: &scanExtractor{}})
	if err != nil {
		f.Fatal(err)
	}
	store := newFakeStorage()
	f.Fuzz(func(t *testing.T, body []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, docs, err := r.Resolve(ctx, body, ResolveOptions{Storage: store})
		if err != nil {
			var oe *openai.Error
			if !errors.As(err, &oe) || oe.Status < 400 || oe.Status > 599 {
				t.Fatalf("error %v (%T) is not an HTTP *openai.Error", err, err)
			}
			return
		}
		if docs == nil {
			if len(body) > 0 && (len(out) != len(body) || &out[0] != &body[0]) {
				t.Fatal("a body without documents was copied")
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("resolved body is not JSON: %s", out)
		}
		for _, d := range docs {
			if d.ID == "" || d.MIMEType == "" {
				t.Fatalf("document without id or type: %+v", d)
			}
		}
	})
}
