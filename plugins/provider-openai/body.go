package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/relay"
)

// view returns b as a string without copying. The caller must not change
// b while the string is in use; bodies are never changed in place here.
func view(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// checkObject rejects a body that is not one JSON object.
func checkObject(body []byte) error {
	if !gjson.ValidBytes(body) {
		return openai.InvalidRequest("", "the request body is not valid JSON")
	}
	if !gjson.Parse(view(body)).IsObject() {
		return openai.InvalidRequest("", "the request body must be a JSON object")
	}
	return nil
}

// setModel rewrites the body's top-level "model" to model when they
// differ, as the host does for calls it forwards on the plan.
func setModel(body []byte, model string) ([]byte, error) {
	out, err := relay.SetModel(body, model)
	if err != nil {
		return nil, fmt.Errorf("openai: %w", err)
	}
	return out, nil
}

// prepareChat turns a chat request into the upstream body: the routed
// model, the stream flag matching the call, and document parts mapped to
// OpenAI content parts. Everything else passes through byte for byte.
func prepareChat(req *provider.Request, stream bool) ([]byte, error) {
	body := req.Body
	if err := checkObject(body); err != nil {
		return nil, err
	}
	body, err := setModel(body, req.Meta.Model)
	if err != nil {
		return nil, err
	}
	isStream := gjson.Get(view(body), "stream").Type == gjson.True
	switch {
	case stream && !isStream:
		if body, err = sjson.SetBytes(body, "stream", true); err != nil {
			return nil, fmt.Errorf("openai: set stream: %w", err)
		}
	case !stream && isStream:
		if body, err = sjson.SetBytes(body, "stream", false); err != nil {
			return nil, fmt.Errorf("openai: clear stream: %w", err)
		}
		// OpenAI rejects stream_options on a request that does not stream.
		if body, err = sjson.DeleteBytes(body, "stream_options"); err != nil {
			return nil, fmt.Errorf("openai: drop stream_options: %w", err)
		}
	}
	if len(req.Documents) > 0 {
		return rewriteDocuments(body, req)
	}
	return body, nil
}

// rewriteDocuments replaces every llmproxy document part
// {"type":"document","document":{"id":...}} by its OpenAI form: a file
// part with a data URL for PDFs, an image_url part for images, and a
// text part with the document's name and text for anything with text.
func rewriteDocuments(body []byte, req *provider.Request) ([]byte, error) {
	type patch struct {
		path string
		part []byte
	}
	var (
		patches []patch
		perr    error
	)
	gjson.Get(view(body), "messages").ForEach(func(mi, msg gjson.Result) bool {
		content := msg.Get("content")
		if !content.IsArray() {
			return true
		}
		content.ForEach(func(pi, part gjson.Result) bool {
			if part.Get("type").Str != openai.PartDocument {
				return true
			}
			param := fmt.Sprintf("messages[%d].content[%d]", mi.Int(), pi.Int())
			id := part.Get("document.id").Str
			doc := req.Document(id)
			if doc == nil {
				perr = openai.InvalidRequest(param+".document.id", fmt.Sprintf("document %q was not resolved", id))
				return false
			}
			b, err := documentPart(doc, part.Get("document.name").Str, param)
			if err != nil {
				perr = err
				return false
			}
			patches = append(patches, patch{path: fmt.Sprintf("messages.%d.content.%d", mi.Int(), pi.Int()), part: b})
			return true
		})
		return perr == nil
	})
	if perr != nil {
		return nil, perr
	}
	for _, p := range patches {
		var err error
		if body, err = sjson.SetRawBytes(body, p.path, p.part); err != nil {
			return nil, fmt.Errorf("openai: replace document part at %s: %w", p.path, err)
		}
	}
	return body, nil
}

// Wire forms of the content parts a document becomes.
type (
	filePart struct {
		Type string   `json:"type"`
		File fileData `json:"file"`
	}
	fileData struct {
		Filename string `json:"filename"`
		FileData string `json:"file_data"`
	}
	imagePart struct {
		Type     string   `json:"type"`
		ImageURL imageURL `json:"image_url"`
	}
	imageURL struct {
		URL string `json:"url"`
	}
	textPart struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
)

// documentPart returns the OpenAI content part for doc.
func documentPart(doc *provider.Document, refName, param string) ([]byte, error) {
	name := doc.Name
	if name == "" {
		name = refName
	}
	if name == "" {
		name = doc.ID
	}
	mt := mediaType(doc.MIMEType)
	var part any
	switch {
	case mt == "application/pdf" && len(doc.Data) > 0:
		part = filePart{Type: openai.PartFile, File: fileData{Filename: name, FileData: dataURL(mt, doc.Data)}}
	case openAIImage(mt) && len(doc.Data) > 0:
		part = imagePart{Type: openai.PartImageURL, ImageURL: imageURL{URL: dataURL(mt, doc.Data)}}
	default:
		text := doc.Text
		if text == "" && textLike(mt) && utf8.Valid(doc.Data) {
			text = string(doc.Data)
		}
		if text == "" {
			return nil, &openai.Error{Status: 400, Type: openai.TypeInvalidRequest, Code: "unsupported_document", Param: param,
				Message: fmt.Sprintf("document %q (%s) has no text, and OpenAI takes only PDF files and images natively", name, doc.MIMEType)}
		}
		part = textPart{Type: openai.PartText, Text: "Document " + name + ":\n\n" + text}
	}
	b, err := json.Marshal(part)
	if err != nil {
		return nil, fmt.Errorf("openai: encode document part: %w", err)
	}
	return b, nil
}

// mediaType is the lower-case media type of a MIME type, without
// parameters.
func mediaType(m string) string {
	if mt, _, err := mime.ParseMediaType(m); err == nil {
		return mt
	}
	return strings.ToLower(strings.TrimSpace(m))
}

// textLike reports whether documents of media type mt are text.
func textLike(mt string) bool {
	if strings.HasPrefix(mt, "text/") {
		return true
	}
	switch mt {
	case "application/json", "application/xml", "application/yaml", "application/x-yaml",
		"application/x-ndjson", "application/csv", "application/javascript", "application/toml":
		return true
	}
	return strings.HasSuffix(mt, "+json") || strings.HasSuffix(mt, "+xml")
}

// openAIImage reports whether OpenAI takes images of media type mt.
func openAIImage(mt string) bool {
	switch mt {
	case "image/png", "image/jpeg", "image/gif", "image/webp":
		return true
	}
	return false
}

// dataURL encodes data as a base64 data URL of media type mt.
func dataURL(mt string, data []byte) string {
	prefix := "data:" + mt + ";base64,"
	var b strings.Builder
	b.Grow(len(prefix) + base64.StdEncoding.EncodedLen(len(data)))
	b.WriteString(prefix)
	enc := base64.NewEncoder(base64.StdEncoding, &b)
	_, _ = enc.Write(data)
	_ = enc.Close()
	return b.String()
}
