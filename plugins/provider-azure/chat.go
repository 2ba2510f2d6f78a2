package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// filterKeys are Azure's content-filter annotations. The plugin strips
// them from every response and chunk, so clients see plain OpenAI shapes.
var (
	topFilterKeys    = []string{"prompt_filter_results", "prompt_annotations"}
	choiceFilterKeys = []string{"content_filter_results", "content_filter_offsets"}
)

// ChatCompletion implements provider.Provider.
func (a *Azure) ChatCompletion(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	in, err := a.instance()
	if err != nil {
		return nil, err
	}
	chat, err := req.Chat()
	if err != nil {
		return nil, err
	}
	body, err := upstreamChatBody(req, chat, in.documents, false)
	if err != nil {
		return nil, err
	}
	raw, header, err := in.call(ctx, http.MethodPost, in.deploymentURL(chat.Model, "chat/completions"), body)
	if err != nil {
		return nil, err
	}
	out, err := cleanCompletion(raw)
	if err != nil {
		return nil, err
	}
	return &provider.Response{Body: out, Header: relayHeaders(header)}, nil
}

// upstreamChatBody is the client's body as Azure takes it: every field
// the client sent, model set to the routed upstream model (Azure ignores
// it, the deployment in the path decides), stream fields only for
// streams, and document parts replaced by native parts or text.
func upstreamChatBody(req *provider.Request, chat *openai.ChatRequest, mode string, stream bool) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(req.Body, &top); err != nil {
		return nil, openai.InvalidRequest("", "invalid chat request: "+err.Error())
	}
	top["model"], _ = json.Marshal(chat.Model)
	if stream {
		top["stream"] = json.RawMessage("true")
	} else {
		delete(top, "stream")
		delete(top, "stream_options")
	}
	msgs, err := rewriteDocuments(top["messages"], req, mode)
	if err != nil {
		return nil, err
	}
	top["messages"] = msgs
	return marshal(top)
}

// rewriteDocuments replaces the document parts of messages. Messages
// without documents keep their exact bytes.
func rewriteDocuments(raw json.RawMessage, req *provider.Request, mode string) (json.RawMessage, error) {
	var msgs []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return nil, openai.InvalidRequest("messages", "messages must be an array of objects: "+err.Error())
	}
	changed := false
	for i, m := range msgs {
		content := m["content"]
		if len(content) == 0 || content[0] != '[' {
			continue
		}
		var parts []map[string]json.RawMessage
		if err := json.Unmarshal(content, &parts); err != nil {
			return nil, openai.InvalidRequest(fmt.Sprintf("messages[%d].content", i), "content parts must be objects: "+err.Error())
		}
		var role string
		json.Unmarshal(m["role"], &role)
		touched := false
		for j, p := range parts {
			if jsonString(p["type"]) != openai.PartDocument {
				continue
			}
			var ref openai.DocumentRef
			if err := json.Unmarshal(p["document"], &ref); err != nil || ref.ID == "" {
				return nil, openai.InvalidRequest(fmt.Sprintf("messages[%d].content[%d]", i, j), "document part without a resolved document id")
			}
			doc := req.Document(ref.ID)
			if doc == nil {
				return nil, openai.InvalidRequest(fmt.Sprintf("messages[%d].content[%d]", i, j), fmt.Sprintf("document %q was not resolved", ref.ID))
			}
			np, err := documentPart(doc, role, mode)
			if err != nil {
				return nil, err
			}
			parts[j] = np
			touched = true
		}
		if touched {
			b, err := marshal(parts)
			if err != nil {
				return nil, err
			}
			m["content"] = b
			changed = true
		}
	}
	if !changed {
		return raw, nil
	}
	return marshal(msgs)
}

// documentPart maps a resolved document to an Azure content part: in
// native mode a PDF becomes a file part and an image an image_url part
// (user messages only, where Azure takes them); everything else becomes a
// text part holding the document's text.
func documentPart(doc *provider.Document, role, mode string) (map[string]json.RawMessage, error) {
	mime := strings.ToLower(strings.TrimSpace(strings.Split(doc.MIMEType, ";")[0]))
	if mode == DocumentsNative && role == openai.RoleUser && len(doc.Data) > 0 {
		dataURL := "data:" + mime + ";base64," + base64.StdEncoding.EncodeToString(doc.Data)
		switch {
		case mime == "application/pdf":
			return part(map[string]any{"type": openai.PartFile, "file": openai.File{Filename: fileName(doc), FileData: dataURL}})
		case strings.HasPrefix(mime, "image/"):
			return part(map[string]any{"type": openai.PartImageURL, "image_url": openai.ImageURL{URL: dataURL}})
		}
	}
	text := doc.Text
	if text == "" && isTextual(mime) && utf8.Valid(doc.Data) {
		text = string(doc.Data)
	}
	if text == "" {
		return nil, openai.InvalidRequest("messages", fmt.Sprintf("document %q (%s) has no text to send to azure", fileName(doc), doc.MIMEType))
	}
	return part(map[string]any{"type": openai.PartText, "text": fmt.Sprintf("<document name=%q>\n%s\n</document>", fileName(doc), text)})
}

func fileName(doc *provider.Document) string {
	if doc.Name != "" {
		return doc.Name
	}
	return doc.ID
}

func isTextual(mime string) bool {
	switch {
	case strings.HasPrefix(mime, "text/"), mime == "application/json", mime == "application/xml",
		strings.HasSuffix(mime, "+json"), strings.HasSuffix(mime, "+xml"):
		return true
	}
	return false
}

func part(v map[string]any) (map[string]json.RawMessage, error) {
	out := make(map[string]json.RawMessage, len(v))
	for k, x := range v {
		b, err := marshal(x)
		if err != nil {
			return nil, err
		}
		out[k] = b
	}
	return out, nil
}

// cleanCompletion strips Azure's filter annotations from a chat.completion
// body and keeps every other field.
func cleanCompletion(raw []byte) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "bad_upstream_response",
			"azure returned a chat completion that is not JSON: "+err.Error())
	}
	if e, ok := top["error"]; ok && string(e) != "null" {
		return nil, upstreamError(http.StatusBadGateway, nil, raw)
	}
	choices, err := cleanChoices(top["choices"], false)
	if err != nil {
		return nil, err
	}
	for _, k := range topFilterKeys {
		delete(top, k)
	}
	top["choices"] = choices
	return marshal(top)
}

// cleanChoices strips filter annotations from each choice. With
// needDelta, choices without a delta (annotation-only stream choices) are
// dropped.
func cleanChoices(raw json.RawMessage, needDelta bool) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage("[]"), nil
	}
	var choices []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &choices); err != nil {
		return nil, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "bad_upstream_response",
			"azure returned choices that are not objects: "+err.Error())
	}
	kept := choices[:0]
	for _, c := range choices {
		if d, ok := c["delta"]; needDelta && (!ok || string(d) == "null") {
			continue
		}
		for _, k := range choiceFilterKeys {
			delete(c, k)
		}
		kept = append(kept, c)
	}
	return marshal(kept)
}

// marshal encodes v without HTML escaping, so text passes unchanged.
func marshal(v any) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encoding json: %w", err)
	}
	return []byte(strings.TrimSuffix(b.String(), "\n")), nil
}
