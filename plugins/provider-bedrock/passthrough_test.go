package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

func TestPassthrough(t *testing.T) {
	const converseBody = `{"messages":[{"role":"user","content":[{"text":"Hello"}]}]}`
	tests := []struct {
		name        string
		creds       map[string]string
		path        string
		wantStatus  int
		wantType    string
		wantEvents  []string
		wantAuthPfx string
	}{
		{"converse re-signed", staticCreds(testSecret), "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse", 200, "application/json", nil, "AWS4-HMAC-SHA256 Credential=" + testKeyID + "/"},
		{"converse-stream relayed", staticCreds(testSecret), "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream", 200, "application/vnd.amazon.eventstream",
			[]string{"messageStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"}, "AWS4-HMAC-SHA256"},
		{"api key", map[string]string{credAPIKey: "bedrock-api-key-test"}, "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse", 200, "application/json", nil, "Bearer "},
		{"wrong secret relays the AWS error", staticCreds("wrong"), "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse", 403, "application/json", nil, "AWS4-HMAC-SHA256"},
	}
	f := startFake(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.Reset()
			b := configured(t, f, "", tt.creds)
			b.now = nil // signatures need the real clock
			req := httptest.NewRequest(http.MethodPost, tt.path, strings.NewReader(converseBody))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=CLIENTKEY/20200101/eu-west-1/bedrock/aws4_request, SignedHeaders=host, Signature=00")
			req.Header.Set("X-Amz-Date", "20200101T000000Z")
			req.Header.Set("X-Amz-Security-Token", "client-token")
			req.Header.Set("X-Amzn-Bedrock-Trace", "ENABLED")
			rec := httptest.NewRecorder()
			b.Passthrough(rec, req)

			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != tt.wantType {
				t.Errorf("content type = %q, want %q", ct, tt.wantType)
			}
			up := f.LastRequest()
			if up.Path != tt.path {
				t.Errorf("upstream path = %q, want %q", up.Path, tt.path)
			}
			if got := up.Header.Get("Authorization"); !strings.HasPrefix(got, tt.wantAuthPfx) || strings.Contains(got, "CLIENTKEY") {
				t.Errorf("upstream Authorization = %q, want the instance's credentials", got)
			}
			if up.Header.Get("X-Amz-Security-Token") != "" {
				t.Errorf("client X-Amz-Security-Token was forwarded")
			}
			if up.Header.Get("X-Amzn-Bedrock-Trace") != "ENABLED" {
				t.Errorf("X-Amzn-Bedrock-Trace was not forwarded")
			}
			if string(up.Body) != converseBody {
				t.Errorf("upstream body = %s", up.Body)
			}
			if tt.wantStatus == 403 && !strings.HasPrefix(rec.Header().Get("X-Amzn-ErrorType"), "InvalidSignatureException") {
				t.Errorf("X-Amzn-ErrorType = %q", rec.Header().Get("X-Amzn-ErrorType"))
			}
			if tt.wantEvents != nil {
				if got := decodeEvents(t, rec.Body.Bytes()); strings.Join(dedupe(got), ",") != strings.Join(tt.wantEvents, ",") {
					t.Errorf("events = %v, want %v", got, tt.wantEvents)
				}
			}
		})
	}
}

// decodeEvents decodes an event-stream body and returns its event types.
func decodeEvents(t *testing.T, body []byte) []string {
	t.Helper()
	dec := eventstream.NewDecoder()
	r := bytes.NewReader(body)
	var types []string
	for {
		msg, err := dec.Decode(r, nil)
		if err == io.EOF {
			return types
		}
		if err != nil {
			t.Fatalf("decode event stream: %v", err)
		}
		types = append(types, msg.Headers.Get(":event-type").String())
	}
}

// dedupe drops consecutive repeats.
func dedupe(xs []string) []string {
	var out []string
	for _, x := range xs {
		if len(out) == 0 || out[len(out)-1] != x {
			out = append(out, x)
		}
	}
	return out
}
