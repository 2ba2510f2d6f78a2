package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// Gemini roles.
const (
	roleUser  = "user"
	roleModel = "model"
)

// inlineType reports whether Gemini reads a media type as inline data or
// by URI.
func inlineType(mime string) bool {
	switch {
	case mime == "application/pdf", mime == "text/plain":
		return true
	case strings.HasPrefix(mime, "image/"), strings.HasPrefix(mime, "audio/"), strings.HasPrefix(mime, "video/"):
		return true
	}
	return false
}

// extensionTypes give the media type of a file URL by its extension;
// Gemini's fileData needs one.
var extensionTypes = map[string]string{
	".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp", ".gif": "image/gif",
	".heic": "image/heic", ".heif": "image/heif", ".pdf": "application/pdf", ".txt": "text/plain",
	".mp3": "audio/mpeg", ".wav": "audio/wav", ".flac": "audio/flac", ".mp4": "video/mp4", ".mov": "video/quicktime",
	".webm": "video/webm",
}

// labelRE is what Vertex accepts as a label value.
var labelRE = regexp.MustCompile(`^[a-z0-9_-]{1,63}$`)

// translateRequest maps an OpenAI chat request to a GenerateContentRequest.
// Problems the client can fix are 400 *openai.Error values.
func translateRequest(chat *openai.ChatRequest, req *provider.Request, defaultMax int) (*generateRequest, error) {
	if chat.Logprobs != nil && *chat.Logprobs {
		return nil, openai.InvalidRequest("logprobs", "logprobs are not supported by the vertex provider")
	}
	if len(chat.LogitBias) > 0 && string(chat.LogitBias) != "null" && string(chat.LogitBias) != "{}" {
		return nil, openai.InvalidRequest("logit_bias", "gemini models do not support logit_bias")
	}
	out := &generateRequest{}
	gc, err := generation(chat, defaultMax)
	if err != nil {
		return nil, err
	}

	// tool_call_id → function name, from the assistant turns of the request.
	names := map[string]string{}
	for _, m := range chat.Messages {
		for _, tc := range m.ToolCalls {
			if tc.ID != "" {
				names[tc.ID] = tc.Function.Name
			}
		}
	}
	for i, m := range chat.Messages {
		if err := addMessage(out, i, m, req, names); err != nil {
			return nil, err
		}
	}
	if len(out.Contents) == 0 {
		return nil, openai.InvalidRequest("messages", "messages must contain at least one user or assistant message with content")
	}
	if err := addTools(out, chat); err != nil {
		return nil, err
	}
	if rf := chat.ResponseFormat; rf != nil {
		switch rf.Type {
		case "", "text":
		case "json_object":
			gc.ResponseMIMEType = "application/json"
		case "json_schema":
			if rf.JSONSchema == nil || len(bytes.TrimSpace(rf.JSONSchema.Schema)) == 0 {
				return nil, openai.InvalidRequest("response_format.json_schema.schema", "json_schema needs a schema")
			}
			s, err := cleanSchema(rf.JSONSchema.Schema)
			if err != nil {
				return nil, openai.InvalidRequest("response_format.json_schema.schema", err.Error())
			}
			gc.ResponseMIMEType = "application/json"
			gc.ResponseSchema = s
		default:
			return nil, openai.InvalidRequest("response_format.type", fmt.Sprintf("response_format type %q is not supported", rf.Type))
		}
	}
	if b, _ := json.Marshal(gc); string(b) != "{}" {
		out.GenerationConfig = gc
	}
	if chat.User != "" && labelRE.MatchString(chat.User) {
		out.Labels = map[string]string{"user": chat.User}
	}
	return out, nil
}

// generation maps the sampling parameters.
func generation(chat *openai.ChatRequest, defaultMax int) (*generationConfig, error) {
	gc := &generationConfig{TopP: chat.TopP, PresencePenalty: chat.PresencePenalty, FrequencyPenalty: chat.FrequencyPenalty, Seed: chat.Seed}
	switch {
	case chat.MaxCompletionTokens != nil && *chat.MaxCompletionTokens < 1:
		return nil, openai.InvalidRequest("max_completion_tokens", "max_completion_tokens must be at least 1")
	case chat.MaxCompletionTokens == nil && chat.MaxTokens != nil && *chat.MaxTokens < 1:
		return nil, openai.InvalidRequest("max_tokens", "max_tokens must be at least 1")
	}
	if n := chat.MaxOutputTokens(); n > 0 {
		gc.MaxOutputTokens = &n
	} else if defaultMax > 0 {
		n := defaultMax
		gc.MaxOutputTokens = &n
	}
	if t := chat.Temperature; t != nil {
		if *t < 0 || *t > 2 {
			return nil, openai.InvalidRequest("temperature", "temperature must be between 0 and 2")
		}
		gc.Temperature = t
	}
	if p := chat.TopP; p != nil && (*p < 0 || *p > 1) {
		return nil, openai.InvalidRequest("top_p", "top_p must be between 0 and 1")
	}
	if n := chat.N; n != nil {
		if *n < 1 || *n > 8 {
			return nil, openai.InvalidRequest("n", "n must be between 1 and 8 for gemini models")
		}
		if *n > 1 {
			gc.CandidateCount = n
		}
	}
	for _, s := range chat.Stop {
		if s != "" {
			gc.StopSequences = append(gc.StopSequences, s)
		}
	}
	if len(gc.StopSequences) > 5 {
		return nil, openai.InvalidRequest("stop", "gemini models accept at most 5 stop sequences")
	}
	return gc, nil
}

// addMessage appends OpenAI message i to out.
func addMessage(out *generateRequest, i int, m openai.Message, req *provider.Request, names map[string]string) error {
	param := fmt.Sprintf("messages[%d]", i)
	switch m.Role {
	case openai.RoleSystem, openai.RoleDeveloper:
		parts, err := textParts(param, m.Content)
		if err != nil {
			return err
		}
		if len(parts) > 0 {
			if out.SystemInstruction == nil {
				out.SystemInstruction = &content{}
			}
			out.SystemInstruction.Parts = append(out.SystemInstruction.Parts, parts...)
		}
		return nil
	case openai.RoleUser:
		parts, err := userParts(param, m.Content, req)
		if err != nil {
			return err
		}
		appendParts(out, roleUser, parts)
		return nil
	case openai.RoleAssistant:
		parts, err := textParts(param, m.Content)
		if err != nil {
			return err
		}
		for j, tc := range m.ToolCalls {
			p, err := callPart(fmt.Sprintf("%s.tool_calls[%d]", param, j), tc)
			if err != nil {
				return err
			}
			parts = append(parts, p)
		}
		appendParts(out, roleModel, parts)
		return nil
	case openai.RoleTool:
		name, ok := names[m.ToolCallID]
		if !ok || name == "" {
			return openai.InvalidRequest(param+".tool_call_id",
				fmt.Sprintf("tool_call_id %q matches no tool call of an earlier assistant message; gemini needs the function name", m.ToolCallID))
		}
		appendParts(out, roleUser, []part{{FunctionResponse: &functionResponse{Name: name, Response: toolResult(m.Content)}}})
		return nil
	}
	return openai.InvalidRequest(param+".role", fmt.Sprintf("role %q is not supported by gemini models; use tool messages", m.Role))
}

// appendParts adds parts to the conversation, merging them into the last
// content when it has the same role: Gemini wants alternating turns, and
// all function responses of a turn in one content.
func appendParts(out *generateRequest, role string, parts []part) {
	if len(parts) == 0 {
		return
	}
	n := len(out.Contents)
	if n > 0 && out.Contents[n-1].Role == role {
		out.Contents[n-1].Parts = append(out.Contents[n-1].Parts, parts...)
		return
	}
	out.Contents = append(out.Contents, content{Role: role, Parts: parts})
}

// toolResult makes a function response object from a tool message: a JSON
// object stays as it is, anything else is wrapped as {"output": text}.
func toolResult(c openai.Content) json.RawMessage {
	text := c.String()
	trimmed := strings.TrimSpace(text)
	if strings.HasPrefix(trimmed, "{") {
		var obj map[string]json.RawMessage
		if json.Unmarshal([]byte(trimmed), &obj) == nil && obj != nil {
			var buf bytes.Buffer
			if json.Compact(&buf, []byte(trimmed)) == nil {
				return buf.Bytes()
			}
		}
	}
	b, _ := json.Marshal(map[string]string{"output": text})
	return b
}

// textParts maps a content that may hold only text, dropping empty text.
func textParts(param string, c openai.Content) ([]part, error) {
	if !c.IsArray {
		if c.Text == "" {
			return nil, nil
		}
		return []part{{Text: c.Text}}, nil
	}
	var out []part
	for j, p := range c.Parts {
		switch p.Type {
		case openai.PartText:
			if p.Text != "" {
				out = append(out, part{Text: p.Text})
			}
		case openai.PartRefusal:
			if p.Refusal != "" {
				out = append(out, part{Text: p.Refusal})
			}
		default:
			return nil, openai.InvalidRequest(fmt.Sprintf("%s.content[%d].type", param, j),
				fmt.Sprintf("content part type %q is not allowed in this message; only text is", p.Type))
		}
	}
	return out, nil
}

// userParts maps a user message's content.
func userParts(param string, c openai.Content, req *provider.Request) ([]part, error) {
	if !c.IsArray {
		return textParts(param, c)
	}
	var out []part
	for j, p := range c.Parts {
		pp := fmt.Sprintf("%s.content[%d]", param, j)
		switch p.Type {
		case openai.PartText:
			if p.Text != "" {
				out = append(out, part{Text: p.Text})
			}
		case openai.PartImageURL:
			if p.ImageURL == nil || p.ImageURL.URL == "" {
				return nil, openai.InvalidRequest(pp+".image_url", "image_url part needs an image_url object with a url")
			}
			x, err := urlPart(pp+".image_url.url", p.ImageURL.URL)
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		case openai.PartFile:
			xs, err := fileParts(pp, p.File)
			if err != nil {
				return nil, err
			}
			out = append(out, xs...)
		case openai.PartDocument:
			if p.Document == nil || p.Document.ID == "" {
				return nil, openai.InvalidRequest(pp+".document", "document part was not resolved by the gateway")
			}
			d := req.Document(p.Document.ID)
			if d == nil {
				return nil, openai.InvalidRequest(pp+".document", fmt.Sprintf("document %q is missing from the request", p.Document.ID))
			}
			name := d.Name
			if name == "" {
				name = p.Document.Name
			}
			xs, err := documentParts(pp, name, d.MIMEType, d.Data, d.Text)
			if err != nil {
				return nil, err
			}
			out = append(out, xs...)
		default:
			return nil, openai.InvalidRequest(pp+".type", fmt.Sprintf("content part type %q is not supported by the vertex provider", p.Type))
		}
	}
	return out, nil
}

// urlPart maps an image URL: a data: URL becomes inline data, a gs:// or
// http(s) URL a fileData reference with the media type its extension
// names.
func urlPart(param, u string) (part, error) {
	if strings.HasPrefix(u, "data:") {
		mime, data, err := parseDataURL(param, u)
		if err != nil {
			return part{}, err
		}
		if !inlineType(mime) {
			return part{}, openai.InvalidRequest(param, fmt.Sprintf("media type %q is not supported by gemini models", mime))
		}
		return part{InlineData: &blob{MIMEType: mime, Data: data}}, nil
	}
	if strings.HasPrefix(u, "gs://") || strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://") {
		p := u
		if i := strings.IndexAny(p, "?#"); i >= 0 {
			p = p[:i]
		}
		mime, ok := extensionTypes[strings.ToLower(path.Ext(p))]
		if !ok {
			return part{}, openai.InvalidRequest(param, "gemini needs the media type of a file URL; use a URL ending in a known extension (.png, .jpg, .pdf …) or a data URL")
		}
		return part{FileData: &fileData{MIMEType: mime, FileURI: u}}, nil
	}
	return part{}, openai.InvalidRequest(param, "image url must be a gs://, http(s) or base64 data URL")
}

// fileParts maps an OpenAI file part carrying inline data.
func fileParts(param string, f *openai.File) ([]part, error) {
	if f == nil || f.FileData == "" {
		return nil, openai.InvalidRequest(param+".file", "file parts need file_data; uploaded file ids are not supported by the vertex provider")
	}
	if strings.HasPrefix(f.FileData, "gs://") {
		x, err := urlPart(param+".file.file_data", f.FileData)
		return []part{x}, err
	}
	mime, data, err := parseDataURL(param+".file.file_data", f.FileData)
	if err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return nil, openai.InvalidRequest(param+".file.file_data", "file_data is not valid base64")
	}
	return documentParts(param, f.Filename, mime, raw, "")
}

// documentParts maps a document: a PDF as inline data after a text part
// naming it, images, audio and video as inline data; anything with text
// (extracted, or text-like bytes) as a text part headed by its name.
func documentParts(param, name, mime string, data []byte, text string) ([]part, error) {
	mime = strings.ToLower(strings.TrimSpace(strings.SplitN(mime, ";", 2)[0]))
	switch {
	case inlineType(mime) && mime != "text/plain" && len(data) > 0:
		inline := part{InlineData: &blob{MIMEType: mime, Data: base64.StdEncoding.EncodeToString(data)}}
		if mime == "application/pdf" && name != "" {
			return []part{{Text: "Document " + name + ":"}, inline}, nil
		}
		return []part{inline}, nil
	case text != "":
	case textLike(mime) && utf8.Valid(data) && len(data) > 0:
		text = string(data)
	default:
		return nil, openai.InvalidRequest(param, fmt.Sprintf("document %q (%s) has no text and is not a PDF or image; gemini models cannot read it", name, mime))
	}
	if name != "" {
		text = "Document " + name + ":\n" + text
	}
	return []part{{Text: text}}, nil
}

// textLike reports whether a media type is text a model can read as is.
func textLike(mime string) bool {
	if strings.HasPrefix(mime, "text/") {
		return true
	}
	switch mime {
	case "application/json", "application/xml", "application/x-yaml", "application/yaml", "application/x-ndjson", "application/csv":
		return true
	}
	return strings.HasSuffix(mime, "+json") || strings.HasSuffix(mime, "+xml")
}

// parseDataURL splits data:<mime>;base64,<payload>.
func parseDataURL(param, u string) (mime, data string, err error) {
	head, payload, ok := strings.Cut(strings.TrimPrefix(u, "data:"), ",")
	if !ok || !strings.HasSuffix(head, ";base64") {
		return "", "", openai.InvalidRequest(param, "data URL must look like data:<mime>;base64,<data>")
	}
	mime = strings.ToLower(strings.TrimSuffix(head, ";base64"))
	if mime == "" || payload == "" {
		return "", "", openai.InvalidRequest(param, "data URL needs a media type and data")
	}
	return mime, payload, nil
}

// callPart maps an assistant tool call to a functionCall part, restoring
// the thought signature its id carries.
func callPart(param string, tc openai.ToolCall) (part, error) {
	if tc.ID == "" || tc.Function.Name == "" {
		return part{}, openai.InvalidRequest(param, "tool calls need an id and a function name")
	}
	args := strings.TrimSpace(tc.Function.Arguments)
	if args == "" {
		args = "{}"
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(args), &obj); err != nil || obj == nil {
		return part{}, openai.InvalidRequest(param+".function.arguments", "function arguments must be a JSON object")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(args)); err != nil {
		return part{}, openai.InvalidRequest(param+".function.arguments", "function arguments must be a JSON object")
	}
	return part{FunctionCall: &functionCall{Name: tc.Function.Name, Args: buf.Bytes()}, ThoughtSignature: signatureOf(tc.ID)}, nil
}

// addTools maps tools and tool_choice.
func addTools(out *generateRequest, chat *openai.ChatRequest) error {
	var decls []functionDecl
	for i, t := range chat.Tools {
		if t.Type != "function" {
			return openai.InvalidRequest(fmt.Sprintf("tools[%d].type", i), fmt.Sprintf("tool type %q is not supported; use function", t.Type))
		}
		if t.Function.Name == "" {
			return openai.InvalidRequest(fmt.Sprintf("tools[%d].function.name", i), "tools need a function name")
		}
		d := functionDecl{Name: t.Function.Name, Description: t.Function.Description}
		if p := bytes.TrimSpace(t.Function.Parameters); len(p) > 0 && string(p) != "null" {
			s, err := cleanSchema(p)
			if err != nil {
				return openai.InvalidRequest(fmt.Sprintf("tools[%d].function.parameters", i), err.Error())
			}
			if !emptyObjectSchema(s) {
				d.Parameters = s
			}
		}
		decls = append(decls, d)
	}
	if len(decls) > 0 {
		out.Tools = []toolDecl{{FunctionDeclarations: decls}}
	}
	tc := chat.ToolChoice
	if tc == nil || len(decls) == 0 {
		return nil
	}
	fc := &functionCallingConfig{}
	switch {
	case tc.Function != "":
		found := false
		for _, d := range decls {
			found = found || d.Name == tc.Function
		}
		if !found {
			return openai.InvalidRequest("tool_choice", fmt.Sprintf("tool_choice names %q, which is not among the tools", tc.Function))
		}
		fc.Mode, fc.AllowedFunctionNames = "ANY", []string{tc.Function}
	case tc.Mode == "auto":
		fc.Mode = "AUTO"
	case tc.Mode == "none":
		fc.Mode = "NONE"
	case tc.Mode == "required":
		fc.Mode = "ANY"
	default:
		return openai.InvalidRequest("tool_choice", fmt.Sprintf("unknown tool_choice %q", tc.Mode))
	}
	out.ToolConfig = &toolConfig{FunctionCallingConfig: fc}
	return nil
}

// emptyObjectSchema reports whether s is an object schema without
// properties, which Gemini rejects as function parameters.
func emptyObjectSchema(s json.RawMessage) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(s, &m) != nil {
		return false
	}
	props, ok := m["properties"]
	return string(m["type"]) == `"object"` && (!ok || string(props) == "{}")
}
