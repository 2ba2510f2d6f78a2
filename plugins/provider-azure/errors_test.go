package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

func TestUpstreamError(t *testing.T) {
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   openai.Error
	}{
		{"content filter", 400, nil,
			`{"error":{"message":"filtered","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation"}}}`,
			openai.Error{Status: 400, Type: openai.TypeInvalidRequest, Code: CodeContentFilter, Param: "prompt", Message: "filtered"}},
		{"inner error only", 400, nil,
			`{"error":{"message":"filtered","code":"BadRequest","innererror":{"code":"ResponsibleAIPolicyViolation"}}}`,
			openai.Error{Status: 400, Type: openai.TypeInvalidRequest, Code: CodeContentFilter, Message: "filtered"}},
		{"numeric 401 code", 401, nil, `{"error":{"code":"401","message":"Access denied"}}`,
			openai.Error{Status: 401, Type: openai.TypeAuthentication, Message: "Access denied"}},
		{"apim shape", 401, nil, `{"statusCode":401,"message":"Unauthorized. Access token is missing"}`,
			openai.Error{Status: 401, Type: openai.TypeAuthentication, Message: "Unauthorized. Access token is missing"}},
		{"deployment not found", 404, nil, `{"error":{"code":"DeploymentNotFound","message":"no deployment"}}`,
			openai.Error{Status: 404, Type: openai.TypeNotFound, Code: "DeploymentNotFound", Message: "no deployment"}},
		{"429 retry-after-ms wins", 429, http.Header{"Retry-After": {"6"}, "Retry-After-Ms": {"5500"}}, `{"error":{"code":"429","message":"slow down"}}`,
			openai.Error{Status: 429, Type: openai.TypeRateLimit, Code: "rate_limit_exceeded", Message: "slow down", RetryAfter: 5500 * time.Millisecond}},
		{"429 retry-after seconds", 429, http.Header{"Retry-After": {"6"}}, `{"error":{"code":429,"message":"slow down"}}`,
			openai.Error{Status: 429, Type: openai.TypeRateLimit, Code: "rate_limit_exceeded", Message: "slow down", RetryAfter: 6 * time.Second}},
		{"typed server error", 500, nil, `{"error":{"code":"InternalServerError","type":"server_error","message":"oops"}}`,
			openai.Error{Status: 500, Type: openai.TypeServer, Code: "InternalServerError", Message: "oops"}},
		{"not json", 502, nil, `<html>Bad Gateway</html>`,
			openai.Error{Status: 502, Type: openai.TypeServer, Message: "<html>Bad Gateway</html>"}},
		{"empty body", 503, nil, ``,
			openai.Error{Status: 503, Type: openai.TypeUnavailable, Message: "Service Unavailable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			got := upstreamError(tt.status, h, []byte(tt.body))
			if *got != tt.want {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestRetryAfterDate(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	h := http.Header{"Retry-After": {now.Add(30 * time.Second).Format(http.TimeFormat)}}
	if got := retryAfter(h, now); got != 30*time.Second {
		t.Errorf("retryAfter = %v, want 30s", got)
	}
	if got := retryAfter(http.Header{"Retry-After": {"soon"}}, now); got != 0 {
		t.Errorf("retryAfter of garbage = %v, want 0", got)
	}
}
