package vertexfake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// The API decodes requests as protobuf JSON: it accepts lowerCamel and
// snake_case field names and refuses any other name with "Invalid JSON
// payload received. Unknown name". The validator works on the decoded
// JSON with an allowlist per message type.

// request is what the fake needs to know of a valid request.
type request struct {
	model          string
	candidateCount int
	promptChars    int
	jsonMode       bool
	// toolResults says the last turn carries function responses.
	toolResults bool
}

var (
	requestFields = fields("contents", "systemInstruction", "tools", "toolConfig", "generationConfig",
		"safetySettings", "labels", "cachedContent")
	contentFields = fields("role", "parts")
	partFields    = fields("text", "inlineData", "fileData", "functionCall", "functionResponse", "thought",
		"thoughtSignature", "videoMetadata", "executableCode", "codeExecutionResult")
	blobFields     = fields("mimeType", "data", "displayName")
	fileDataFields = fields("mimeType", "fileUri", "displayName")
	// Vertex AI's v1 refuses the id fields of the Gemini Developer API on
	// function calls and responses.
	callFields     = fields("name", "args")
	responseFields = fields("name", "response")
	toolFields     = fields("functionDeclarations", "googleSearch", "googleSearchRetrieval", "codeExecution", "retrieval")
	declFields     = fields("name", "description", "parameters", "parametersJsonSchema", "response")
	toolConfFields = fields("functionCallingConfig", "retrievalConfig")
	fccFields      = fields("mode", "allowedFunctionNames")
	genFields      = fields("temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "stopSequences",
		"presencePenalty", "frequencyPenalty", "seed", "responseMimeType", "responseSchema", "responseJsonSchema",
		"responseLogprobs", "logprobs", "thinkingConfig", "responseModalities", "mediaResolution", "audioTimestamp")
	schemaFields = fields("type", "format", "title", "description", "nullable", "default", "items", "minItems",
		"maxItems", "enum", "properties", "propertyOrdering", "required", "minProperties", "maxProperties",
		"minLength", "maxLength", "pattern", "example", "anyOf", "minimum", "maximum")
	schemaTypes = map[string]bool{"STRING": true, "NUMBER": true, "INTEGER": true, "BOOLEAN": true, "ARRAY": true, "OBJECT": true, "NULL": true}
)

// fields maps the accepted spellings of each field name (lowerCamel and
// snake_case) to the lowerCamel name.
func fields(names ...string) map[string]string {
	m := map[string]string{}
	for _, n := range names {
		m[n] = n
		m[snake(n)] = n
	}
	return m
}

func snake(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// object checks that v is a JSON object whose keys are all allowed and
// returns it keyed by lowerCamel names.
func object(v any, allowed map[string]string, at string) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, invalidf("Invalid JSON payload received. Expected an object at '%s'.", at)
	}
	out := map[string]any{}
	for k, x := range m {
		name, ok := allowed[k]
		if !ok {
			if at == "" {
				return nil, invalidf("Invalid JSON payload received. Unknown name %q: Cannot find field.", k)
			}
			return nil, invalidf("Invalid JSON payload received. Unknown name %q at '%s': Cannot find field.", k, at)
		}
		out[name] = x
	}
	return out, nil
}

func array(v any, at string) ([]any, error) {
	if v == nil {
		return nil, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, invalidf("Invalid JSON payload received. Expected an array at '%s'.", at)
	}
	return a, nil
}

func number(v any, at string) (float64, error) {
	f, ok := v.(float64)
	if !ok {
		return 0, invalidf("Invalid JSON payload received. Invalid value at '%s': expected a number.", at)
	}
	return f, nil
}

// validateGenerate checks a GenerateContentRequest.
func (s *Server) validateGenerate(body []byte, model string) (*request, error) {
	var root any
	if err := json.Unmarshal(body, &root); err != nil {
		return nil, invalidf("Invalid JSON payload received. %v", err)
	}
	top, err := object(root, requestFields, "")
	if err != nil {
		return nil, err
	}
	req := &request{model: model, candidateCount: 1}
	contents, err := array(top["contents"], "contents")
	if err != nil {
		return nil, err
	}
	if len(contents) == 0 {
		return nil, invalidf("Unable to submit request because it must include at least one parts field, which describes the prompt input. Learn more: https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/gemini")
	}
	type turn struct {
		role  string
		calls []string
		resps []string
	}
	var turns []turn
	for i, c := range contents {
		at := fmt.Sprintf("contents[%d]", i)
		cm, err := object(c, contentFields, at)
		if err != nil {
			return nil, err
		}
		role, _ := cm["role"].(string)
		if role != "user" && role != "model" {
			return nil, invalidf("Please use a valid role: user, model.")
		}
		parts, err := array(cm["parts"], at+".parts")
		if err != nil {
			return nil, err
		}
		if len(parts) == 0 {
			return nil, invalidf("Unable to submit request because it has an empty contents.parts field. Learn more: https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/gemini")
		}
		t := turn{role: role}
		firstCall := true
		for j, p := range parts {
			pat := fmt.Sprintf("%s.parts[%d]", at, j)
			info, err := s.validatePart(p, pat, role)
			if err != nil {
				return nil, err
			}
			req.promptChars += info.chars
			if info.call != "" {
				t.calls = append(t.calls, info.call)
				if firstCall && strings.HasPrefix(model, "gemini-3") && !info.signed {
					return nil, invalidf("Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call `default_api:%s` , position %d. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.", info.call, i+1)
				}
				firstCall = false
			}
			if info.resp != "" {
				t.resps = append(t.resps, info.resp)
			}
		}
		turns = append(turns, t)
	}
	req.toolResults = len(turns[len(turns)-1].resps) > 0
	for i, t := range turns {
		if i > 0 && turns[i-1].role == t.role {
			return nil, invalidf("Please ensure that multiturn requests alternate between user and model.")
		}
		if len(t.calls) > 0 {
			if i+1 < len(turns) && !sameNames(t.calls, turns[i+1].resps) {
				return nil, invalidf("Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.")
			}
		}
		if len(t.resps) > 0 && (i == 0 || !sameNames(turns[i-1].calls, t.resps)) {
			return nil, invalidf("Please ensure that function response turn comes immediately after a function call turn.")
		}
	}
	if si, ok := top["systemInstruction"]; ok && si != nil {
		cm, err := object(si, contentFields, "system_instruction")
		if err != nil {
			return nil, err
		}
		parts, err := array(cm["parts"], "system_instruction.parts")
		if err != nil {
			return nil, err
		}
		for j, p := range parts {
			pm, err := object(p, partFields, fmt.Sprintf("system_instruction.parts[%d]", j))
			if err != nil {
				return nil, err
			}
			text, ok := pm["text"].(string)
			if !ok || len(pm) != 1 {
				return nil, invalidf("System instruction must only contain text parts.")
			}
			req.promptChars += len(text)
		}
	}
	declared, err := validateTools(top["tools"])
	if err != nil {
		return nil, err
	}
	if tc, ok := top["toolConfig"]; ok {
		if err := validateToolConfig(tc, declared); err != nil {
			return nil, err
		}
	}
	if gc, ok := top["generationConfig"]; ok {
		if err := validateGeneration(gc, req); err != nil {
			return nil, err
		}
	}
	if l, ok := top["labels"]; ok {
		m, ok := l.(map[string]any)
		if !ok {
			return nil, invalidf("Invalid JSON payload received. Expected an object at 'labels'.")
		}
		for k, v := range m {
			if _, ok := v.(string); !ok || !labelRE.MatchString(k) {
				return nil, invalidf("Invalid label %q.", k)
			}
		}
	}
	return req, nil
}

var (
	labelRE    = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	functionRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_.:-]{0,127}$`)
)

func sameNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	count := map[string]int{}
	for _, x := range a {
		count[x]++
	}
	for _, x := range b {
		count[x]--
		if count[x] < 0 {
			return false
		}
	}
	return true
}

// partInfo is what one part contributes.
type partInfo struct {
	chars  int
	call   string
	resp   string
	signed bool
}

func (s *Server) validatePart(p any, at, role string) (partInfo, error) {
	var info partInfo
	pm, err := object(p, partFields, at)
	if err != nil {
		return info, err
	}
	data := 0
	for _, k := range []string{"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode", "codeExecutionResult"} {
		if _, ok := pm[k]; ok {
			data++
		}
	}
	if data != 1 {
		return info, invalidf("Unable to submit request because it has a part with no data (or more than one kind of data) at %s. Each part must set exactly one of text, inline_data, file_data, function_call or function_response.", at)
	}
	if t, ok := pm["text"]; ok {
		text, ok := t.(string)
		if !ok {
			return info, invalidf("Invalid value at '%s.text' (TYPE_STRING).", at)
		}
		info.chars += len(text)
	}
	if b, ok := pm["inlineData"]; ok {
		bm, err := object(b, blobFields, at+".inline_data")
		if err != nil {
			return info, err
		}
		mime, _ := bm["mimeType"].(string)
		data, _ := bm["data"].(string)
		if mime == "" {
			return info, invalidf("Unable to submit request because it has an empty mimeType in inline_data.")
		}
		if !supportedMIME(mime) {
			return info, invalidf("Unable to submit request because it has a mimeType parameter with value %s, which is not supported.", mime)
		}
		if _, err := base64.StdEncoding.DecodeString(data); err != nil || data == "" {
			return info, invalidf("Invalid value at '%s.inline_data.data' (TYPE_BYTES), Base64 decoding failed.", at)
		}
		info.chars += 258 * 4 // an image or page costs about 258 tokens
	}
	if f, ok := pm["fileData"]; ok {
		fm, err := object(f, fileDataFields, at+".file_data")
		if err != nil {
			return info, err
		}
		mime, _ := fm["mimeType"].(string)
		uri, _ := fm["fileUri"].(string)
		if mime == "" || uri == "" {
			return info, invalidf("Unable to submit request because file_data needs mime_type and file_uri.")
		}
		if !strings.HasPrefix(uri, "gs://") && !strings.HasPrefix(uri, "https://") && !strings.HasPrefix(uri, "http://") {
			return info, invalidf("Unsupported file uri: %s", uri)
		}
		info.chars += 258 * 4
	}
	if c, ok := pm["functionCall"]; ok {
		if role != "model" {
			return info, invalidf("Please ensure that function call turns come immediately after a user turn or after a function response turn.")
		}
		cm, err := object(c, callFields, at+".function_call")
		if err != nil {
			return info, err
		}
		name, _ := cm["name"].(string)
		if name == "" {
			return info, invalidf("Unable to submit request because function call at %s has no name.", at)
		}
		args, ok := cm["args"]
		if !ok {
			args = map[string]any{}
		}
		if _, ok := args.(map[string]any); !ok {
			return info, invalidf("Invalid value at '%s.function_call.args' (type.googleapis.com/google.protobuf.Struct), expected an object.", at)
		}
		info.call = name
		if sig, ok := pm["thoughtSignature"].(string); ok && sig != "" {
			if sig != s.signature(name, args) {
				return info, invalidf("Corrupted thought signature.")
			}
			info.signed = true
		}
		b, _ := json.Marshal(args)
		info.chars += len(name) + len(b)
	} else if sig, ok := pm["thoughtSignature"].(string); ok && sig != "" {
		if _, err := base64.StdEncoding.DecodeString(sig); err != nil {
			return info, invalidf("Corrupted thought signature.")
		}
	}
	if r, ok := pm["functionResponse"]; ok {
		if role != "user" {
			return info, invalidf("Please ensure that function response turn comes immediately after a function call turn.")
		}
		rm, err := object(r, responseFields, at+".function_response")
		if err != nil {
			return info, err
		}
		name, _ := rm["name"].(string)
		if name == "" {
			return info, invalidf("Unable to submit request because function response at %s has no name.", at)
		}
		if _, ok := rm["response"].(map[string]any); !ok {
			return info, invalidf("Invalid value at '%s.function_response.response' (type.googleapis.com/google.protobuf.Struct), expected an object.", at)
		}
		info.resp = name
		b, _ := json.Marshal(rm["response"])
		info.chars += len(b)
	}
	return info, nil
}

// supportedMIME lists the inline media types Gemini reads.
func supportedMIME(m string) bool {
	switch {
	case m == "application/pdf", m == "text/plain":
		return true
	case strings.HasPrefix(m, "image/"), strings.HasPrefix(m, "audio/"), strings.HasPrefix(m, "video/"):
		return true
	}
	return false
}

// signature is the thought signature the fake issues for a call: an HMAC
// of the call under the fake's secret, so the fake can tell its own
// signatures from forged or misplaced ones without keeping state.
func (s *Server) signature(name string, args any) string {
	b, _ := json.Marshal(args) // map keys are sorted: a canonical form
	m := hmac.New(sha256.New, s.sigKey)
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write(b)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func validateTools(v any) (map[string]bool, error) {
	declared := map[string]bool{}
	tools, err := array(v, "tools")
	if err != nil {
		return nil, err
	}
	for i, t := range tools {
		at := fmt.Sprintf("tools[%d]", i)
		tm, err := object(t, toolFields, at)
		if err != nil {
			return nil, err
		}
		decls, err := array(tm["functionDeclarations"], at+".function_declarations")
		if err != nil {
			return nil, err
		}
		for j, d := range decls {
			dat := fmt.Sprintf("%s.function_declarations[%d]", at, j)
			dm, err := object(d, declFields, dat)
			if err != nil {
				return nil, err
			}
			name, _ := dm["name"].(string)
			if !functionRE.MatchString(name) {
				return nil, invalidf("Invalid function name %q at '%s.name'. Must start with a letter or an underscore and contain only a-z, A-Z, 0-9, underscores, dots, colons or dashes, with a maximum length of 128.", name, dat)
			}
			if declared[name] {
				return nil, invalidf("Duplicate function declaration found: %s", name)
			}
			declared[name] = true
			if p, ok := dm["parameters"]; ok {
				if err := validateSchema(p, dat+".parameters", 0); err != nil {
					return nil, err
				}
				pm := p.(map[string]any)
				if strings.EqualFold(fmt.Sprint(pm["type"]), "object") {
					if props, _ := pm["properties"].(map[string]any); len(props) == 0 {
						return nil, invalidf("Unable to submit request because one or more function parameters didn't specify the schema type field, or the object has no properties: %s.parameters.properties: should be non-empty for OBJECT type", dat)
					}
				}
			}
		}
	}
	return declared, nil
}

// validateSchema checks an OpenAPI-subset Schema.
func validateSchema(v any, at string, depth int) error {
	if depth > 32 {
		return invalidf("Schema at '%s' is nested too deeply.", at)
	}
	m, err := object(v, schemaFields, at)
	if err != nil {
		return err
	}
	if t, ok := m["type"]; ok {
		ts, ok := t.(string)
		if !ok || !schemaTypes[strings.ToUpper(ts)] {
			return invalidf("Invalid value at '%s.type' (type.googleapis.com/google.cloud.aiplatform.v1.Type), %v", at, t)
		}
	}
	if props, ok := m["properties"]; ok {
		pm, ok := props.(map[string]any)
		if !ok {
			return invalidf("Invalid value at '%s.properties'.", at)
		}
		for k, x := range pm {
			if err := validateSchema(x, at+".properties["+k+"]", depth+1); err != nil {
				return err
			}
		}
		if req, ok := m["required"].([]any); ok {
			for _, r := range req {
				if _, ok := pm[fmt.Sprint(r)]; !ok {
					return invalidf("Unable to submit request because required field %v is not defined in the properties of '%s'.", r, at)
				}
			}
		}
	}
	if items, ok := m["items"]; ok {
		if err := validateSchema(items, at+".items", depth+1); err != nil {
			return err
		}
	}
	if alts, ok := m["anyOf"]; ok {
		list, ok := alts.([]any)
		if !ok {
			return invalidf("Invalid value at '%s.any_of'.", at)
		}
		for i, x := range list {
			if err := validateSchema(x, fmt.Sprintf("%s.any_of[%d]", at, i), depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func validateToolConfig(v any, declared map[string]bool) error {
	tm, err := object(v, toolConfFields, "tool_config")
	if err != nil {
		return err
	}
	fc, ok := tm["functionCallingConfig"]
	if !ok {
		return nil
	}
	fm, err := object(fc, fccFields, "tool_config.function_calling_config")
	if err != nil {
		return err
	}
	mode, _ := fm["mode"].(string)
	switch mode {
	case "AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED":
	default:
		return invalidf("Invalid value at 'tool_config.function_calling_config.mode' (type.googleapis.com/google.cloud.aiplatform.v1.FunctionCallingConfig.Mode), %q", mode)
	}
	names, err := array(fm["allowedFunctionNames"], "tool_config.function_calling_config.allowed_function_names")
	if err != nil {
		return err
	}
	if len(names) > 0 && mode != "ANY" {
		return invalidf("allowed_function_names can only be set when mode is ANY.")
	}
	for _, n := range names {
		if !declared[fmt.Sprint(n)] {
			return invalidf("allowed_function_names contains %v, which is not a declared function.", n)
		}
	}
	if len(declared) == 0 && (mode == "ANY" || mode == "AUTO") {
		return invalidf("Function calling config is set without function_declarations.")
	}
	return nil
}

func validateGeneration(v any, req *request) error {
	gm, err := object(v, genFields, "generation_config")
	if err != nil {
		return err
	}
	check := func(name string, lo, hi float64) (float64, bool, error) {
		x, ok := gm[name]
		if !ok {
			return 0, false, nil
		}
		f, err := number(x, "generation_config."+snake(name))
		if err != nil {
			return 0, false, err
		}
		if f < lo || f > hi {
			return 0, false, invalidf("Unable to submit request because it has a %s value of %v but the supported range is from %v (inclusive) to %v (exclusive). Update the value and try again.", snake(name), f, lo, hi)
		}
		return f, true, nil
	}
	if _, _, err := check("temperature", 0, 2); err != nil {
		return err
	}
	if _, _, err := check("topP", 0, 1); err != nil {
		return err
	}
	if _, _, err := check("presencePenalty", -2, 2); err != nil {
		return err
	}
	if _, _, err := check("frequencyPenalty", -2, 2); err != nil {
		return err
	}
	if n, ok, err := check("candidateCount", 1, 8); err != nil {
		return err
	} else if ok {
		req.candidateCount = int(n)
	}
	if _, _, err := check("maxOutputTokens", 1, 65536); err != nil {
		return err
	}
	stops, err := array(gm["stopSequences"], "generation_config.stop_sequences")
	if err != nil {
		return err
	}
	if len(stops) > 5 {
		return invalidf("Unable to submit request because it has more than 5 stop sequences.")
	}
	mime, _ := gm["responseMimeType"].(string)
	switch mime {
	case "", "text/plain":
	case "application/json", "text/x.enum":
		req.jsonMode = true
	default:
		return invalidf("Unable to submit request because it has a response_mime_type with value %s, which is not supported.", mime)
	}
	if rs, ok := gm["responseSchema"]; ok {
		if !req.jsonMode {
			return invalidf("Unable to submit request because response_schema was set but response_mime_type was not application/json or text/x.enum.")
		}
		if err := validateSchema(rs, "generation_config.response_schema", 0); err != nil {
			return err
		}
	}
	return nil
}
