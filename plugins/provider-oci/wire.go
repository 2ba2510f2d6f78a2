package main

import "encoding/json"

// This file holds the OCI Generative AI inference wire types the plugin
// sends and receives (API version 20231130). Only the fields the
// translation uses are declared.

// API formats of chatRequest.apiFormat.
const (
	formatGeneric = "GENERIC"
	formatCohere  = "COHERE"
)

// Serving types of servingMode.servingType.
const (
	servingOnDemand  = "ON_DEMAND"
	servingDedicated = "DEDICATED"
)

// chatDetails is the body of POST /20231130/actions/chat.
type chatDetails struct {
	CompartmentID string          `json:"compartmentId"`
	ServingMode   servingMode     `json:"servingMode"`
	ChatRequest   json.RawMessage `json:"chatRequest"`
}

// servingMode selects an on-demand model or a dedicated endpoint.
type servingMode struct {
	ServingType string `json:"servingType"`
	ModelID     string `json:"modelId,omitempty"`
	EndpointID  string `json:"endpointId,omitempty"`
}

// streamOptions is chatRequest.streamOptions.
type streamOptions struct {
	IsIncludeUsage bool `json:"isIncludeUsage"`
}

// genericRequest is a GENERIC chatRequest.
type genericRequest struct {
	APIFormat           string          `json:"apiFormat"`
	Messages            []genericMsg    `json:"messages"`
	IsStream            bool            `json:"isStream"`
	StreamOptions       *streamOptions  `json:"streamOptions,omitempty"`
	MaxTokens           *int            `json:"maxTokens,omitempty"`
	MaxCompletionTokens *int            `json:"maxCompletionTokens,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"topP,omitempty"`
	FrequencyPenalty    *float64        `json:"frequencyPenalty,omitempty"`
	PresencePenalty     *float64        `json:"presencePenalty,omitempty"`
	Stop                []string        `json:"stop,omitempty"`
	Seed                *int64          `json:"seed,omitempty"`
	NumGenerations      *int            `json:"numGenerations,omitempty"`
	LogProbs            *int            `json:"logProbs,omitempty"`
	LogitBias           json.RawMessage `json:"logitBias,omitempty"`
	Tools               []genericTool   `json:"tools,omitempty"`
	ToolChoice          *genericChoice  `json:"toolChoice,omitempty"`
	IsParallelToolCalls *bool           `json:"isParallelToolCalls,omitempty"`
	ResponseFormat      *responseFormat `json:"responseFormat,omitempty"`
	ReasoningEffort     string          `json:"reasoningEffort,omitempty"`
}

// genericMsg is a GENERIC message of any role, in a request, a response
// or a stream event.
type genericMsg struct {
	Role       string            `json:"role,omitempty"`
	Content    []genericContent  `json:"content,omitempty"`
	ToolCalls  []genericToolCall `json:"toolCalls,omitempty"`
	ToolCallID string            `json:"toolCallId,omitempty"`
	Refusal    *string           `json:"refusal,omitempty"`
}

// genericContent is one typed content part.
type genericContent struct {
	Type        string     `json:"type"`
	Text        *string    `json:"text,omitempty"`
	ImageURL    *urlDetail `json:"imageUrl,omitempty"`
	DocumentURL *urlDetail `json:"documentUrl,omitempty"`
}

// urlDetail is an imageUrl or documentUrl object.
type urlDetail struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

// genericToolCall is a FUNCTION tool call. In stream events every field
// may be absent.
type genericToolCall struct {
	ID        string `json:"id,omitempty"`
	Type      string `json:"type,omitempty"`
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// genericTool is a FUNCTION tool definition.
type genericTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

// genericChoice is toolChoice.
type genericChoice struct {
	Type string `json:"type"`
	Name string `json:"name,omitempty"`
}

// responseFormat is the GENERIC or COHERE responseFormat.
type responseFormat struct {
	Type       string          `json:"type"`
	JSONSchema *jsonSchema     `json:"jsonSchema,omitempty"`
	Schema     json.RawMessage `json:"schema,omitempty"`
}

// jsonSchema is a JSON_SCHEMA response format's schema; OCI spells strict
// isStrict and refuses unknown keys.
type jsonSchema struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema,omitempty"`
	IsStrict    *bool           `json:"isStrict,omitempty"`
}

// cohereRequest is a COHERE chatRequest.
type cohereRequest struct {
	APIFormat        string             `json:"apiFormat"`
	Message          string             `json:"message"`
	ChatHistory      []cohereMsg        `json:"chatHistory,omitempty"`
	PreambleOverride string             `json:"preambleOverride,omitempty"`
	Documents        []cohereDocument   `json:"documents,omitempty"`
	IsStream         bool               `json:"isStream"`
	StreamOptions    *streamOptions     `json:"streamOptions,omitempty"`
	MaxTokens        int                `json:"maxTokens"`
	Temperature      *float64           `json:"temperature,omitempty"`
	TopP             *float64           `json:"topP,omitempty"`
	FrequencyPenalty *float64           `json:"frequencyPenalty,omitempty"`
	PresencePenalty  *float64           `json:"presencePenalty,omitempty"`
	Seed             *int64             `json:"seed,omitempty"`
	StopSequences    []string           `json:"stopSequences,omitempty"`
	Tools            []cohereTool       `json:"tools,omitempty"`
	ToolResults      []cohereToolResult `json:"toolResults,omitempty"`
	ResponseFormat   *responseFormat    `json:"responseFormat,omitempty"`
}

// cohereMsg is one chatHistory entry.
type cohereMsg struct {
	Role        string             `json:"role"`
	Message     string             `json:"message,omitempty"`
	ToolCalls   []cohereToolCall   `json:"toolCalls,omitempty"`
	ToolResults []cohereToolResult `json:"toolResults,omitempty"`
}

// cohereDocument is a grounding document.
type cohereDocument struct {
	Title string `json:"title,omitempty"`
	Text  string `json:"text"`
}

// cohereToolCall is a Cohere tool call: no id, parameters as an object.
type cohereToolCall struct {
	Name       string          `json:"name"`
	Parameters json.RawMessage `json:"parameters"`
}

// cohereToolResult answers one call.
type cohereToolResult struct {
	Call    cohereToolCall   `json:"call"`
	Outputs []map[string]any `json:"outputs"`
}

// cohereTool is a Cohere tool definition.
type cohereTool struct {
	Name                 string                 `json:"name"`
	Description          string                 `json:"description"`
	ParameterDefinitions map[string]cohereParam `json:"parameterDefinitions,omitempty"`
}

// cohereParam is one entry of parameterDefinitions; Type is a Python type
// name.
type cohereParam struct {
	Type        string `json:"type"`
	Description string `json:"description,omitempty"`
	IsRequired  bool   `json:"isRequired,omitempty"`
}

// chatResult is the response of a non-streamed chat.
type chatResult struct {
	ModelID      string          `json:"modelId"`
	ModelVersion string          `json:"modelVersion"`
	ChatResponse json.RawMessage `json:"chatResponse"`
}

// genericResponse is a GENERIC chatResponse.
type genericResponse struct {
	APIFormat   string              `json:"apiFormat"`
	TimeCreated string              `json:"timeCreated"`
	Choices     []genericChoiceResp `json:"choices"`
	Usage       *usage              `json:"usage"`
}

// genericChoiceResp is one choice of a GENERIC chatResponse.
type genericChoiceResp struct {
	Index        int         `json:"index"`
	Message      *genericMsg `json:"message"`
	FinishReason string      `json:"finishReason"`
}

// cohereResponse is a COHERE chatResponse and a COHERE stream event.
type cohereResponse struct {
	APIFormat    string           `json:"apiFormat"`
	Text         *string          `json:"text"`
	FinishReason string           `json:"finishReason"`
	ToolCalls    []cohereToolCall `json:"toolCalls"`
	ErrorMessage string           `json:"errorMessage"`
	Usage        *usage           `json:"usage"`
}

// usage is OCI's token accounting; completionTokens may be absent.
type usage struct {
	PromptTokens        int `json:"promptTokens"`
	CompletionTokens    int `json:"completionTokens"`
	TotalTokens         int `json:"totalTokens"`
	PromptTokensDetails *struct {
		CachedTokens int `json:"cachedTokens"`
	} `json:"promptTokensDetails"`
	CompletionTokensDetails *struct {
		ReasoningTokens int `json:"reasoningTokens"`
	} `json:"completionTokensDetails"`
}

// genericEvent is one event of a GENERIC stream: a message delta, a
// finish, or a usage-only event.
type genericEvent struct {
	Index        *int        `json:"index"`
	Message      *genericMsg `json:"message"`
	FinishReason string      `json:"finishReason"`
	Usage        *usage      `json:"usage"`
}

// ociError is OCI's error body.
type ociError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// embedDetails is the body of POST /20231130/actions/embedText.
type embedDetails struct {
	CompartmentID    string      `json:"compartmentId"`
	ServingMode      servingMode `json:"servingMode"`
	Inputs           []string    `json:"inputs"`
	InputType        string      `json:"inputType,omitempty"`
	Truncate         string      `json:"truncate,omitempty"`
	OutputDimensions *int        `json:"outputDimensions,omitempty"`
}

// embedResult is the response of embedText.
type embedResult struct {
	ID                   string      `json:"id"`
	Embeddings           [][]float64 `json:"embeddings"`
	ModelID              string      `json:"modelId"`
	InputTextTokenCounts []int       `json:"inputTextTokenCounts"`
	Usage                *usage      `json:"usage"`
}

// modelCollection is the management API's GET /20231130/models.
type modelCollection struct {
	Items []struct {
		ID             string   `json:"id"`
		DisplayName    string   `json:"displayName"`
		Vendor         string   `json:"vendor"`
		Capabilities   []string `json:"capabilities"`
		LifecycleState string   `json:"lifecycleState"`
		TimeCreated    string   `json:"timeCreated"`
	} `json:"items"`
}
