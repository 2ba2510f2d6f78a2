package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// GENERIC roles and content types.
const (
	roleSystem    = "SYSTEM"
	roleUser      = "USER"
	roleAssistant = "ASSISTANT"
	roleTool      = "TOOL"

	contentText     = "TEXT"
	contentImage    = "IMAGE"
	contentDocument = "DOCUMENT"
)

// genericRequestFor maps an OpenAI chat request to a GENERIC chatRequest.
func genericRequestFor(chat *openai.ChatRequest, req *provider.Request, maxTokens int, stream bool) (*genericRequest, error) {
	g := &genericRequest{
		APIFormat:        formatGeneric,
		IsStream:         stream,
		Temperature:      chat.Temperature,
		TopP:             chat.TopP,
		FrequencyPenalty: chat.FrequencyPenalty,
		PresencePenalty:  chat.PresencePenalty,
		Seed:             chat.Seed,
		LogitBias:        chat.LogitBias,
	}
	// OCI's own default output cap is tiny, so a value is always sent;
	// OpenAI reasoning models hosted on OCI take maxCompletionTokens.
	if strings.HasPrefix(strings.ToLower(chat.Model), "openai.") {
		g.MaxCompletionTokens = &maxTokens
	} else {
		g.MaxTokens = &maxTokens
	}
	if stream && chat.IncludeUsage() {
		g.StreamOptions = &streamOptions{IsIncludeUsage: true}
	}
	for _, st := range chat.Stop {
		if st != "" {
			g.Stop = append(g.Stop, st)
		}
	}
	if chat.N != nil && *chat.N > 1 {
		n := *chat.N
		g.NumGenerations = &n
	}
	if chat.ReasoningEffort != "" {
		g.ReasoningEffort = strings.ToUpper(chat.ReasoningEffort)
	}
	for i, m := range chat.Messages {
		msg, err := genericMessage(i, m, req)
		if err != nil {
			return nil, err
		}
		if msg != nil {
			g.Messages = append(g.Messages, *msg)
		}
	}
	if len(g.Messages) == 0 {
		return nil, openai.InvalidRequest("messages", "messages must contain at least one message with content")
	}
	for i, t := range chat.Tools {
		if t.Type != "function" {
			return nil, openai.InvalidRequest(fmt.Sprintf("tools[%d].type", i), fmt.Sprintf("tool type %q is not supported; use function", t.Type))
		}
		if t.Function.Name == "" {
			return nil, openai.InvalidRequest(fmt.Sprintf("tools[%d].function.name", i), "tools need a function name")
		}
		params := t.Function.Parameters
		if len(bytes.TrimSpace(params)) == 0 || string(params) == "null" {
			params = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		g.Tools = append(g.Tools, genericTool{Type: "FUNCTION", Name: t.Function.Name, Description: t.Function.Description, Parameters: params})
	}
	if tc := chat.ToolChoice; tc != nil && len(g.Tools) > 0 {
		switch {
		case tc.Function != "":
			g.ToolChoice = &genericChoice{Type: "FUNCTION", Name: tc.Function}
		case tc.Mode == "auto" || tc.Mode == "none" || tc.Mode == "required":
			g.ToolChoice = &genericChoice{Type: strings.ToUpper(tc.Mode)}
		default:
			return nil, openai.InvalidRequest("tool_choice", fmt.Sprintf("unknown tool_choice %q", tc.Mode))
		}
	}
	if chat.ParallelToolCalls != nil && len(g.Tools) > 0 {
		g.IsParallelToolCalls = chat.ParallelToolCalls
	}
	rf, err := genericFormat(chat.ResponseFormat)
	if err != nil {
		return nil, err
	}
	g.ResponseFormat = rf
	return g, nil
}

// genericFormat maps response_format; json_schema's strict is spelled
// isStrict on OCI, which refuses unknown keys.
func genericFormat(rf *openai.ResponseFormat) (*responseFormat, error) {
	if rf == nil || rf.Type == "" {
		return nil, nil
	}
	switch rf.Type {
	case "text":
		return &responseFormat{Type: "TEXT"}, nil
	case "json_object":
		return &responseFormat{Type: "JSON_OBJECT"}, nil
	case "json_schema":
		js := rf.JSONSchema
		if js == nil || len(bytes.TrimSpace(js.Schema)) == 0 {
			return nil, openai.InvalidRequest("response_format.json_schema.schema", "json_schema needs a schema")
		}
		name := js.Name
		if name == "" {
			name = "response"
		}
		return &responseFormat{Type: "JSON_SCHEMA", JSONSchema: &jsonSchema{Name: name, Description: js.Description, Schema: js.Schema, IsStrict: js.Strict}}, nil
	}
	return nil, openai.InvalidRequest("response_format.type", fmt.Sprintf("response_format type %q is not supported", rf.Type))
}

// genericMessage maps OpenAI message i; nil means nothing to send.
func genericMessage(i int, m openai.Message, req *provider.Request) (*genericMsg, error) {
	param := fmt.Sprintf("messages[%d]", i)
	text := func(s string) []genericContent {
		if s == "" {
			return nil
		}
		return []genericContent{{Type: contentText, Text: &s}}
	}
	switch m.Role {
	case openai.RoleSystem, openai.RoleDeveloper:
		s, err := textOnly(param, m.Content)
		if err != nil || s == "" {
			return nil, err
		}
		return &genericMsg{Role: roleSystem, Content: text(s)}, nil
	case openai.RoleUser:
		content, err := genericUserContent(param, m.Content, req)
		if err != nil || len(content) == 0 {
			return nil, err
		}
		return &genericMsg{Role: roleUser, Content: content}, nil
	case openai.RoleAssistant:
		s, err := textOnly(param, m.Content)
		if err != nil {
			return nil, err
		}
		msg := &genericMsg{Role: roleAssistant, Content: text(s)}
		for j, tc := range m.ToolCalls {
			pp := fmt.Sprintf("%s.tool_calls[%d]", param, j)
			if tc.ID == "" || tc.Function.Name == "" {
				return nil, openai.InvalidRequest(pp, "tool calls need an id and a function name")
			}
			args, err := compactObject(pp+".function.arguments", tc.Function.Arguments)
			if err != nil {
				return nil, err
			}
			msg.ToolCalls = append(msg.ToolCalls, genericToolCall{ID: tc.ID, Type: "FUNCTION", Name: tc.Function.Name, Arguments: string(args)})
		}
		if len(msg.Content) == 0 && len(msg.ToolCalls) == 0 {
			return nil, nil
		}
		return msg, nil
	case openai.RoleTool:
		s, err := textOnly(param, m.Content)
		if err != nil {
			return nil, err
		}
		return &genericMsg{Role: roleTool, ToolCallID: m.ToolCallID, Content: []genericContent{{Type: contentText, Text: &s}}}, nil
	}
	return nil, openai.InvalidRequest(param+".role", fmt.Sprintf("role %q is not supported by OCI models; use tool messages", m.Role))
}

// genericUserContent maps a user message's content to typed parts.
func genericUserContent(param string, c openai.Content, req *provider.Request) ([]genericContent, error) {
	if !c.IsArray {
		if c.Text == "" {
			return nil, nil
		}
		s := c.Text
		return []genericContent{{Type: contentText, Text: &s}}, nil
	}
	var out []genericContent
	for j, p := range c.Parts {
		pp := fmt.Sprintf("%s.content[%d]", param, j)
		switch p.Type {
		case openai.PartText:
			if p.Text != "" {
				s := p.Text
				out = append(out, genericContent{Type: contentText, Text: &s})
			}
		case openai.PartImageURL:
			if p.ImageURL == nil || p.ImageURL.URL == "" {
				return nil, openai.InvalidRequest(pp+".image_url", "image_url part needs an image_url.url")
			}
			u := p.ImageURL.URL
			if strings.HasPrefix(u, "data:") {
				if _, _, err := parseDataURL(pp+".image_url.url", u); err != nil {
					return nil, err
				}
			} else if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
				return nil, openai.InvalidRequest(pp+".image_url.url", "image url must be an http(s) URL or a base64 data URL")
			}
			out = append(out, genericContent{Type: contentImage, ImageURL: &urlDetail{URL: u, Detail: strings.ToUpper(p.ImageURL.Detail)}})
		case openai.PartDocument, openai.PartFile:
			d, err := resolveDocument(pp, p, req)
			if err != nil {
				return nil, err
			}
			switch {
			case d.mime == "application/pdf" && len(d.data) > 0:
				u := "data:application/pdf;base64," + base64.StdEncoding.EncodeToString(d.data)
				out = append(out, genericContent{Type: contentDocument, DocumentURL: &urlDetail{URL: u}})
			case strings.HasPrefix(d.mime, "image/") && len(d.data) > 0:
				u := "data:" + d.mime + ";base64," + base64.StdEncoding.EncodeToString(d.data)
				out = append(out, genericContent{Type: contentImage, ImageURL: &urlDetail{URL: u}})
			default:
				t, ok := d.asText()
				if !ok {
					return nil, openai.InvalidRequest(pp, fmt.Sprintf("document %q (%s) has no text and is not a PDF; OCI models cannot read it", d.name, d.mime))
				}
				s := documentText(d.name, t)
				out = append(out, genericContent{Type: contentText, Text: &s})
			}
		case openai.PartInputAudio:
			return nil, unsupported(pp+".type", "audio input is not supported by the oci provider")
		default:
			return nil, openai.InvalidRequest(pp+".type", fmt.Sprintf("content part type %q is not supported by OCI models", p.Type))
		}
	}
	return out, nil
}

// documentText frames a text document for a model that reads it inline.
func documentText(name, text string) string {
	if name == "" {
		name = "document"
	}
	return "<document name=\"" + name + "\">\n" + text + "\n</document>"
}

// responseMeta is what every chunk or completion of one response shares.
type responseMeta struct {
	id string
	// seed makes generated tool-call ids (see callID).
	seed    string
	model   string
	created int64
}

// translateGenericResponse maps a GENERIC chatResponse to a completion.
func translateGenericResponse(raw json.RawMessage, rm responseMeta) (*openai.ChatCompletion, error) {
	var gr genericResponse
	if err := json.Unmarshal(raw, &gr); err != nil {
		return nil, badUpstream("GENERIC chat response does not parse", err)
	}
	if len(gr.Choices) == 0 {
		return nil, badUpstream("GENERIC chat response has no choices", nil)
	}
	cc := &openai.ChatCompletion{ID: rm.id, Object: openai.ObjectChatCompletion, Created: rm.created, Model: rm.model, Usage: mapUsage(gr.Usage)}
	calls := 0
	for i, ch := range gr.Choices {
		msg := openai.ResponseMessage{Role: openai.RoleAssistant}
		if ch.Message != nil {
			var sb strings.Builder
			has := false
			for _, c := range ch.Message.Content {
				if c.Type == contentText && c.Text != nil {
					sb.WriteString(*c.Text)
					has = true
				}
			}
			if has && sb.Len() > 0 {
				s := sb.String()
				msg.Content = &s
			}
			msg.Refusal = ch.Message.Refusal
			for _, tc := range ch.Message.ToolCalls {
				if tc.Name == "" {
					return nil, badUpstream("a GENERIC tool call has no name", nil)
				}
				id := tc.ID
				if id == "" {
					id = callID(rm.seed, calls)
				}
				calls++
				msg.ToolCalls = append(msg.ToolCalls, openai.ToolCall{ID: id, Type: "function",
					Function: openai.FunctionCall{Name: tc.Name, Arguments: argsOrEmpty(tc.Arguments)}})
			}
		}
		cc.Choices = append(cc.Choices, openai.Choice{Index: i, Message: msg, Logprobs: json.RawMessage("null"),
			FinishReason: genericFinish(ch.FinishReason, len(msg.ToolCalls) > 0)})
	}
	return cc, nil
}

// argsOrEmpty makes absent arguments an empty JSON object.
func argsOrEmpty(s string) string {
	if strings.TrimSpace(s) == "" {
		return "{}"
	}
	return s
}

// genericFinish maps a GENERIC finishReason (already OpenAI-like, in any
// case); a turn with tool calls reports tool_calls.
func genericFinish(reason string, hasCalls bool) string {
	switch strings.ToLower(reason) {
	case "length", "max_tokens":
		return openai.FinishLength
	case "tool_calls", "tool_call":
		return openai.FinishToolCalls
	case "content_filter":
		return openai.FinishContentFilter
	}
	if hasCalls {
		return openai.FinishToolCalls
	}
	return openai.FinishStop
}

// mapUsage maps OCI usage; the total is recomputed when absent.
func mapUsage(u *usage) *openai.Usage {
	if u == nil {
		return nil
	}
	// OCI counts cached tokens inside promptTokens and reasoning tokens
	// inside completionTokens, as OpenAI does.
	t := openai.Tokens{Input: u.PromptTokens, Output: u.CompletionTokens, Total: u.TotalTokens}
	if d := u.PromptTokensDetails; d != nil {
		t.CacheRead = d.CachedTokens
	}
	if d := u.CompletionTokensDetails; d != nil {
		t.Reasoning = d.ReasoningTokens
	}
	out := t.Usage()
	return &out
}
