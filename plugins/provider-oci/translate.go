package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// translated is an OpenAI chat request turned into an OCI chat body.
type translated struct {
	format string
	body   []byte
	// choices is the number of choices the request asked for.
	choices int
}

// dedicatedPrefix starts the OCID of a dedicated AI cluster endpoint; a
// model id with it is served in DEDICATED mode.
const dedicatedPrefix = "ocid1.generativeaiendpoint."

// apiFormat picks the chat format of a model: COHERE for cohere.* models
// (and dedicated endpoints configured so), GENERIC for every other
// family (meta, xai, google, openai, mistral…).
func apiFormat(model string, s *settings) string {
	if strings.HasPrefix(model, dedicatedPrefix) {
		if f := s.dedicated[model]; f != "" {
			return f
		}
		return formatGeneric
	}
	if strings.HasPrefix(strings.ToLower(model), "cohere.") {
		return formatCohere
	}
	return formatGeneric
}

// servingFor is the servingMode for a model id.
func servingFor(model string) servingMode {
	if strings.HasPrefix(model, dedicatedPrefix) {
		return servingMode{ServingType: servingDedicated, EndpointID: model}
	}
	return servingMode{ServingType: servingOnDemand, ModelID: model}
}

// translateRequest maps an OpenAI chat request to the body of
// POST /20231130/actions/chat. Problems the client can fix are 400
// *openai.Error values.
func translateRequest(chat *openai.ChatRequest, req *provider.Request, s *settings, stream bool) (*translated, error) {
	switch {
	case chat.MaxCompletionTokens != nil && *chat.MaxCompletionTokens < 1:
		return nil, openai.InvalidRequest("max_completion_tokens", "max_completion_tokens must be at least 1")
	case chat.MaxCompletionTokens == nil && chat.MaxTokens != nil && *chat.MaxTokens < 1:
		return nil, openai.InvalidRequest("max_tokens", "max_tokens must be at least 1")
	case chat.Temperature != nil && *chat.Temperature < 0:
		return nil, openai.InvalidRequest("temperature", "temperature must not be negative")
	case chat.N != nil && *chat.N < 1:
		return nil, openai.InvalidRequest("n", "n must be at least 1")
	}
	if chat.Logprobs != nil && *chat.Logprobs {
		return nil, unsupported("logprobs", "logprobs are not returned by OCI Generative AI through llmproxy")
	}
	maxTokens := chat.MaxOutputTokens()
	if maxTokens == 0 {
		maxTokens = s.maxTokens
	}
	format := apiFormat(chat.Model, s)
	out := &translated{format: format, choices: 1}
	var inner any
	var err error
	if format == formatCohere {
		inner, err = cohereRequestFor(chat, req, maxTokens, stream)
	} else {
		var g *genericRequest
		g, err = genericRequestFor(chat, req, maxTokens, stream)
		if g != nil && g.NumGenerations != nil {
			out.choices = *g.NumGenerations
		}
		inner = g
	}
	if err != nil {
		return nil, err
	}
	cr, err := marshal(inner)
	if err != nil {
		return nil, fmt.Errorf("oci: encode chat request: %w", err)
	}
	out.body, err = marshal(chatDetails{CompartmentID: s.compartmentID, ServingMode: servingFor(chat.Model), ChatRequest: cr})
	if err != nil {
		return nil, fmt.Errorf("oci: encode chat details: %w", err)
	}
	return out, nil
}

// marshal encodes v as JSON without HTML escaping.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// textOnly returns the text of a content that may hold only text parts.
func textOnly(param string, c openai.Content) (string, error) {
	if !c.IsArray {
		return c.Text, nil
	}
	var sb strings.Builder
	for j, p := range c.Parts {
		switch p.Type {
		case openai.PartText:
			sb.WriteString(p.Text)
		case openai.PartRefusal:
			sb.WriteString(p.Refusal)
		default:
			return "", openai.InvalidRequest(fmt.Sprintf("%s.content[%d].type", param, j),
				fmt.Sprintf("content part type %q is not allowed in this message; only text is", p.Type))
		}
	}
	return sb.String(), nil
}

// document is a document part resolved to what OCI can take: PDF bytes
// or text.
type document struct {
	name string
	mime string
	data []byte
	text string
}

// resolveDocument finds the bytes and text of a document or file part.
func resolveDocument(param string, p openai.ContentPart, req *provider.Request) (*document, error) {
	if p.Type == openai.PartFile {
		f := p.File
		if f == nil || f.FileData == "" {
			return nil, openai.InvalidRequest(param+".file", "file parts need file_data; uploaded file ids are not supported by OCI")
		}
		mime, payload, err := parseDataURL(param+".file.file_data", f.FileData)
		if err != nil {
			return nil, err
		}
		raw, err := base64.StdEncoding.DecodeString(payload)
		if err != nil {
			return nil, openai.InvalidRequest(param+".file.file_data", "file_data is not valid base64")
		}
		return &document{name: f.Filename, mime: mime, data: raw}, nil
	}
	if p.Document == nil || p.Document.ID == "" {
		return nil, openai.InvalidRequest(param+".document", "document part was not resolved by the gateway")
	}
	d := req.Document(p.Document.ID)
	if d == nil {
		return nil, openai.InvalidRequest(param+".document", fmt.Sprintf("document %q is missing from the request", p.Document.ID))
	}
	name := d.Name
	if name == "" {
		name = p.Document.Name
	}
	mime := strings.ToLower(strings.TrimSpace(strings.SplitN(d.MIMEType, ";", 2)[0]))
	return &document{name: name, mime: mime, data: d.Data, text: d.Text}, nil
}

// asText is the document's text: the extracted text, or the bytes of a
// text-like document.
func (d *document) asText() (string, bool) {
	if d.text != "" {
		return d.text, true
	}
	if textLike(d.mime) && len(d.data) > 0 && utf8.Valid(d.data) {
		return string(d.data), true
	}
	return "", false
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
	if !strings.HasPrefix(u, "data:") || !ok || !strings.HasSuffix(head, ";base64") {
		return "", "", openai.InvalidRequest(param, "data URL must look like data:<mime>;base64,<data>")
	}
	mime = strings.ToLower(strings.TrimSuffix(head, ";base64"))
	if mime == "" || payload == "" {
		return "", "", openai.InvalidRequest(param, "data URL needs a media type and data")
	}
	return mime, payload, nil
}

// compactObject checks that args is a JSON object (empty means {}) and
// returns it compacted.
func compactObject(param, args string) (json.RawMessage, error) {
	args = strings.TrimSpace(args)
	if args == "" {
		args = "{}"
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(args), &obj); err != nil || obj == nil {
		return nil, openai.InvalidRequest(param, "function arguments must be a JSON object")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(args)); err != nil {
		return nil, openai.InvalidRequest(param, "function arguments must be a JSON object")
	}
	return buf.Bytes(), nil
}

// callID is the id given to the index-th tool call of a response that
// came without one (Cohere never sends ids, Google models on OCI often
// do not). seed is the conversation's fingerprint (see callSeed), so the
// id is the same whether the answer is streamed or not, and differs from
// turn to turn because every turn's conversation is longer.
func callID(seed string, index int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", seed, index)))
	return "call_" + hex.EncodeToString(sum[:12])
}

// callSeed fingerprints what a request asks: model, messages and tools.
func callSeed(chat *openai.ChatRequest) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	_ = enc.Encode(chat.Model)
	_ = enc.Encode(chat.Messages)
	_ = enc.Encode(chat.Tools)
	return hex.EncodeToString(h.Sum(nil))
}
