package server

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// parseSSE is a strict reader of the SSE event stream format (WHATWG HTML,
// "Parsing an event stream"): lines end at CRLF, CR or LF; a blank line
// dispatches; ":" starts a comment; "data" values are joined with LF. It
// returns the data of each dispatched event and the comments seen.
func parseSSE(stream string) (events, comments []string) {
	var data strings.Builder
	has := false
	for len(stream) > 0 {
		i := strings.IndexAny(stream, "\r\n")
		if i < 0 {
			// An unterminated last line is discarded by the spec.
			break
		}
		line := stream[:i]
		if stream[i] == '\r' && i+1 < len(stream) && stream[i+1] == '\n' {
			i++
		}
		stream = stream[i+1:]
		switch {
		case line == "":
			if has {
				events = append(events, strings.TrimSuffix(data.String(), "\n"))
			}
			data.Reset()
			has = false
		case line[0] == ':':
			comments = append(comments, line[1:])
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			if field == "data" {
				data.WriteString(value)
				data.WriteByte('\n')
				has = true
			}
		}
	}
	return events, comments
}

func TestAppendEvent(t *testing.T) {
	tests := []struct {
		name, chunk, want string
	}{
		{"plain", `{"a":1}`, `{"a":1}`},
		{"pretty JSON is compacted", "{\n  \"a\": \"x\\ny\",\r\n  \"b\": [1, 2]\n}", `{"a":"x\ny","b":[1,2]}`},
		{"text with LF", "line one\nline two", "line one\nline two"},
		{"text with CRLF and CR", "a\r\nb\rc", "a\nb\nc"},
		{"trailing newline", "oops\n", "oops\n"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := string(appendEvent(nil, []byte(tt.chunk)))
			events, comments := parseSSE(out)
			if len(events) != 1 || len(comments) != 0 || events[0] != tt.want {
				t.Fatalf("%q framed as %q: events %q, comments %q; want one event %q", tt.chunk, out, events, comments, tt.want)
			}
			if !strings.HasSuffix(out, "\n\n") || strings.Count(out, "\n\n") != 1 {
				t.Errorf("%q is not exactly one event", out)
			}
		})
	}
}

// FuzzAppendEvent checks that any chunk a plugin sends becomes exactly one
// event that a strict SSE parser reads back: the chunk itself, its compact
// form when it is JSON, or its lines joined with LF.
func FuzzAppendEvent(f *testing.F) {
	for _, s := range []string{`{"choices":[]}`, "{\n\"a\":1}", "a\nb", "a\r\nb\r", "\n", "\r\r\n", ": not a comment", "data: x", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, chunk []byte) {
		out := appendEvent([]byte("prefix"), chunk)[len("prefix"):]
		events, comments := parseSSE(string(out))
		if len(events) != 1 || len(comments) != 0 {
			t.Fatalf("%q framed as %q: %d events, %d comments", chunk, out, len(events), len(comments))
		}
		got := events[0]
		switch {
		case !bytes.ContainsAny(chunk, "\r\n"):
			if got != string(chunk) {
				t.Fatalf("%q read back as %q", chunk, got)
			}
		case json.Valid(chunk):
			var b bytes.Buffer
			json.Compact(&b, chunk)
			if got != b.String() || strings.ContainsAny(got, "\r\n") {
				t.Fatalf("JSON %q read back as %q", chunk, got)
			}
		default:
			want := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(string(chunk))
			if got != want {
				t.Fatalf("%q read back as %q, want %q", chunk, got, want)
			}
		}
	})
}
