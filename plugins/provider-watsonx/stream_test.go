package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-watsonx/watsonxfake"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

func TestEventReader(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []event
	}{
		{"watsonx framing", "id: 1\nevent: message\ndata: {\"a\":1}\n\nid: 2\nevent: error\ndata: {}\n\n",
			[]event{{id: "1", name: "message", data: []byte(`{"a":1}`)}, {id: "2", name: "error", data: []byte(`{}`)}}},
		{"crlf and comments", ": ping\r\n\r\nid: 7\r\ndata: x\r\n\r\n", []event{{id: "7", data: []byte("x")}}},
		{"multi-line data", "data: a\ndata:b\n\n", []event{{data: []byte("a\nb")}}},
		{"unknown fields", "retry: 10\nfoo: bar\n\ndata: z\n\n", []event{{data: []byte("z")}}},
		{"no final blank line", "data: tail", []event{{data: []byte("tail"), partial: true}}},
		{"empty", "\n\n\n", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			er := newEventReader(strings.NewReader(tc.in))
			var got []event
			for {
				ev, err := er.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, ev)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("events %+v, want %+v", got, tc.want)
			}
			for i := range got {
				g, w := got[i], tc.want[i]
				if g.id != w.id || g.name != w.name || string(g.data) != string(w.data) || g.partial != w.partial {
					t.Errorf("event %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

// TestStreamEndsAtFinishAndUsage: a connection held open after the final
// event does not hold the client; the stream ends once the finish and
// the usage have arrived.
func TestStreamEndsAtFinishAndUsage(t *testing.T) {
	f := startFake(t, watsonxfake.Options{})
	w := newProvider(t, f)
	f.SetScenario(watsonxfake.Scenario{Text: "done quickly", HoldOpen: 10 * time.Second})
	start := time.Now()
	if err := calls[1].do(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the stream took %s: it waited for the connection to close", d)
	}
}

// TestStreamUpstreamShapes covers upstream bodies the fake does not
// produce: a JSON answer to a stream request, error events of various
// statuses, several choices.
func TestStreamUpstreamShapes(t *testing.T) {
	var body, contentType string
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/identity/token" {
			rw.Header().Set("Content-Type", "application/json")
			io.WriteString(rw, `{"access_token":"tok","token_type":"Bearer","expires_in":3600}`)
			return
		}
		rw.Header().Set("Content-Type", contentType)
		io.WriteString(rw, body)
	}))
	defer srv.Close()
	w := &Watsonx{now: func() time.Time { return fixedNow }}
	if err := w.Configure(context.Background(), &provider.Config{
		JSON:        []byte(`{"url":"` + srv.URL + `","iam_url":"` + srv.URL + `","project_id":"p"}`),
		Credentials: map[string]string{"api_key": "k"}}); err != nil {
		t.Fatal(err)
	}
	const env = `"id":"c1","model":"m","created":1730000000`
	cases := []struct {
		name, ct, body string
		status         int
		code           string
		content        []string
		// raw must appear in one of the chunks.
		raw string
	}{
		{"json answer", "application/json", `{}`, 502, "invalid_upstream_response", nil, ""},
		{"429 error event", "text/event-stream", "id: 1\nevent: error\ndata: {\"errors\":[{\"code\":\"rate_limit_exceeded\",\"message\":\"slow\"}],\"status_code\":429}\n\n", 429, "rate_limit_exceeded", nil, ""},
		{"400 error event", "text/event-stream", "id: 1\nevent: error\ndata: {\"errors\":[{\"code\":\"model_error\",\"message\":\"bad\"}],\"status_code\":400}\n\n", 502, "model_error", nil, ""},
		{"empty error event", "text/event-stream", "event: error\ndata:\n\n", 502, "upstream_error", nil, ""},
		{"no finish", "text/event-stream", "data: {" + env + `,"choices":[{"index":0,"delta":{"content":"a"}}]}` + "\n\n", 502, "stream_interrupted", nil, ""},
		{"two choices", "text/event-stream",
			"data: {" + env + `,"choices":[{"index":1,"delta":{"content":"b"}},{"index":0,"delta":{"content":"a"}}]}` + "\n\n" +
				"data: {" + env + `,"choices":[{"index":0,"delta":{},"finish_reason":"stop"},{"index":1,"delta":{},"finish_reason":"length"}],"usage":{"prompt_tokens":2,"completion_tokens":2}}` + "\n\n",
			0, "", []string{"b", "a"}, ""},
		{"logprobs", "text/event-stream",
			"data: {" + env + `,"choices":[{"index":0,"delta":{"content":"a"},"logprobs":{"content":[{"token":"a","logprob":-0.1}]}}]}` + "\n\n" +
				"data: {" + env + `,"choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"length"}],"usage":{"prompt_tokens":2,"completion_tokens":2}}` + "\n\n",
			0, "", []string{"ab"}, `"delta":{"content":"a"},"logprobs":{"content":[{"token":"a","logprob":-0.1}]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, contentType = tc.body, tc.ct
			var got chunks
			err := w.ChatCompletionStream(context.Background(), &provider.Request{
				Body: []byte(`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}`)}, &got)
			if tc.status != 0 {
				var oe *openai.Error
				if !errors.As(err, &oe) || oe.Status != tc.status || oe.Code != tc.code {
					t.Fatalf("error %v, want %d %s", err, tc.status, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var acc openai.Accumulator
			for _, c := range got {
				if err := acc.Add(c); err != nil {
					t.Fatalf("%v: %s", err, c)
				}
			}
			if tc.raw != "" {
				found := false
				for _, c := range got {
					found = found || strings.Contains(string(c), tc.raw)
				}
				if !found {
					t.Errorf("no chunk carries %s", tc.raw)
				}
			}
			cc := acc.Completion()
			if len(cc.Choices) != len(tc.content) || cc.Usage == nil || cc.Usage.TotalTokens != 4 {
				t.Fatalf("folded %+v", cc)
			}
			for i, want := range tc.content {
				if cc.Choices[i].Message.Content == nil || *cc.Choices[i].Message.Content != want {
					t.Errorf("choice %d content %v, want %q", i, cc.Choices[i].Message.Content, want)
				}
			}
			if cc.Choices[0].FinishReason != "length" || (len(cc.Choices) > 1 && cc.Choices[1].FinishReason != "stop") {
				t.Errorf("finish reasons %+v", cc.Choices)
			}
		})
	}
}
