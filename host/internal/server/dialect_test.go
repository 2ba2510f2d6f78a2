package server

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// tagged is a dialect that frames each chunk as a named event, drops
// chunks it is told to, and fails on one.
type tagged struct{}

func (tagged) Response(body []byte) ([]byte, error) {
	return append([]byte(`{"wrapped":`), append(body, '}')...), nil
}

func (tagged) Events(dst, chunk []byte) ([]byte, error) {
	switch string(chunk) {
	case "skip":
		return dst, nil
	case "bad":
		return dst, errors.New("cannot convert")
	}
	dst = append(dst, "event: chunk\ndata: "...)
	dst = append(dst, chunk...)
	return append(dst, "\n\n"...), nil
}

func (tagged) End(dst []byte) []byte { return append(dst, "event: stop\ndata: {}\n\n"...) }

func (tagged) Error(e *openai.Error) []byte {
	return []byte(`{"kind":"error","code":"` + e.Code + `"}`)
}

func (tagged) StreamError(dst []byte, e *openai.Error) []byte {
	return append(dst, "event: error\ndata: "+e.Code+"\n\n"...)
}

func TestDialectStreamEvents(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		fail   *openai.Error
		want   string
	}{
		{
			name:   "converted, skipped and closed",
			chunks: []string{`{"a":1}`, "skip", `{"b":2}`},
			want:   "event: chunk\ndata: {\"a\":1}\n\nevent: chunk\ndata: {\"b\":2}\n\nevent: stop\ndata: {}\n\n",
		},
		{
			name:   "conversion error ends the stream with the dialect's error",
			chunks: []string{`{"a":1}`, "bad"},
			want:   "event: chunk\ndata: {\"a\":1}\n\nevent: error\ndata: upstream_error\n\n",
		},
		{
			name:   "failure after start",
			chunks: []string{`{"a":1}`},
			fail:   openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_error", "boom"),
			want:   "event: chunk\ndata: {\"a\":1}\n\nevent: error\ndata: upstream_error\n\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			k := startKeepalive(bufio.NewWriter(&out), time.Hour)
			k.out = tagged{}
			var err error
			for _, c := range tt.chunks {
				if err = k.event([]byte(c), true); err != nil {
					break
				}
			}
			switch {
			case tt.fail != nil:
				k.fail(tt.fail)
			case err == nil:
				k.end()
			}
			k.stop()
			if got := out.String(); got != tt.want {
				t.Errorf("stream\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestDialectShapesErrors(t *testing.T) {
	var ctx fasthttp.RequestCtx
	r := &call{ctx: &ctx}
	r.setDialect(tagged{})
	e := openai.NewError(http.StatusTooManyRequests, openai.TypeRateLimit, "rate_limited", "slow down")
	e.RetryAfter = 2 * time.Second
	writeError(&ctx, e)
	if got := string(ctx.Response.Body()); got != `{"kind":"error","code":"rate_limited"}` {
		t.Errorf("body %s", got)
	}
	if ctx.Response.StatusCode() != http.StatusTooManyRequests || string(ctx.Response.Header.Peek("Retry-After")) != "2" {
		t.Errorf("status %d Retry-After %q", ctx.Response.StatusCode(), ctx.Response.Header.Peek("Retry-After"))
	}
}
