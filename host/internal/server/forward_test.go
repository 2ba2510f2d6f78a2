package server

import (
	"maps"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/llmproxy/llmproxy/sdk/provider"
)

// TestPlannedRelayed: the relayed headers are found whatever their case,
// the first of a repeated one wins, and an answer without any gives nil.
func TestPlannedRelayed(t *testing.T) {
	f := &forwarder{}
	rt := f.routeOf("i", &provider.Plan{RelayedHeaders: map[string]string{
		"X-Request-Id":               "x-upstream-request-id",
		"X-Ratelimit-Limit-Requests": "x-ratelimit-limit-requests",
	}})
	pc := &planned{rt: rt}
	var resp fasthttp.Response
	resp.Header.DisableNormalizing()
	resp.Header.Set("x-request-id", "req-1")
	resp.Header.Add("X-RATELIMIT-LIMIT-REQUESTS", "10")
	resp.Header.Add("X-RATELIMIT-LIMIT-REQUESTS", "20")
	resp.Header.Set("X-Other", "no")
	resp.Header.Set("X-Ratelimit-Limit-Requests-And-Much-More-Than-Any-Relayed-Name", "no")
	want := map[string]string{"x-upstream-request-id": "req-1", "x-ratelimit-limit-requests": "10"}
	if got := pc.relayed(&resp); !maps.Equal(got, want) {
		t.Errorf("relayed = %v, want %v", got, want)
	}
	var none fasthttp.Response
	none.Header.Set("X-Other", "no")
	if got := pc.relayed(&none); got != nil {
		t.Errorf("relayed of an answer without relayed headers = %v, want nil", got)
	}
}
