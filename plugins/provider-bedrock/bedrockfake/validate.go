package bedrockfake

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// converseRequest is the part of a Converse body the fake checks.
type converseRequest struct {
	Messages []struct {
		Role    string           `json:"role"`
		Content []map[string]any `json:"content"`
	} `json:"messages"`
	System          []map[string]any `json:"system"`
	InferenceConfig *struct {
		MaxTokens *int `json:"maxTokens"`
	} `json:"inferenceConfig"`
	ToolConfig *struct {
		Tools []struct {
			ToolSpec *struct {
				Name string `json:"name"`
			} `json:"toolSpec"`
		} `json:"tools"`
		ToolChoice map[string]json.RawMessage `json:"toolChoice"`
	} `json:"toolConfig"`
}

// documentNameRE is Bedrock's document-name alphabet.
var documentNameRE = regexp.MustCompile(`^[A-Za-z0-9\-\(\)\[\] ]{1,200}$`)

var imageFormats = []string{"png", "jpeg", "gif", "webp"}

var documentFormats = []string{"pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md"}

func invalid(format string, args ...any) *Failure {
	return &Failure{Code: "ValidationException", Status: 400, Message: fmt.Sprintf(format, args...)}
}

// validateConverse applies Bedrock's Converse request rules.
func validateConverse(body []byte) *Failure {
	var req converseRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return invalid("Malformed input request: %v", err)
	}
	if len(req.Messages) == 0 {
		return invalid("A conversation must start with a user message. Try again with a conversation that starts with a user message.")
	}
	if req.InferenceConfig != nil && req.InferenceConfig.MaxTokens != nil && *req.InferenceConfig.MaxTokens < 1 {
		return invalid("The maximum tokens you requested exceeds the model limit or is below 1.")
	}
	tools := map[string]bool{}
	if tc := req.ToolConfig; tc != nil {
		if len(tc.Tools) == 0 {
			return invalid("The toolConfig field must be defined with at least one tool.")
		}
		for _, t := range tc.Tools {
			if t.ToolSpec != nil {
				tools[t.ToolSpec.Name] = true
			}
		}
		if raw, ok := tc.ToolChoice["tool"]; ok {
			var named struct {
				Name string `json:"name"`
			}
			if json.Unmarshal(raw, &named) != nil || !tools[named.Name] {
				return invalid("The tool %q in toolChoice is not defined in toolConfig.tools.", named.Name)
			}
		}
	}
	var pending []string // toolUse ids of the previous assistant turn
	docNames := map[string]bool{}
	for i, m := range req.Messages {
		switch {
		case i == 0 && m.Role != "user":
			return invalid("A conversation must start with a user message. Try again with a conversation that starts with a user message.")
		case m.Role != "user" && m.Role != "assistant":
			return invalid("messages.%d.role: member must satisfy enum value set: [user, assistant]", i)
		case i > 0 && m.Role == req.Messages[i-1].Role:
			return invalid("A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.")
		case len(m.Content) == 0:
			return invalid("The content field in the Message object at messages.%d is empty. Add a ContentBlock object to the content field and try again.", i)
		}
		var uses, results []string
		for j, block := range m.Content {
			at := fmt.Sprintf("messages.%d.content.%d", i, j)
			if fl := validateBlock(at, m.Role, block, docNames); fl != nil {
				return fl
			}
			if tu, ok := block["toolUse"].(map[string]any); ok {
				if req.ToolConfig == nil {
					return invalid("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
				}
				uses = append(uses, fmt.Sprint(tu["toolUseId"]))
			}
			if tr, ok := block["toolResult"].(map[string]any); ok {
				if req.ToolConfig == nil {
					return invalid("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
				}
				results = append(results, fmt.Sprint(tr["toolUseId"]))
			}
		}
		if m.Role == "user" {
			if len(results) > len(pending) {
				return invalid("The number of toolResult blocks at messages.%d.content exceeds the number of toolUse blocks of previous turn.", i)
			}
			var missing []string
			for _, id := range pending {
				if !slices.Contains(results, id) {
					missing = append(missing, id)
				}
			}
			if len(missing) > 0 {
				return invalid("Expected toolResult blocks at messages.%d.content for the following Ids: %s", i, strings.Join(missing, ", "))
			}
			pending = nil
		} else {
			pending = uses
		}
	}
	return nil
}

// validateBlock checks one content block.
func validateBlock(at, role string, block map[string]any, docNames map[string]bool) *Failure {
	if len(block) != 1 {
		return invalid("%s: a ContentBlock must set exactly one member.", at)
	}
	if t, ok := block["text"].(string); ok && strings.TrimSpace(t) == "" {
		return invalid("The text field in the ContentBlock object at %s is blank. Add text to the text field, and try again.", at)
	}
	if img, ok := block["image"].(map[string]any); ok {
		if !slices.Contains(imageFormats, fmt.Sprint(img["format"])) {
			return invalid("%s.image.format: member must satisfy enum value set: [png, jpeg, gif, webp]", at)
		}
		if src, _ := img["source"].(map[string]any); src == nil || src["bytes"] == nil {
			return invalid("%s.image.source: bytes are required", at)
		}
	}
	if doc, ok := block["document"].(map[string]any); ok {
		if role != "user" {
			return invalid("%s: documents are only allowed in user messages.", at)
		}
		name, _ := doc["name"].(string)
		if !documentNameRE.MatchString(name) || strings.Contains(name, "  ") {
			return invalid("The value at %s.document.name failed to satisfy constraint: The document file name can only contain alphanumeric characters, whitespace characters, hyphens, parentheses, and square brackets. The name can't contain more than one consecutive whitespace character.", at)
		}
		if docNames[name] {
			return invalid("%s.document.name: document names must be unique; %q is used twice.", at, name)
		}
		docNames[name] = true
		if !slices.Contains(documentFormats, fmt.Sprint(doc["format"])) {
			return invalid("%s.document.format: member must satisfy enum value set: [%s]", at, strings.Join(documentFormats, ", "))
		}
	}
	if _, ok := block["toolUse"]; ok && role != "assistant" {
		return invalid("%s: toolUse blocks are only allowed in assistant messages.", at)
	}
	if _, ok := block["toolResult"]; ok && role != "user" {
		return invalid("%s: toolResult blocks are only allowed in user messages.", at)
	}
	return nil
}

// anthropicRequest is the part of an Anthropic InvokeModel body the fake
// checks.
type anthropicRequest struct {
	AnthropicVersion string `json:"anthropic_version"`
	MaxTokens        *int   `json:"max_tokens"`
	Messages         []struct {
		Role string `json:"role"`
	} `json:"messages"`
}

// validateAnthropic applies the rules of Anthropic bodies on Bedrock.
func validateAnthropic(body []byte) *Failure {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return invalid("Malformed input request: %v, please reformat your input and try again.", err)
	}
	for _, k := range []string{"model", "stream"} {
		if _, ok := raw[k]; ok {
			return invalid("Malformed input request: #: extraneous key [%s] is not permitted, please reformat your input and try again.", k)
		}
	}
	var req anthropicRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return invalid("Malformed input request: %v, please reformat your input and try again.", err)
	}
	if req.AnthropicVersion != "bedrock-2023-05-31" {
		return invalid("Malformed input request: #: required key [anthropic_version] not found or invalid, please reformat your input and try again.")
	}
	if req.MaxTokens == nil || *req.MaxTokens < 1 {
		return invalid("Malformed input request: #: required key [max_tokens] not found, please reformat your input and try again.")
	}
	if len(req.Messages) == 0 || req.Messages[0].Role != "user" {
		return invalid("messages: first message must use the \"user\" role")
	}
	for i := 1; i < len(req.Messages); i++ {
		if req.Messages[i].Role == req.Messages[i-1].Role {
			return invalid("messages: roles must alternate between \"user\" and \"assistant\"")
		}
	}
	return nil
}
