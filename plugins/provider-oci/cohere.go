package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// COHERE chat history roles.
const (
	cohereUser     = "USER"
	cohereChatbot  = "CHATBOT"
	cohereRoleTool = "TOOL"
)

// cohereRequestFor maps an OpenAI chat request to a COHERE chatRequest:
// system text becomes preambleOverride, the last user turn becomes
// message (or the trailing tool results become toolResults), everything
// before it chatHistory. Cohere calls carry no ids, so a tool result names
// its call by the function name and arguments of the assistant turn that
// made it.
func cohereRequestFor(chat *openai.ChatRequest, req *provider.Request, maxTokens int, stream bool) (*cohereRequest, error) {
	if chat.N != nil && *chat.N > 1 {
		return nil, unsupported("n", "cohere models on OCI return one choice; n must be 1")
	}
	if tc := chat.ToolChoice; tc != nil && (tc.Function != "" || tc.Mode != "auto") {
		return nil, unsupported("tool_choice", "cohere models on OCI cannot take tool_choice; leave it out (or \"auto\")")
	}
	c := &cohereRequest{
		APIFormat:        formatCohere,
		IsStream:         stream,
		MaxTokens:        maxTokens,
		Temperature:      chat.Temperature,
		TopP:             chat.TopP,
		FrequencyPenalty: chat.FrequencyPenalty,
		PresencePenalty:  chat.PresencePenalty,
		Seed:             chat.Seed,
	}
	if stream && chat.IncludeUsage() {
		c.StreamOptions = &streamOptions{IsIncludeUsage: true}
	}
	for _, st := range chat.Stop {
		if st != "" {
			c.StopSequences = append(c.StopSequences, st)
		}
	}
	if len(chat.LogitBias) > 0 && string(chat.LogitBias) != "null" {
		return nil, unsupported("logit_bias", "cohere models on OCI cannot take logit_bias")
	}

	// calls maps a tool_call_id to the call it answers.
	calls := map[string]cohereToolCall{}
	var preamble []string
	var history []cohereMsg
	for i, m := range chat.Messages {
		param := fmt.Sprintf("messages[%d]", i)
		switch m.Role {
		case openai.RoleSystem, openai.RoleDeveloper:
			s, err := textOnly(param, m.Content)
			if err != nil {
				return nil, err
			}
			if s != "" {
				preamble = append(preamble, s)
			}
		case openai.RoleUser:
			s, docs, err := cohereUserContent(param, m.Content, req)
			if err != nil {
				return nil, err
			}
			c.Documents = append(c.Documents, docs...)
			// Consecutive user messages are one turn for Cohere.
			if n := len(history); n > 0 && history[n-1].Role == cohereUser {
				if s != "" {
					history[n-1].Message = strings.TrimPrefix(history[n-1].Message+"\n\n"+s, "\n\n")
				}
				continue
			}
			history = append(history, cohereMsg{Role: cohereUser, Message: s})
		case openai.RoleAssistant:
			s, err := textOnly(param, m.Content)
			if err != nil {
				return nil, err
			}
			msg := cohereMsg{Role: cohereChatbot, Message: s}
			for j, tc := range m.ToolCalls {
				pp := fmt.Sprintf("%s.tool_calls[%d]", param, j)
				if tc.ID == "" || tc.Function.Name == "" {
					return nil, openai.InvalidRequest(pp, "tool calls need an id and a function name")
				}
				args, err := compactObject(pp+".function.arguments", tc.Function.Arguments)
				if err != nil {
					return nil, err
				}
				call := cohereToolCall{Name: tc.Function.Name, Parameters: args}
				calls[tc.ID] = call
				msg.ToolCalls = append(msg.ToolCalls, call)
			}
			if msg.Message == "" && len(msg.ToolCalls) == 0 {
				continue
			}
			history = append(history, msg)
		case openai.RoleTool:
			call, ok := calls[m.ToolCallID]
			if !ok {
				return nil, openai.InvalidRequest(param+".tool_call_id",
					fmt.Sprintf("tool_call_id %q names no tool call of an earlier assistant message", m.ToolCallID))
			}
			s, err := textOnly(param, m.Content)
			if err != nil {
				return nil, err
			}
			res := cohereToolResult{Call: call, Outputs: []map[string]any{toolOutput(s)}}
			if n := len(history); n > 0 && history[n-1].Role == cohereRoleTool {
				history[n-1].ToolResults = append(history[n-1].ToolResults, res)
			} else {
				history = append(history, cohereMsg{Role: cohereRoleTool, ToolResults: []cohereToolResult{res}})
			}
		default:
			return nil, openai.InvalidRequest(param+".role", fmt.Sprintf("role %q is not supported by cohere models; use tool messages", m.Role))
		}
	}
	c.PreambleOverride = strings.Join(preamble, "\n\n")
	if len(history) == 0 {
		return nil, openai.InvalidRequest("messages", "cohere models need a user message")
	}
	last := history[len(history)-1]
	switch last.Role {
	case cohereUser:
		c.Message = last.Message
	case cohereRoleTool:
		c.ToolResults = last.ToolResults
	default:
		return nil, openai.InvalidRequest("messages", "the last message for a cohere model must come from the user or a tool")
	}
	c.ChatHistory = history[:len(history)-1]

	for i, t := range chat.Tools {
		tool, err := cohereToolFor(i, t)
		if err != nil {
			return nil, err
		}
		c.Tools = append(c.Tools, tool)
	}
	if rf := chat.ResponseFormat; rf != nil && rf.Type != "" {
		switch rf.Type {
		case "text":
			c.ResponseFormat = &responseFormat{Type: "TEXT"}
		case "json_object":
			c.ResponseFormat = &responseFormat{Type: "JSON_OBJECT"}
		case "json_schema":
			if rf.JSONSchema == nil || len(bytes.TrimSpace(rf.JSONSchema.Schema)) == 0 {
				return nil, openai.InvalidRequest("response_format.json_schema.schema", "json_schema needs a schema")
			}
			c.ResponseFormat = &responseFormat{Type: "JSON_OBJECT", Schema: rf.JSONSchema.Schema}
		default:
			return nil, openai.InvalidRequest("response_format.type", fmt.Sprintf("response_format type %q is not supported", rf.Type))
		}
	}
	return c, nil
}

// toolOutput is one Cohere tool output: a JSON object result as is,
// anything else under "output".
func toolOutput(s string) map[string]any {
	var obj map[string]any
	if json.Unmarshal([]byte(s), &obj) == nil && obj != nil {
		return obj
	}
	return map[string]any{"output": s}
}

// cohereUserContent maps a user message to its text and the grounding
// documents it carries. Cohere on OCI reads no images.
func cohereUserContent(param string, c openai.Content, req *provider.Request) (string, []cohereDocument, error) {
	if !c.IsArray {
		return c.Text, nil, nil
	}
	var sb strings.Builder
	var docs []cohereDocument
	for j, p := range c.Parts {
		pp := fmt.Sprintf("%s.content[%d]", param, j)
		switch p.Type {
		case openai.PartText:
			if sb.Len() > 0 && p.Text != "" {
				sb.WriteString("\n")
			}
			sb.WriteString(p.Text)
		case openai.PartDocument, openai.PartFile:
			d, err := resolveDocument(pp, p, req)
			if err != nil {
				return "", nil, err
			}
			t, ok := d.asText()
			if !ok {
				return "", nil, openai.InvalidRequest(pp, fmt.Sprintf("document %q (%s) has no extracted text; cohere models read documents as text", d.name, d.mime))
			}
			docs = append(docs, cohereDocument{Title: d.name, Text: t})
		case openai.PartImageURL:
			return "", nil, unsupported(pp+".type", "cohere chat models on OCI do not read images; use a GENERIC vision model")
		default:
			return "", nil, openai.InvalidRequest(pp+".type", fmt.Sprintf("content part type %q is not supported by cohere models", p.Type))
		}
	}
	return sb.String(), docs, nil
}

// cohereToolFor maps a function tool to a Cohere tool: the top-level
// properties of its JSON Schema become parameterDefinitions with Python
// type names.
func cohereToolFor(i int, t openai.Tool) (cohereTool, error) {
	param := fmt.Sprintf("tools[%d]", i)
	if t.Type != "function" {
		return cohereTool{}, openai.InvalidRequest(param+".type", fmt.Sprintf("tool type %q is not supported; use function", t.Type))
	}
	if t.Function.Name == "" {
		return cohereTool{}, openai.InvalidRequest(param+".function.name", "tools need a function name")
	}
	out := cohereTool{Name: t.Function.Name, Description: t.Function.Description}
	if out.Description == "" {
		out.Description = t.Function.Name
	}
	if len(bytes.TrimSpace(t.Function.Parameters)) == 0 || string(t.Function.Parameters) == "null" {
		return out, nil
	}
	var sch struct {
		Type       any                        `json:"type"`
		Properties map[string]json.RawMessage `json:"properties"`
		Required   []string                   `json:"required"`
	}
	if err := json.Unmarshal(t.Function.Parameters, &sch); err != nil {
		return cohereTool{}, openai.InvalidRequest(param+".function.parameters", "parameters must be a JSON Schema object")
	}
	required := map[string]bool{}
	for _, r := range sch.Required {
		required[r] = true
	}
	names := make([]string, 0, len(sch.Properties))
	for n := range sch.Properties {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) > 0 {
		out.ParameterDefinitions = map[string]cohereParam{}
	}
	for _, n := range names {
		var prop struct {
			Type        any    `json:"type"`
			Description string `json:"description"`
		}
		_ = json.Unmarshal(sch.Properties[n], &prop)
		out.ParameterDefinitions[n] = cohereParam{Type: pythonType(prop.Type), Description: prop.Description, IsRequired: required[n]}
	}
	return out, nil
}

// pythonType names a JSON Schema type the way Cohere tools want it.
func pythonType(t any) string {
	name, _ := t.(string)
	if list, ok := t.([]any); ok {
		for _, v := range list {
			if s, _ := v.(string); s != "" && s != "null" {
				name = s
				break
			}
		}
	}
	switch name {
	case "integer":
		return "int"
	case "number":
		return "float"
	case "boolean":
		return "bool"
	case "array":
		return "list"
	case "object":
		return "dict"
	}
	return "str"
}

// translateCohereResponse maps a COHERE chatResponse to a completion.
func translateCohereResponse(raw json.RawMessage, rm responseMeta) (*openai.ChatCompletion, error) {
	var cr cohereResponse
	if err := json.Unmarshal(raw, &cr); err != nil {
		return nil, badUpstream("COHERE chat response does not parse", err)
	}
	finish, ferr := cohereFinish(cr.FinishReason, len(cr.ToolCalls) > 0, cr.ErrorMessage)
	if ferr != nil {
		return nil, ferr
	}
	msg := openai.ResponseMessage{Role: openai.RoleAssistant}
	if cr.Text != nil && *cr.Text != "" {
		s := *cr.Text
		msg.Content = &s
	}
	for i, tc := range cr.ToolCalls {
		if tc.Name == "" {
			return nil, badUpstream("a COHERE tool call has no name", nil)
		}
		msg.ToolCalls = append(msg.ToolCalls, openai.ToolCall{ID: callID(rm.seed, i), Type: "function",
			Function: openai.FunctionCall{Name: tc.Name, Arguments: cohereArgs(tc.Parameters)}})
	}
	return &openai.ChatCompletion{ID: rm.id, Object: openai.ObjectChatCompletion, Created: rm.created, Model: rm.model,
		Choices: []openai.Choice{{Index: 0, Message: msg, Logprobs: json.RawMessage("null"), FinishReason: finish}},
		Usage:   mapUsage(cr.Usage)}, nil
}

// cohereArgs is a Cohere call's parameters as an OpenAI arguments string.
func cohereArgs(p json.RawMessage) string {
	var buf bytes.Buffer
	if len(bytes.TrimSpace(p)) == 0 || string(p) == "null" || json.Compact(&buf, p) != nil {
		return "{}"
	}
	return buf.String()
}

// cohereFinish maps a COHERE finishReason: COMPLETE → stop (tool_calls
// when the turn called tools), MAX_TOKENS and ERROR_LIMIT → length,
// ERROR_TOXIC → content_filter, ERROR → an upstream error.
func cohereFinish(reason string, hasCalls bool, errMsg string) (string, *openai.Error) {
	switch strings.ToUpper(reason) {
	case "MAX_TOKENS", "ERROR_LIMIT", "LENGTH":
		return openai.FinishLength, nil
	case "ERROR_TOXIC":
		return openai.FinishContentFilter, nil
	case "ERROR":
		if errMsg == "" {
			errMsg = "the model stopped with an error"
		}
		return "", openai.NewError(502, openai.TypeUpstream, "model_error", "oci: cohere generation failed: "+errMsg)
	case "TOOL_CALL", "TOOL_CALLS":
		return openai.FinishToolCalls, nil
	}
	if hasCalls {
		return openai.FinishToolCalls, nil
	}
	return openai.FinishStop, nil
}
