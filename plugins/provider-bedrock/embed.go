package main

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// cohereBatch is the most texts Cohere embedding models take in one call.
const cohereBatch = 96

// titanRequest and titanResponse are the Titan text embeddings body.
type titanRequest struct {
	InputText  string `json:"inputText"`
	Dimensions *int   `json:"dimensions,omitempty"`
}

type titanResponse struct {
	Embedding           []float64 `json:"embedding"`
	InputTextTokenCount int       `json:"inputTextTokenCount"`
}

// cohereRequest and cohereResponse are the Cohere embed body on Bedrock.
type cohereRequest struct {
	Texts           []string `json:"texts"`
	InputType       string   `json:"input_type"`
	OutputDimension *int     `json:"output_dimension,omitempty"`
}

type cohereResponse struct {
	Embeddings [][]float64 `json:"embeddings"`
}

// Embeddings implements provider.Embedder through InvokeModel. Titan
// models (amazon.titan-embed-*) take one input per call, so inputs are
// embedded one by one; Cohere models (cohere.embed-*) take batches of up
// to 96 texts with input_type search_document.
func (b *Bedrock) Embeddings(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	inst, err := b.current()
	if err != nil {
		return nil, err
	}
	var in openai.EmbeddingsRequest
	if err := json.Unmarshal(req.Body, &in); err != nil {
		return nil, openai.InvalidRequest("", "invalid embeddings request: "+err.Error())
	}
	if req.Meta.Model != "" {
		in.Model = req.Meta.Model
	}
	if in.Model == "" {
		return nil, openai.InvalidRequest("model", "you must provide a model parameter")
	}
	if in.Input.Tokens != nil {
		return nil, openai.InvalidRequest("input", "bedrock embeddings take text input, not token arrays")
	}
	if len(in.Input.Texts) == 0 {
		return nil, openai.InvalidRequest("input", "input must be a string or a non-empty array of strings")
	}
	for i, t := range in.Input.Texts {
		if t == "" {
			return nil, openai.InvalidRequest(fmt.Sprintf("input[%d]", i), "input texts must not be empty")
		}
	}
	switch in.EncodingFormat {
	case "", "float", "base64":
	default:
		return nil, openai.InvalidRequest("encoding_format", fmt.Sprintf("encoding_format %q is not float or base64", in.EncodingFormat))
	}
	ctx, cancel := inst.withTimeout(ctx)
	defer cancel()

	var vectors [][]float64
	var used int
	switch {
	case strings.Contains(in.Model, "amazon.titan-embed"):
		vectors, used, err = titanEmbed(ctx, inst, in)
	case strings.Contains(in.Model, "cohere.embed"):
		vectors, used, err = cohereEmbed(ctx, inst, in)
	default:
		return nil, openai.InvalidRequest("model", fmt.Sprintf("model %q is not a Bedrock embedding model this plugin knows (amazon.titan-embed-*, cohere.embed-*)", in.Model))
	}
	if err != nil {
		return nil, err
	}
	out := openai.EmbeddingsResponse{Object: openai.ObjectList, Model: in.Model,
		Usage: openai.Usage{PromptTokens: used, TotalTokens: used}}
	for i, v := range vectors {
		raw, err := encodeVector(v, in.EncodingFormat)
		if err != nil {
			return nil, err
		}
		out.Data = append(out.Data, openai.Embedding{Object: openai.ObjectEmbedding, Index: i, Embedding: raw})
	}
	return provider.JSONResponse(out)
}

func titanEmbed(ctx context.Context, inst *instance, in openai.EmbeddingsRequest) ([][]float64, int, error) {
	var vectors [][]float64
	used := 0
	for _, text := range in.Input.Texts {
		body, err := json.Marshal(titanRequest{InputText: text, Dimensions: in.Dimensions})
		if err != nil {
			return nil, 0, fmt.Errorf("encode titan request: %w", err)
		}
		raw, _, err := invokeJSON(ctx, inst, in.Model, body)
		if err != nil {
			return nil, 0, err
		}
		var r titanResponse
		if err := json.Unmarshal(raw, &r); err != nil || len(r.Embedding) == 0 {
			return nil, 0, streamCut("with a Titan response without an embedding")
		}
		vectors = append(vectors, r.Embedding)
		used += r.InputTextTokenCount
	}
	return vectors, used, nil
}

func cohereEmbed(ctx context.Context, inst *instance, in openai.EmbeddingsRequest) ([][]float64, int, error) {
	var vectors [][]float64
	used := 0
	if in.Dimensions != nil && !strings.Contains(in.Model, "cohere.embed-v4") {
		return nil, 0, openai.InvalidRequest("dimensions", fmt.Sprintf("model %q has a fixed dimension", in.Model))
	}
	for start := 0; start < len(in.Input.Texts); start += cohereBatch {
		batch := in.Input.Texts[start:min(start+cohereBatch, len(in.Input.Texts))]
		body, err := json.Marshal(cohereRequest{Texts: batch, InputType: "search_document", OutputDimension: in.Dimensions})
		if err != nil {
			return nil, 0, fmt.Errorf("encode cohere request: %w", err)
		}
		raw, tokens, err := invokeJSON(ctx, inst, in.Model, body)
		if err != nil {
			return nil, 0, err
		}
		var r cohereResponse
		if err := json.Unmarshal(raw, &r); err != nil || len(r.Embeddings) != len(batch) {
			return nil, 0, streamCut(fmt.Sprintf("with a Cohere response holding %d embeddings for %d texts", len(r.Embeddings), len(batch)))
		}
		vectors = append(vectors, r.Embeddings...)
		used += tokens
	}
	return vectors, used, nil
}

// invokeJSON calls InvokeModel with a JSON body and returns the response
// body and the input token count Bedrock reports in its headers.
func invokeJSON(ctx context.Context, inst *instance, model string, body []byte) ([]byte, int, error) {
	out, err := inst.client.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{
		ModelId: aws.String(model), Body: body,
		ContentType: aws.String("application/json"), Accept: aws.String("application/json"),
	})
	if err != nil {
		return nil, 0, clientError(err)
	}
	tokens := 0
	if raw, ok := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response); ok {
		tokens, _ = strconv.Atoi(raw.Header.Get("X-Amzn-Bedrock-Input-Token-Count"))
	}
	return out.Body, tokens, nil
}

// encodeVector encodes a vector as a JSON array of floats or, for base64,
// as little-endian float32 values the way OpenAI does.
func encodeVector(v []float64, format string) (json.RawMessage, error) {
	if format != "base64" {
		return json.Marshal(v)
	}
	buf := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(float32(f)))
	}
	return json.Marshal(base64.StdEncoding.EncodeToString(buf))
}
