package bedrockfake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	keyID   = "AKIDFAKETEST"
	secret  = "fake-secret"
	token   = "session-token"
	region  = "us-west-2"
	hello   = `{"messages":[{"role":"user","content":[{"text":"Hi"}]}]}`
	convURL = "/model/amazon.nova-lite-v1%3A0/converse"
)

func start(t *testing.T, o Options) *Fake {
	t.Helper()
	f := New(o)
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// send posts body to path, signed as sign says.
func send(t *testing.T, f *Fake, path, body string, sign func(*http.Request)) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if sign != nil {
		sign(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func sigv4(creds aws.Credentials, service, reg string, at time.Time, body string) func(*http.Request) {
	return func(r *http.Request) {
		sum := sha256.Sum256([]byte(body))
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), service, reg, at); err != nil {
			panic(err)
		}
	}
}

func errorType(resp *http.Response) string {
	code, _, _ := strings.Cut(resp.Header.Get("X-Amzn-ErrorType"), ":")
	return code
}

func TestAuthentication(t *testing.T) {
	now := time.Now()
	good := aws.Credentials{AccessKeyID: keyID, SecretAccessKey: secret, SessionToken: token}
	tests := []struct {
		name       string
		sign       func(*http.Request)
		wantStatus int
		wantCode   string
	}{
		{"valid signature", sigv4(good, "bedrock", region, now, hello), 200, ""},
		{"bearer api key", func(r *http.Request) { r.Header.Set("Authorization", "Bearer api-key") }, 200, ""},
		{"wrong bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") }, 403, "UnrecognizedClientException"},
		{"no authorization", nil, 403, "MissingAuthenticationTokenException"},
		{"wrong secret", sigv4(aws.Credentials{AccessKeyID: keyID, SecretAccessKey: "other", SessionToken: token}, "bedrock", region, now, hello), 403, "InvalidSignatureException"},
		{"unknown key", sigv4(aws.Credentials{AccessKeyID: "AKIDOTHER", SecretAccessKey: secret, SessionToken: token}, "bedrock", region, now, hello), 403, "UnrecognizedClientException"},
		{"missing session token", sigv4(aws.Credentials{AccessKeyID: keyID, SecretAccessKey: secret}, "bedrock", region, now, hello), 403, "UnrecognizedClientException"},
		{"expired", sigv4(good, "bedrock", region, now.Add(-20*time.Minute), hello), 403, "InvalidSignatureException"},
		{"from the future", sigv4(good, "bedrock", region, now.Add(20*time.Minute), hello), 403, "InvalidSignatureException"},
		{"wrong service", sigv4(good, "s3", region, now, hello), 403, "InvalidSignatureException"},
		{"wrong region", sigv4(good, "bedrock", "eu-west-1", now, hello), 403, "InvalidSignatureException"},
		{"body changed after signing", sigv4(good, "bedrock", region, now, `{"messages":[]}`), 403, "InvalidSignatureException"},
		{"malformed header", func(r *http.Request) { r.Header.Set("Authorization", "AWS4-HMAC-SHA256 garbage") }, 403, "IncompleteSignatureException"},
	}
	f := start(t, Options{AccessKeyID: keyID, SecretAccessKey: secret, SessionToken: token, APIKey: "api-key", Region: region})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := send(t, f, convURL, hello, tt.sign)
			if resp.StatusCode != tt.wantStatus || errorType(resp) != tt.wantCode {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("got %d %q %s, want %d %q", resp.StatusCode, errorType(resp), b, tt.wantStatus, tt.wantCode)
			}
			if tt.wantStatus != 200 {
				var body struct{ Message string }
				if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Message == "" {
					t.Errorf("error body without message: %v", err)
				}
			}
		})
	}
}

func TestValidation(t *testing.T) {
	tool := `"toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object"}}}}]}`
	use := `{"role":"assistant","content":[{"toolUse":{"toolUseId":"a","name":"f","input":{}}},{"toolUse":{"toolUseId":"b","name":"f","input":{}}}]}`
	tests := []struct {
		name, body, wantMsg string
	}{
		{"starts with assistant", `{"messages":[{"role":"assistant","content":[{"text":"x"}]}]}`, "must start with a user message"},
		{"roles repeat", `{"messages":[{"role":"user","content":[{"text":"x"}]},{"role":"user","content":[{"text":"y"}]}]}`, "must alternate"},
		{"blank text", `{"messages":[{"role":"user","content":[{"text":"  "}]}]}`, "is blank"},
		{"tool results split", `{"messages":[{"role":"user","content":[{"text":"x"}]},` + use + `,{"role":"user","content":[{"toolResult":{"toolUseId":"a","content":[{"text":"1"}]}}]}],` + tool + `}`, "following Ids: b"},
		{"tool use without config", `{"messages":[{"role":"user","content":[{"text":"x"}]},` + use + `]}`, "toolConfig field must be defined"},
		{"document name with dot", `{"messages":[{"role":"user","content":[{"document":{"format":"pdf","name":"a.pdf","source":{"bytes":"AA=="}}}]}]}`, "document file name"},
		{"duplicate document names", `{"messages":[{"role":"user","content":[{"document":{"format":"pdf","name":"a","source":{"bytes":"AA=="}}},{"document":{"format":"pdf","name":"a","source":{"bytes":"AA=="}}}]}]}`, "unique"},
		{"image format", `{"messages":[{"role":"user","content":[{"image":{"format":"bmp","source":{"bytes":"AA=="}}}]}]}`, "enum value set"},
	}
	f := start(t, Options{APIKey: "k"})
	bearer := func(r *http.Request) { r.Header.Set("Authorization", "Bearer k") }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := send(t, f, convURL, tt.body, bearer)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 400 || errorType(resp) != "ValidationException" || !strings.Contains(string(b), tt.wantMsg) {
				t.Errorf("got %d %q %s, want 400 ValidationException with %q", resp.StatusCode, errorType(resp), b, tt.wantMsg)
			}
		})
	}
	ok := `{"messages":[{"role":"user","content":[{"text":"x"}]},` + use + `,{"role":"user","content":[{"toolResult":{"toolUseId":"a","content":[{"text":"1"}]}},{"toolResult":{"toolUseId":"b","content":[{"text":"2"}]}}]}],` + tool + `}`
	if resp := send(t, f, convURL, ok, bearer); resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Errorf("grouped tool results rejected: %s", b)
	}
}

func TestForcedFailuresAndRecording(t *testing.T) {
	f := start(t, Options{APIKey: "k"})
	bearer := func(r *http.Request) { r.Header.Set("Authorization", "Bearer k") }
	f.FailNext(2, Failure{Code: "ThrottlingException", Status: 429, Message: "slow down", RetryAfter: "3"})
	for i := range 2 {
		resp := send(t, f, convURL, hello, bearer)
		if resp.StatusCode != 429 || errorType(resp) != "ThrottlingException" || resp.Header.Get("Retry-After") != "3" {
			t.Fatalf("request %d: got %d %q", i, resp.StatusCode, errorType(resp))
		}
	}
	if resp := send(t, f, convURL, hello, bearer); resp.StatusCode != 200 {
		t.Fatalf("third request: %d", resp.StatusCode)
	}
	if f.Requests() != 3 {
		t.Errorf("Requests = %d, want 3", f.Requests())
	}
	last := f.LastRequest()
	if last.ModelID != "amazon.nova-lite-v1:0" || last.Operation != "converse" || string(last.Body) != hello {
		t.Errorf("last request = %+v", last)
	}
}

func TestStreamControls(t *testing.T) {
	reply := Reply{Blocks: []Block{{Text: "Hello there"}, {ToolUse: &ToolUse{ID: "t1", Name: "f", Input: `{"a":1}`}}}, StopReason: "tool_use", Usage: Usage{Input: 3, Output: 4}, ChunkSize: 4}
	tests := []struct {
		name       string
		mod        func(*Reply)
		wantEvents string
		wantErr    bool
	}{
		{"whole", func(*Reply) {}, "messageStart contentBlockDelta contentBlockDelta contentBlockDelta contentBlockStop contentBlockStart contentBlockDelta contentBlockDelta contentBlockStop messageStop metadata", false},
		{"split frames", func(r *Reply) { r.SplitFrames = true }, "messageStart contentBlockDelta contentBlockDelta contentBlockDelta contentBlockStop contentBlockStart contentBlockDelta contentBlockDelta contentBlockStop messageStop metadata", false},
		{"exception", func(r *Reply) { r.Exception, r.ExceptionAfter = "throttlingException", 2 }, "messageStart contentBlockDelta exception:throttlingException", false},
		{"cut", func(r *Reply) { r.CutAfter = 2 }, "messageStart contentBlockDelta", true},
	}
	f := start(t, Options{APIKey: "k"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := reply
			tt.mod(&r)
			f.SetReply(r)
			resp := send(t, f, "/model/amazon.nova-lite-v1%3A0/converse-stream", hello, func(r *http.Request) { r.Header.Set("Authorization", "Bearer k") })
			if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.amazon.eventstream" {
				t.Fatalf("content type %q", ct)
			}
			body, readErr := io.ReadAll(resp.Body)
			dec := eventstream.NewDecoder()
			rd := bytes.NewReader(body)
			var got []string
			var decErr error
			for {
				msg, err := dec.Decode(rd, nil)
				if err != nil {
					if !errors.Is(err, io.EOF) {
						decErr = err
					}
					break
				}
				name := msg.Headers.Get(":event-type")
				if mt := msg.Headers.Get(":message-type").String(); mt == "exception" {
					got = append(got, "exception:"+msg.Headers.Get(":exception-type").String())
					continue
				}
				got = append(got, name.String())
			}
			if strings.Join(got, " ") != tt.wantEvents {
				t.Errorf("events = %v, want %s", got, tt.wantEvents)
			}
			if cut := readErr != nil || decErr != nil; cut != tt.wantErr {
				t.Errorf("cut = %v (read %v, decode %v), want %v", cut, readErr, decErr, tt.wantErr)
			}
		})
	}
}
