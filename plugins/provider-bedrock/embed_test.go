package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

func TestEmbeddings(t *testing.T) {
	many := make([]string, 100)
	for i := range many {
		many[i] = fmt.Sprintf("text %d", i)
	}
	manyJSON, _ := json.Marshal(many)
	tests := []struct {
		name         string
		body         string
		wantVectors  int
		wantDims     int
		wantRequests int
		wantPath     string
		wantTokens   int
	}{
		{"titan single", `{"model":"amazon.titan-embed-text-v2:0","input":"hello world"}`, 1, 4, 1, "/model/amazon.titan-embed-text-v2%3A0/invoke", 3},
		{"titan loops", `{"model":"amazon.titan-embed-text-v2:0","input":["a","b c","d"]}`, 3, 4, 3, "/model/amazon.titan-embed-text-v2%3A0/invoke", 7},
		{"titan dimensions", `{"model":"amazon.titan-embed-text-v2:0","input":["a"],"dimensions":256}`, 1, 256, 1, "/model/amazon.titan-embed-text-v2%3A0/invoke", 2},
		{"cohere batch", `{"model":"cohere.embed-english-v3","input":["a","b c"]}`, 2, 4, 1, "/model/cohere.embed-english-v3/invoke", 5},
		{"cohere batches of 96", `{"model":"cohere.embed-multilingual-v3","input":` + string(manyJSON) + `}`, 100, 4, 2, "/model/cohere.embed-multilingual-v3/invoke", 300},
	}
	f := startFake(t)
	b := configured(t, f, "", staticCreds(testSecret))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.Reset()
			var in openai.EmbeddingsRequest
			_ = json.Unmarshal([]byte(tt.body), &in)
			resp, err := b.Embeddings(context.Background(), &provider.Request{Meta: provider.Meta{Model: in.Model}, Body: []byte(tt.body)})
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				Object string `json:"object"`
				Data   []struct {
					Index     int       `json:"index"`
					Embedding []float64 `json:"embedding"`
				} `json:"data"`
				Usage openai.Usage `json:"usage"`
			}
			if err := json.Unmarshal(resp.Body, &out); err != nil {
				t.Fatal(err)
			}
			if len(out.Data) != tt.wantVectors {
				t.Fatalf("vectors = %d, want %d", len(out.Data), tt.wantVectors)
			}
			for i, d := range out.Data {
				if d.Index != i || len(d.Embedding) != tt.wantDims {
					t.Errorf("vector %d: index %d, %d dims, want %d", i, d.Index, len(d.Embedding), tt.wantDims)
				}
			}
			if got := f.Requests(); got != tt.wantRequests {
				t.Errorf("upstream requests = %d, want %d", got, tt.wantRequests)
			}
			if got := f.LastRequest().Path; got != tt.wantPath {
				t.Errorf("path = %q, want %q", got, tt.wantPath)
			}
			if out.Usage.PromptTokens != tt.wantTokens || out.Usage.TotalTokens != tt.wantTokens {
				t.Errorf("usage = %+v, want %d tokens", out.Usage, tt.wantTokens)
			}
		})
	}

	t.Run("base64", func(t *testing.T) {
		resp, err := b.Embeddings(context.Background(), &provider.Request{Body: []byte(`{"model":"amazon.titan-embed-text-v2:0","input":"x","encoding_format":"base64"}`)})
		if err != nil {
			t.Fatal(err)
		}
		var out openai.EmbeddingsResponse
		if err := json.Unmarshal(resp.Body, &out); err != nil {
			t.Fatal(err)
		}
		var s string
		if err := json.Unmarshal(out.Data[0].Embedding, &s); err != nil {
			t.Fatalf("embedding is not a base64 string: %s", out.Data[0].Embedding)
		}
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(raw) != 4*4 {
			t.Errorf("base64 vector decodes to %d bytes (%v), want 16", len(raw), err)
		}
	})

	rejects := []struct{ name, body, want string }{
		{"unknown model", `{"model":"meta.llama3","input":"x"}`, "not a Bedrock embedding model"},
		{"token input", `{"model":"amazon.titan-embed-text-v2:0","input":[[1,2]]}`, "token arrays"},
		{"empty text", `{"model":"amazon.titan-embed-text-v2:0","input":["a",""]}`, "must not be empty"},
		{"cohere v3 dimensions", `{"model":"cohere.embed-english-v3","input":"a","dimensions":256}`, "fixed dimension"},
	}
	for _, tt := range rejects {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.Embeddings(context.Background(), &provider.Request{Body: []byte(tt.body)})
			oe, ok := err.(*openai.Error)
			if !ok || oe.Status != 400 || !strings.Contains(oe.Message, tt.want) {
				t.Errorf("got %v, want a 400 mentioning %q", err, tt.want)
			}
		})
	}
}
