package main

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

func TestRelay(t *testing.T) {
	const (
		blank    = `data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0}]}` + "\n\n"
		role     = `data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null,"content_filter_results":{}}],"id":"c1","created":5,"model":"m","object":"chat.completion.chunk"}` + "\n\n"
		text     = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}],\"id\":\"c1\",\"created\":5,\"model\":\"m\",\"object\":\"chat.completion.chunk\"}\r\n\r\n"
		annot    = `data: {"choices":[{"index":0,"finish_reason":null,"content_filter_offsets":{"check_offset":0}}],"id":"c1","created":5,"model":"m","object":"chat.completion.chunk"}` + "\n\n"
		finish   = `data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"id":"c1","created":5,"model":"m","object":"chat.completion.chunk"}` + "\n\n"
		usage    = `data: {"choices":[],"id":"c1","created":5,"model":"m","object":"chat.completion.chunk","usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}` + "\n\n"
		done     = "data: [DONE]\n\n"
		errEvent = `data: {"error":{"message":"boom","type":"server_error","code":null}}` + "\n\n"
	)
	tests := []struct {
		name         string
		stream       string
		includeUsage bool
		wantChunks   int
		wantCode     string
	}{
		{"azure quirks", blank + role + ": keep-alive\n\n" + text + annot + finish + done, false, 3, ""},
		{"usage forwarded when asked", blank + role + text + finish + usage + done, true, 4, ""},
		{"usage dropped when not asked", blank + role + text + finish + usage + done, false, 3, ""},
		{"done without trailing blank line", role + text + finish + "data: [DONE]", false, 3, ""},
		{"cut off", blank + role + text, false, 2, "stream_interrupted"},
		{"done without finish", role + text + done, false, 2, "stream_interrupted"},
		{"error event", role + text + errEvent, false, 2, ""},
		{"garbage event", role + "data: {nope\n\n", false, 1, "stream_interrupted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &chunkRecorder{}
			r := &chunkRelay{w: rec, includeUsage: tt.includeUsage, finished: map[int]bool{}}
			err := r.run(strings.NewReader(tt.stream))
			if len(rec.chunks) != tt.wantChunks {
				t.Errorf("chunks = %d, want %d:\n%s", len(rec.chunks), tt.wantChunks, rec.chunks)
			}
			acc := &openai.Accumulator{}
			for _, c := range rec.chunks {
				if strings.Contains(string(c), "filter") {
					t.Errorf("filter annotation forwarded: %s", c)
				}
				if err := acc.Add(c); err != nil {
					t.Errorf("chunk rules: %v", err)
				}
			}
			wantErr := tt.wantCode != "" || strings.Contains(tt.name, "error")
			if !wantErr {
				if err != nil {
					t.Fatalf("run: %v", err)
				}
				return
			}
			var oe *openai.Error
			if !errors.As(err, &oe) || oe.Status != 502 || (tt.wantCode != "" && oe.Code != tt.wantCode) {
				t.Fatalf("want a 502 %q error, got %v", tt.wantCode, err)
			}
		})
	}
}

// brokenReader returns data then a read error, as a dropped connection does.
type brokenReader struct{ data io.Reader }

func (b *brokenReader) Read(p []byte) (int, error) {
	n, err := b.data.Read(p)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func TestRelayReadError(t *testing.T) {
	r := &chunkRelay{w: &chunkRecorder{}, finished: map[int]bool{}}
	err := r.run(&brokenReader{strings.NewReader("data: {\"choices\":[]}\n\n")})
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.Status != 502 || oe.Code != "stream_interrupted" {
		t.Fatalf("want 502 stream_interrupted, got %v", err)
	}
}

func TestRelayStopsWhenWriterFails(t *testing.T) {
	gone := errors.New("host went away")
	r := &chunkRelay{w: failingWriter{gone}, finished: map[int]bool{}}
	err := r.run(strings.NewReader(`data: {"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}],"id":"a","created":1,"model":"m","object":"chat.completion.chunk"}` + "\n\n"))
	if !errors.Is(err, gone) {
		t.Fatalf("want the writer's error, got %v", err)
	}
}

type failingWriter struct{ err error }

func (f failingWriter) WriteChunk([]byte) error { return f.err }
