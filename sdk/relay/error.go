package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// Bounds of what is read from an upstream.
const (
	// MaxErrorBody bounds how much of an upstream error body is read.
	MaxErrorBody = 64 << 10
	// MaxResponseBody bounds a non-streamed upstream answer.
	MaxResponseBody = 256 << 20
)

// UpstreamError turns a non-2xx upstream answer in OpenAI's error shape
// into the *openai.Error the client sees: the upstream's status, type,
// code, param and message (at most MaxErrorBody bytes of body are read),
// and the retry delay from the retry-after-ms or Retry-After header that
// header returns. It is the one mapping of provider.MappingOpenAI: OpenAI-shaped
// plugins serving a call and the host forwarding one on their plan both
// use it.
func UpstreamError(status int, body []byte, header func(name string) string, now time.Time) *openai.Error {
	e := openai.ParseError(status, body[:min(len(body), MaxErrorBody)])
	e.RetryAfter = RetryAfter(header("Retry-After-Ms"), header("Retry-After"), now)
	return e
}

// RetryAfter reads a retry delay from the values of retry-after-ms
// (milliseconds) and Retry-After (seconds or an HTTP date); 0 when
// neither gives a positive delay.
func RetryAfter(ms, ra string, now time.Time) time.Duration {
	if v := strings.TrimSpace(ms); v != "" {
		if n, err := strconv.ParseFloat(v, 64); err == nil && n > 0 {
			return time.Duration(n * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(ra)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s > 0 {
			return time.Duration(s * float64(time.Second))
		}
		return 0
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// TransportError maps a failure to reach or read the upstream called
// name: the caller's cancellation stays a context error, timeouts become
// 504 upstream_timeout and everything else 502 upstream_unreachable.
func TransportError(ctx context.Context, name string, err error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("%s: upstream request abandoned: %w", name, context.Canceled)
	}
	err = Timeout(err)
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return openai.NewError(http.StatusGatewayTimeout, openai.TypeTimeout, "upstream_timeout",
			"the "+name+" upstream did not answer in time: "+err.Error())
	}
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_unreachable",
		"the "+name+" upstream could not be reached: "+err.Error())
}

// TooLarge is the error of an answer longer than limit bytes.
func TooLarge(name string, limit int) *openai.Error {
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_response_too_large",
		fmt.Sprintf("the %s upstream answered with more than %d bytes", name, limit))
}
