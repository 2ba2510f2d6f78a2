package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// deploymentPrefix marks a model name that addresses a deployment.
const deploymentPrefix = "deployment/"

// target is where a chat or embeddings call goes: a foundation model in
// the instance's project or space, or a deployment.
type target struct {
	model      string
	deployment string
}

// targetFor resolves the upstream target of model.
func (s *settings) targetFor(model string) (target, error) {
	if id, ok := s.deployments[model]; ok {
		return target{deployment: id}, nil
	}
	if id, ok := strings.CutPrefix(model, deploymentPrefix); ok {
		if id == "" || strings.ContainsAny(id, "/?#") {
			return target{}, openai.InvalidRequest("model", fmt.Sprintf("model %q does not name a deployment", model))
		}
		return target{deployment: id}, nil
	}
	if s.projectID == "" && s.spaceID == "" {
		return target{}, openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, "model_not_available",
			fmt.Sprintf("watsonx: this instance has neither project_id nor space_id, so it serves deployments only, not %q", model))
	}
	return target{model: model}, nil
}

// chatPath is the API path of a chat call.
func (t target) chatPath(stream bool) string {
	op := "chat"
	if stream {
		op = "chat_stream"
	}
	if t.deployment != "" {
		return "/ml/v1/deployments/" + t.deployment + "/text/" + op
	}
	return "/ml/v1/text/" + op
}

// translateRequest maps an OpenAI chat request to a watsonx.ai chat body.
func translateRequest(chat *openai.ChatRequest, req *provider.Request, s *settings, t target) (*chatBody, error) {
	if len(chat.LogitBias) > 0 && string(chat.LogitBias) != "null" {
		return nil, unsupported("logit_bias", "watsonx.ai chat has no logit_bias")
	}
	out := &chatBody{
		Temperature:      chat.Temperature,
		TopP:             chat.TopP,
		N:                chat.N,
		Stop:             chat.Stop,
		Seed:             chat.Seed,
		FrequencyPenalty: chat.FrequencyPenalty,
		PresencePenalty:  chat.PresencePenalty,
		Logprobs:         chat.Logprobs,
		TopLogprobs:      chat.TopLogprobs,
		ReasoningEffort:  chat.ReasoningEffort,
	}
	if t.deployment == "" {
		out.ModelID, out.ProjectID, out.SpaceID = t.model, s.projectID, s.spaceID
	}
	if n := chat.MaxOutputTokens(); n > 0 {
		out.MaxTokens = &n
	}
	if rf := chat.ResponseFormat; rf != nil {
		switch rf.Type {
		case "text":
		case "json_object", "json_schema":
			if rf.Type == "json_schema" && (rf.JSONSchema == nil || len(rf.JSONSchema.Schema) == 0) {
				return nil, openai.InvalidRequest("response_format.json_schema", "json_schema needs a schema")
			}
			b, err := json.Marshal(rf)
			if err != nil {
				return nil, fmt.Errorf("watsonx: encode response_format: %w", err)
			}
			out.ResponseFormat = b
		default:
			return nil, openai.InvalidRequest("response_format.type", fmt.Sprintf("unknown response_format type %q", rf.Type))
		}
	}
	for i, tl := range chat.Tools {
		if tl.Type != "function" {
			return nil, openai.InvalidRequest(fmt.Sprintf("tools[%d].type", i), fmt.Sprintf("tool type %q is not supported; only function tools", tl.Type))
		}
		if tl.Function.Name == "" {
			return nil, openai.InvalidRequest(fmt.Sprintf("tools[%d].function.name", i), "a function tool needs a name")
		}
		// strict has no watsonx.ai equivalent and is dropped.
		out.Tools = append(out.Tools, tool{Type: "function", Function: function{
			Name: tl.Function.Name, Description: tl.Function.Description, Parameters: tl.Function.Parameters}})
	}
	if tc := chat.ToolChoice; tc != nil {
		switch {
		case tc.Function != "":
			out.ToolChoice = &toolChoice{Type: "function"}
			out.ToolChoice.Function.Name = tc.Function
		case tc.Mode == "none" || tc.Mode == "auto" || tc.Mode == "required":
			// The string form travels under its own name.
			out.ToolChoiceOption = tc.Mode
		default:
			return nil, openai.InvalidRequest("tool_choice", fmt.Sprintf("unknown tool_choice %q", tc.Mode))
		}
	}
	msgs, err := translateMessages(chat.Messages, req)
	if err != nil {
		return nil, err
	}
	out.Messages = msgs
	return out, nil
}

func unsupported(param, msg string) *openai.Error {
	return &openai.Error{Status: http.StatusBadRequest, Type: openai.TypeInvalidRequest, Code: "unsupported_parameter",
		Param: param, Message: "watsonx: " + msg}
}

// translateMessages maps the conversation. Roles are kept (developer
// becomes system); content arrays become plain strings where they hold
// only text, which every model accepts.
func translateMessages(msgs []openai.Message, req *provider.Request) ([]message, error) {
	out := make([]message, 0, len(msgs))
	for i, m := range msgs {
		pm := fmt.Sprintf("messages[%d]", i)
		wm := message{Role: m.Role}
		switch m.Role {
		case openai.RoleSystem, openai.RoleDeveloper:
			wm.Role = openai.RoleSystem
			text, err := textOnly(pm, m.Content, req)
			if err != nil {
				return nil, err
			}
			wm.Content = jsonString(text)
		case openai.RoleUser:
			wm.Name = m.Name
			c, err := userContent(pm, m.Content, req)
			if err != nil {
				return nil, err
			}
			wm.Content = c
		case openai.RoleAssistant:
			wm.Name = m.Name
			text, err := textOnly(pm, m.Content, req)
			if err != nil {
				return nil, err
			}
			if text != "" || len(m.ToolCalls) == 0 {
				wm.Content = jsonString(text)
			}
			for j, tc := range m.ToolCalls {
				if tc.ID == "" || tc.Function.Name == "" {
					return nil, openai.InvalidRequest(fmt.Sprintf("%s.tool_calls[%d]", pm, j), "a tool call needs an id and a function name")
				}
				args := tc.Function.Arguments
				if strings.TrimSpace(args) == "" {
					args = "{}"
				}
				wm.ToolCalls = append(wm.ToolCalls, toolCall{ID: tc.ID, Type: "function",
					Function: functionCall{Name: tc.Function.Name, Arguments: args}})
			}
		case openai.RoleTool:
			text, err := textOnly(pm, m.Content, req)
			if err != nil {
				return nil, err
			}
			wm.Content = jsonString(text)
			wm.ToolCallID = m.ToolCallID
		default:
			return nil, openai.InvalidRequest(pm+".role", fmt.Sprintf("role %q is not supported by watsonx.ai", m.Role))
		}
		out = append(out, wm)
	}
	return out, nil
}

// textOnly flattens a content that may hold only text (and text
// documents) into one string.
func textOnly(param string, c openai.Content, req *provider.Request) (string, error) {
	if !c.IsArray {
		return c.Text, nil
	}
	var b strings.Builder
	for j, p := range c.Parts {
		pp := fmt.Sprintf("%s.content[%d]", param, j)
		switch p.Type {
		case openai.PartText, openai.PartRefusal:
			if p.Type == openai.PartRefusal {
				b.WriteString(p.Refusal)
			}
			b.WriteString(p.Text)
		case openai.PartDocument:
			doc, err := document(pp, p, req)
			if err != nil {
				return "", err
			}
			text, err := documentText(pp, doc)
			if err != nil {
				return "", err
			}
			b.WriteString(text)
		default:
			return "", openai.InvalidRequest(pp+".type", fmt.Sprintf("content parts of type %q are only accepted in user messages", p.Type))
		}
	}
	return b.String(), nil
}

// userContent maps a user message's content: a string when it is only
// text, else an array of text and image_url parts. Documents become
// images (image types) or their extracted text; watsonx.ai has no
// document input.
func userContent(param string, c openai.Content, req *provider.Request) (json.RawMessage, error) {
	if !c.IsArray {
		return jsonString(c.Text), nil
	}
	var parts []part
	onlyText := true
	for j, p := range c.Parts {
		pp := fmt.Sprintf("%s.content[%d]", param, j)
		switch p.Type {
		case openai.PartText:
			parts = append(parts, part{Type: "text", Text: p.Text})
		case openai.PartImageURL:
			if p.ImageURL == nil || p.ImageURL.URL == "" {
				return nil, openai.InvalidRequest(pp+".image_url", "an image_url part needs a url")
			}
			parts = append(parts, part{Type: "image_url", ImageURL: &imageURL{URL: p.ImageURL.URL, Detail: p.ImageURL.Detail}})
			onlyText = false
		case openai.PartDocument:
			doc, err := document(pp, p, req)
			if err != nil {
				return nil, err
			}
			if mime := mediaType(doc.MIMEType); strings.HasPrefix(mime, "image/") && len(doc.Data) > 0 {
				url := "data:" + mime + ";base64," + base64.StdEncoding.EncodeToString(doc.Data)
				parts = append(parts, part{Type: "image_url", ImageURL: &imageURL{URL: url}})
				onlyText = false
				continue
			}
			text, err := documentText(pp, doc)
			if err != nil {
				return nil, err
			}
			parts = append(parts, part{Type: "text", Text: text})
		case openai.PartFile:
			return nil, unsupported(pp+".file", "file parts reach the provider only after the gateway resolved them into documents; this one was not")
		case openai.PartInputAudio:
			return nil, unsupported(pp+".input_audio", "watsonx.ai chat models take no audio input")
		default:
			return nil, openai.InvalidRequest(pp+".type", fmt.Sprintf("unknown content part type %q", p.Type))
		}
	}
	if onlyText {
		var b strings.Builder
		for i, p := range parts {
			if i > 0 {
				b.WriteString("\n\n")
			}
			b.WriteString(p.Text)
		}
		return jsonString(b.String()), nil
	}
	b, err := marshal(parts)
	if err != nil {
		return nil, fmt.Errorf("watsonx: encode content: %w", err)
	}
	return b, nil
}

// document finds the resolved document a document part refers to.
func document(param string, p openai.ContentPart, req *provider.Request) (*provider.Document, error) {
	if p.Document == nil || p.Document.ID == "" {
		return nil, openai.InvalidRequest(param+".document", "document part without a resolved document id")
	}
	d := req.Document(p.Document.ID)
	if d == nil {
		return nil, openai.InvalidRequest(param+".document", fmt.Sprintf("document %q is missing from the request", p.Document.ID))
	}
	return d, nil
}

// documentText renders a document as a text block the model reads.
func documentText(param string, d *provider.Document) (string, error) {
	text := d.Text
	mime := mediaType(d.MIMEType)
	if text == "" && isTextual(mime) && utf8.Valid(d.Data) {
		text = string(d.Data)
	}
	name := d.Name
	if name == "" {
		name = d.ID
	}
	if strings.TrimSpace(text) == "" {
		return "", unsupported(param, fmt.Sprintf("document %q (%s) has no extractable text, and watsonx.ai takes documents only as text", name, mime))
	}
	return fmt.Sprintf("<document name=%q>\n%s\n</document>", name, text), nil
}

func mediaType(m string) string {
	return strings.ToLower(strings.TrimSpace(strings.Split(m, ";")[0]))
}

func isTextual(mime string) bool {
	return strings.HasPrefix(mime, "text/") || mime == "application/json" || mime == "application/xml" ||
		strings.HasSuffix(mime, "+json") || strings.HasSuffix(mime, "+xml")
}

// jsonString encodes s as a JSON string.
func jsonString(s string) json.RawMessage {
	b, _ := marshal(s)
	return b
}

// marshal encodes v without HTML escaping, so text passes unchanged.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
