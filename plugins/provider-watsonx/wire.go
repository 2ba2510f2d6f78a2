package main

import "encoding/json"

// The watsonx.ai text chat API's wire types, as far as the plugin reads
// and writes them. The shapes are OpenAI-like; the differences are the
// model and scope fields, the split of tool_choice into
// tool_choice_option and tool_choice, and the extra response fields that
// are dropped on the way back.

// chatBody is the body of POST /ml/v1/text/chat and /text/chat_stream.
type chatBody struct {
	ModelID          string          `json:"model_id,omitempty"`
	ProjectID        string          `json:"project_id,omitempty"`
	SpaceID          string          `json:"space_id,omitempty"`
	Messages         []message       `json:"messages"`
	Tools            []tool          `json:"tools,omitempty"`
	ToolChoiceOption string          `json:"tool_choice_option,omitempty"`
	ToolChoice       *toolChoice     `json:"tool_choice,omitempty"`
	MaxTokens        *int            `json:"max_tokens,omitempty"`
	Temperature      *float64        `json:"temperature,omitempty"`
	TopP             *float64        `json:"top_p,omitempty"`
	N                *int            `json:"n,omitempty"`
	Stop             []string        `json:"stop,omitempty"`
	Seed             *int64          `json:"seed,omitempty"`
	FrequencyPenalty *float64        `json:"frequency_penalty,omitempty"`
	PresencePenalty  *float64        `json:"presence_penalty,omitempty"`
	Logprobs         *bool           `json:"logprobs,omitempty"`
	TopLogprobs      *int            `json:"top_logprobs,omitempty"`
	ResponseFormat   json.RawMessage `json:"response_format,omitempty"`
	ReasoningEffort  string          `json:"reasoning_effort,omitempty"`
}

// message is one chat message. Content is a JSON string, an array of
// parts, or absent (an assistant turn that only calls tools).
type message struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content,omitempty"`
	Name       string          `json:"name,omitempty"`
	ToolCalls  []toolCall      `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
}

// part is one element of a user message's content array.
type part struct {
	Type     string    `json:"type"`
	Text     string    `json:"text,omitempty"`
	ImageURL *imageURL `json:"image_url,omitempty"`
}

type imageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

// tool declares a function.
type tool struct {
	Type     string   `json:"type"`
	Function function `json:"function"`
}

type function struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

// toolChoice is the object form of tool_choice: one named function.
type toolChoice struct {
	Type     string `json:"type"`
	Function struct {
		Name string `json:"name"`
	} `json:"function"`
}

// toolCall is a call in a response, a stream delta or a request's
// assistant turn.
type toolCall struct {
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function functionCall `json:"function"`
}

type functionCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// usage is the token accounting of a response or final chunk.
type usage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

// chatResponse is a non-streamed chat response.
type chatResponse struct {
	ID      string `json:"id"`
	ModelID string `json:"model_id"`
	Model   string `json:"model"`
	Created int64  `json:"created"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role             string     `json:"role"`
			Content          *string    `json:"content"`
			ReasoningContent *string    `json:"reasoning_content"`
			Refusal          *string    `json:"refusal"`
			ToolCalls        []toolCall `json:"tool_calls"`
		} `json:"message"`
		FinishReason string          `json:"finish_reason"`
		Logprobs     json.RawMessage `json:"logprobs"`
	} `json:"choices"`
	Usage *usage `json:"usage"`
}

// chatChunk is the data of one stream event.
type chatChunk struct {
	ID      string `json:"id"`
	ModelID string `json:"model_id"`
	Model   string `json:"model"`
	Created int64  `json:"created"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Role             string     `json:"role"`
			Content          *string    `json:"content"`
			ReasoningContent *string    `json:"reasoning_content"`
			Refusal          *string    `json:"refusal"`
			ToolCalls        []toolCall `json:"tool_calls"`
		} `json:"delta"`
		Logprobs     json.RawMessage `json:"logprobs"`
		FinishReason *string         `json:"finish_reason"`
	} `json:"choices"`
	Usage *usage `json:"usage"`
	// Errors is set when the event is an error.
	Errors     []apiError `json:"errors"`
	StatusCode int        `json:"status_code"`
}

// errorBody is watsonx.ai's error response.
type errorBody struct {
	Errors     []apiError `json:"errors"`
	Trace      string     `json:"trace"`
	StatusCode int        `json:"status_code"`
}

type apiError struct {
	Code     string `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
}

// embeddingsBody is the body of POST /ml/v1/text/embeddings.
type embeddingsBody struct {
	Inputs    []string `json:"inputs"`
	ModelID   string   `json:"model_id"`
	ProjectID string   `json:"project_id,omitempty"`
	SpaceID   string   `json:"space_id,omitempty"`
}

// embeddingsResponse is its answer.
type embeddingsResponse struct {
	ModelID string `json:"model_id"`
	Results []struct {
		Embedding []float64 `json:"embedding"`
	} `json:"results"`
	InputTokenCount int `json:"input_token_count"`
}

// modelSpecs is a page of GET /ml/v1/foundation_model_specs.
type modelSpecs struct {
	TotalCount int `json:"total_count"`
	Limit      int `json:"limit"`
	Next       *struct {
		Href string `json:"href"`
	} `json:"next"`
	Resources []struct {
		ModelID   string `json:"model_id"`
		Label     string `json:"label"`
		Provider  string `json:"provider"`
		Functions []struct {
			ID string `json:"id"`
		} `json:"functions"`
	} `json:"resources"`
}
