package main

import "encoding/json"

// The Vertex AI Gemini wire types: the subset of GenerateContentRequest,
// GenerateContentResponse, PredictRequest and google.rpc.Status the
// plugin reads or writes, with the API's lowerCamel JSON names.

// generateRequest is the body of :generateContent and
// :streamGenerateContent.
type generateRequest struct {
	Contents          []content         `json:"contents"`
	SystemInstruction *content          `json:"systemInstruction,omitempty"`
	Tools             []toolDecl        `json:"tools,omitempty"`
	ToolConfig        *toolConfig       `json:"toolConfig,omitempty"`
	GenerationConfig  *generationConfig `json:"generationConfig,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
}

// content is one turn of the conversation.
type content struct {
	Role  string `json:"role,omitempty"`
	Parts []part `json:"parts"`
}

// part is one piece of a content; exactly one of its data fields is set.
type part struct {
	Text             string            `json:"text,omitempty"`
	Thought          bool              `json:"thought,omitempty"`
	ThoughtSignature string            `json:"thoughtSignature,omitempty"`
	InlineData       *blob             `json:"inlineData,omitempty"`
	FileData         *fileData         `json:"fileData,omitempty"`
	FunctionCall     *functionCall     `json:"functionCall,omitempty"`
	FunctionResponse *functionResponse `json:"functionResponse,omitempty"`
}

// blob is inline bytes, base64 in JSON.
type blob struct {
	MIMEType string `json:"mimeType"`
	Data     string `json:"data"`
}

// fileData points at a file by URI (gs:// or https://).
type fileData struct {
	MIMEType string `json:"mimeType"`
	FileURI  string `json:"fileUri"`
}

// functionCall is a call the model makes; Gemini gives it no id.
type functionCall struct {
	ID   string          `json:"id,omitempty"`
	Name string          `json:"name"`
	Args json.RawMessage `json:"args,omitempty"`
}

// functionResponse is the result of a call, sent back by the client.
type functionResponse struct {
	Name     string          `json:"name"`
	Response json.RawMessage `json:"response"`
}

// toolDecl is one entry of tools.
type toolDecl struct {
	FunctionDeclarations []functionDecl `json:"functionDeclarations"`
}

// functionDecl declares a function the model may call.
type functionDecl struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

// toolConfig is toolConfig.
type toolConfig struct {
	FunctionCallingConfig *functionCallingConfig `json:"functionCallingConfig,omitempty"`
}

// functionCallingConfig restricts function calling.
type functionCallingConfig struct {
	Mode                 string   `json:"mode"`
	AllowedFunctionNames []string `json:"allowedFunctionNames,omitempty"`
}

// generationConfig carries the sampling parameters.
type generationConfig struct {
	Temperature      *float64        `json:"temperature,omitempty"`
	TopP             *float64        `json:"topP,omitempty"`
	CandidateCount   *int            `json:"candidateCount,omitempty"`
	MaxOutputTokens  *int            `json:"maxOutputTokens,omitempty"`
	StopSequences    []string        `json:"stopSequences,omitempty"`
	PresencePenalty  *float64        `json:"presencePenalty,omitempty"`
	FrequencyPenalty *float64        `json:"frequencyPenalty,omitempty"`
	Seed             *int64          `json:"seed,omitempty"`
	ResponseMIMEType string          `json:"responseMimeType,omitempty"`
	ResponseSchema   json.RawMessage `json:"responseSchema,omitempty"`
	ResponseLogprobs bool            `json:"responseLogprobs,omitempty"`
	Logprobs         *int            `json:"logprobs,omitempty"`
}

// generateResponse is a GenerateContentResponse: the whole answer, or one
// event of a stream.
type generateResponse struct {
	Candidates     []candidate     `json:"candidates"`
	PromptFeedback *promptFeedback `json:"promptFeedback,omitempty"`
	UsageMetadata  *usageMetadata  `json:"usageMetadata,omitempty"`
	ModelVersion   string          `json:"modelVersion,omitempty"`
	ResponseID     string          `json:"responseId,omitempty"`
	// Error is set when a stream ends with an error object instead of a
	// response.
	Error *rpcStatus `json:"error,omitempty"`
}

// candidate is one answer.
type candidate struct {
	Index         *int     `json:"index,omitempty"`
	Content       *content `json:"content,omitempty"`
	FinishReason  string   `json:"finishReason,omitempty"`
	FinishMessage string   `json:"finishMessage,omitempty"`
}

// promptFeedback says why a prompt was blocked.
type promptFeedback struct {
	BlockReason        string `json:"blockReason,omitempty"`
	BlockReasonMessage string `json:"blockReasonMessage,omitempty"`
}

// usageMetadata is the token accounting; in streams every event repeats
// the running total.
type usageMetadata struct {
	PromptTokenCount        int `json:"promptTokenCount"`
	CandidatesTokenCount    int `json:"candidatesTokenCount"`
	TotalTokenCount         int `json:"totalTokenCount"`
	ThoughtsTokenCount      int `json:"thoughtsTokenCount"`
	CachedContentTokenCount int `json:"cachedContentTokenCount"`
}

// rpcStatus is a google.rpc.Status as the JSON API renders it.
type rpcStatus struct {
	Code    int               `json:"code"`
	Message string            `json:"message"`
	Status  string            `json:"status"`
	Details []json.RawMessage `json:"details,omitempty"`
}

// errorEnvelope is the body of an error response.
type errorEnvelope struct {
	Error *rpcStatus `json:"error"`
}

// predictRequest is the body of :predict for text embedding models.
type predictRequest struct {
	Instances  []embedInstance `json:"instances"`
	Parameters *embedParams    `json:"parameters,omitempty"`
}

// embedInstance is one text to embed.
type embedInstance struct {
	Content  string `json:"content"`
	TaskType string `json:"task_type,omitempty"`
}

// embedParams are the :predict parameters.
type embedParams struct {
	AutoTruncate         *bool `json:"autoTruncate,omitempty"`
	OutputDimensionality *int  `json:"outputDimensionality,omitempty"`
}

// predictResponse is the answer of :predict.
type predictResponse struct {
	Predictions []prediction `json:"predictions"`
}

// prediction is one embedding of a :predict answer.
type prediction struct {
	Embeddings struct {
		Values     []float64 `json:"values"`
		Statistics struct {
			TokenCount float64 `json:"token_count"`
			Truncated  bool    `json:"truncated"`
		} `json:"statistics"`
	} `json:"embeddings"`
}

// modelList is a page of GET v1beta1/publishers/google/models.
type modelList struct {
	PublisherModels []struct {
		Name        string `json:"name"`
		VersionID   string `json:"versionId"`
		LaunchStage string `json:"launchStage"`
	} `json:"publisherModels"`
	NextPageToken string `json:"nextPageToken"`
}
