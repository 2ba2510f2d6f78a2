package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// codeTokenExpired is the error code watsonx.ai answers a request with
// when its IAM token has expired; the plugin then renews the token and
// retries once.
const codeTokenExpired = "authentication_token_expired"

// upstreamError is an error answer of watsonx.ai, decoded.
type upstreamError struct {
	status int
	code   string
	msg    string
}

// parseErrorBody decodes watsonx.ai's {"errors":[...],"status_code":N}
// body; the raw text stands in for the message when the body has another
// shape.
func parseErrorBody(status int, raw []byte) upstreamError {
	var eb errorBody
	ue := upstreamError{status: status}
	if json.Unmarshal(raw, &eb) == nil && len(eb.Errors) > 0 {
		ue.code, ue.msg = eb.Errors[0].Code, eb.Errors[0].Message
		if ue.status == 0 {
			ue.status = eb.StatusCode
		}
		return ue
	}
	ue.msg = strings.TrimSpace(string(raw))
	if len(ue.msg) > 512 {
		ue.msg = ue.msg[:512]
	}
	return ue
}

// statusError maps an error response to the OpenAI error the client sees
// (see README.md for the table).
func statusError(status int, h http.Header, raw []byte) *openai.Error {
	e := errorFor(parseErrorBody(status, raw))
	if d := retryAfter(h); d > 0 && (e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable) {
		e.RetryAfter = d
	}
	return e
}

// errorFor maps a decoded upstream error. Credential failures (401, 403)
// keep their status but get a generic message: they are the operator's
// problem, and the client must learn nothing about the gateway's
// credentials.
func errorFor(ue upstreamError) *openai.Error {
	msg := ue.msg
	if msg == "" {
		msg = http.StatusText(ue.status)
	}
	if msg == "" {
		msg = "upstream error"
	}
	msg = "watsonx: " + msg
	code := ue.code
	switch {
	case code != "":
	case ue.status == 0:
		code = "upstream_error"
	default:
		code = "upstream_status_" + strconv.Itoa(ue.status)
	}
	switch s := ue.status; {
	case s == http.StatusUnauthorized:
		return openai.NewError(s, openai.TypeAuthentication, code, "watsonx: the upstream service refused the gateway's credentials")
	case s == http.StatusForbidden:
		return openai.NewError(s, openai.TypePermission, code, "watsonx: the gateway's credentials are not allowed to use this upstream resource")
	case s == http.StatusTooManyRequests:
		return openai.NewError(s, openai.TypeRateLimit, code, msg)
	case s == http.StatusServiceUnavailable || s == http.StatusGatewayTimeout:
		return openai.NewError(s, openai.TypeForStatus(s), code, msg)
	case s >= 500 || s == 0:
		return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, code, msg)
	case s == http.StatusNotFound:
		return openai.NewError(s, openai.TypeNotFound, code, msg)
	case s >= 400:
		return openai.NewError(s, openai.TypeInvalidRequest, code, msg)
	}
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, code, msg)
}

// retryAfter reads Retry-After in seconds or as an HTTP date.
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 {
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// transportError turns a failed upstream exchange into the error the
// client should see: cancellation stays cancellation, a timeout is 504,
// anything else that is not already an *openai.Error is 502.
func transportError(ctx context.Context, err error) error {
	var oe *openai.Error
	switch {
	case errors.As(err, &oe):
		return err
	case errors.Is(ctx.Err(), context.Canceled):
		return fmt.Errorf("watsonx: client went away: %w", context.Canceled)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return openai.NewError(http.StatusGatewayTimeout, openai.TypeTimeout, "upstream_timeout", "watsonx: upstream timed out")
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return openai.NewError(http.StatusGatewayTimeout, openai.TypeTimeout, "upstream_timeout", "watsonx: upstream timed out")
	}
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_error", err.Error())
}

// streamBroken is the error of a stream that ends before its finish.
func streamBroken(msg string) *openai.Error {
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "stream_interrupted", "watsonx: "+msg)
}
