package openai

import (
	"encoding/json"
	"errors"
)

// EmbeddingsRequest is the body of POST /v1/embeddings.
type EmbeddingsRequest struct {
	Model          string `json:"model"`
	Input          Input  `json:"input"`
	EncodingFormat string `json:"encoding_format,omitempty"`
	Dimensions     *int   `json:"dimensions,omitempty"`
	User           string `json:"user,omitempty"`
}

// Input is embeddings input: a string or an array of strings. Token-array
// inputs are kept raw in Tokens.
type Input struct {
	Texts  []string
	Single bool
	Tokens json.RawMessage
}

// MarshalJSON encodes the form the input came in.
func (in Input) MarshalJSON() ([]byte, error) {
	if in.Tokens != nil {
		return in.Tokens, nil
	}
	if in.Single && len(in.Texts) == 1 {
		return json.Marshal(in.Texts[0])
	}
	return json.Marshal(in.Texts)
}

// UnmarshalJSON accepts a string, an array of strings, or token arrays.
func (in *Input) UnmarshalJSON(b []byte) error {
	*in = Input{}
	if len(b) > 0 && b[0] == '"' {
		in.Single = true
		in.Texts = make([]string, 1)
		return json.Unmarshal(b, &in.Texts[0])
	}
	if len(b) == 0 || b[0] != '[' {
		return errors.New("input must be a string or an array")
	}
	if err := json.Unmarshal(b, &in.Texts); err != nil {
		in.Texts = nil
		in.Tokens = append(json.RawMessage(nil), b...)
	}
	return nil
}

// EmbeddingsResponse is the response of POST /v1/embeddings.
type EmbeddingsResponse struct {
	Object string      `json:"object"`
	Data   []Embedding `json:"data"`
	Model  string      `json:"model"`
	Usage  Usage       `json:"usage"`
}

// Embedding is one vector; Embedding holds []float64 or a base64 string.
type Embedding struct {
	Object    string          `json:"object"`
	Index     int             `json:"index"`
	Embedding json.RawMessage `json:"embedding"`
}

// Model is one entry of GET /v1/models.
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// ModelList is the response of GET /v1/models.
type ModelList struct {
	Object string  `json:"object"`
	Data   []Model `json:"data"`
}
