package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-oci/ocifake"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/sdktest/golden"
)

// fixedNow makes "created" reproducible.
var fixedNow = time.Unix(1730000000, 0)

const (
	genericModel = "meta.llama-3.3-70b-instruct"
	cohereModel  = "cohere.command-r-plus-08-2024"
)

var (
	keyOnce sync.Once
	testKey *ocifake.Key
)

// sharedKey is one signing key for the whole test binary: RSA key
// generation is slow.
func sharedKey(t testing.TB) *ocifake.Key {
	t.Helper()
	keyOnce.Do(func() {
		k, err := ocifake.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		testKey = k
	})
	return testKey
}

// startFake starts a fake OCI Generative AI service for the test.
func startFake(t testing.TB) *ocifake.Server {
	t.Helper()
	f := ocifake.New(ocifake.Options{Key: sharedKey(t)})
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// fakeConfig is a provider config pointing at f.
func fakeConfig(f *ocifake.Server, extra string) *provider.Config {
	return &provider.Config{
		Instance: "oci_test",
		JSON: []byte(`{"region":"us-chicago-1","endpoint":"` + f.URL() + `","compartment_id":"` + f.Compartment() + `"` +
			`,"dedicated_api_format":{"ocid1.generativeaiendpoint.oc1.us-chicago-1.cohere1":"COHERE"}` + extra + `}`),
		Credentials: f.Credentials(),
	}
}

// newProvider returns a provider configured against f.
func newProvider(t testing.TB, f *ocifake.Server, extra string) *OCI {
	t.Helper()
	o := &OCI{now: func() time.Time { return fixedNow }}
	if err := o.Configure(context.Background(), fakeConfig(f, extra)); err != nil {
		t.Fatal(err)
	}
	return o
}

// chunks is a ChunkWriter that keeps what it is given.
type chunks [][]byte

func (c *chunks) WriteChunk(b []byte) error {
	*c = append(*c, append([]byte(nil), b...))
	return nil
}

type goldenCase struct {
	name     string
	body     string
	docs     []provider.Document
	scenario ocifake.Scenario
	// stream, when set, replaces scenario for the streamed run.
	stream *ocifake.Scenario
	fail   *ocifake.Failure
	// refused says the plugin answers 400 without calling the upstream.
	refused bool
	// streamFails says the stream ends with an error after its chunks.
	streamFails bool
}

var pdfBytes = []byte("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")

const pngDataURL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="

const weatherTools = `"tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather for a city.","parameters":{"type":"object","properties":{"city":{"type":"string","description":"City name"},"days":{"type":"integer"}},"required":["city"]},"strict":true}},{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]`

// body builds a chat body for model with the given fields.
func body(model, fields string) string {
	return `{"model":"` + model + `",` + fields + `}`
}

const hello = `"messages":[{"role":"user","content":"Hello"}]`

func goldenCases() []goldenCase {
	var cases []goldenCase
	for _, f := range []struct{ prefix, model string }{{"generic", genericModel}, {"cohere", cohereModel}} {
		m := f.model
		add := func(c goldenCase) {
			c.name = f.prefix + "_" + c.name
			cases = append(cases, c)
		}
		cohere := f.prefix == "cohere"
		finish := func(generic, coh string) string {
			if cohere {
				return coh
			}
			return generic
		}
		add(goldenCase{name: "plain_text", body: body(m, `"messages":[{"role":"user","content":"Hello there!"}]`),
			scenario: ocifake.Scenario{Text: "Hello! How can I help you today? 😊", Usage: ocifake.Usage{Prompt: 20, Completion: 11, Cached: 4}}})
		add(goldenCase{name: "system_prompt", body: body(m, `"messages":[{"role":"system","content":"You are terse."},{"role":"developer","content":[{"type":"text","text":"Answer in French."}]},{"role":"user","content":"Say hi"}],`+
			`"temperature":0.5,"top_p":0.9,"max_tokens":50,"max_completion_tokens":100,"seed":7,"presence_penalty":0.5,"frequency_penalty":0.25,"user":"u-42"`),
			scenario: ocifake.Scenario{Text: "Salut."}})
		add(goldenCase{name: "multi_turn", body: body(m, `"messages":[{"role":"user","content":"My name is Ada."},{"role":"assistant","content":"Nice to meet you, Ada."},`+
			`{"role":"user","content":"What is my name?"},{"role":"user","content":[{"type":"text","text":"Answer in one word."}]}]`),
			scenario: ocifake.Scenario{Text: "Ada."}})
		toolChoice := `,"tool_choice":"auto"`
		add(goldenCase{name: "tool_call", body: body(m, `"messages":[{"role":"user","content":"Weather in Paris?"}],`+weatherTools+toolChoice),
			scenario: ocifake.Scenario{Text: "Let me check.", ToolCalls: []ocifake.ToolCall{{ID: "call_w1", Name: "get_weather", Arguments: `{"city":"Paris"}`}},
				Usage: ocifake.Usage{Prompt: 300, Completion: 40}}})
		parallel := ocifake.Scenario{ToolCalls: []ocifake.ToolCall{
			{ID: "call_w1", Name: "get_weather", Arguments: `{"city":"São Paulo, BR","note":"say \"hi\": {ok}"}`},
			{ID: "call_t2", Name: "get_time", Arguments: `{"city":"São Paulo, BR"}`},
		}, Usage: ocifake.Usage{Prompt: 310, Completion: 90}}
		ps := parallel
		ps.ChunkSize, ps.SplitWrites, ps.SingleNewline, ps.Pad = 5, true, true, true
		add(goldenCase{name: "parallel_tool_calls", body: body(m, `"messages":[{"role":"user","content":"Weather and time in São Paulo?"}],`+weatherTools),
			scenario: parallel, stream: &ps})
		add(goldenCase{name: "tool_results", body: body(m, `"messages":[{"role":"user","content":"Weather and time in Paris?"},`+
			`{"role":"assistant","content":null,"tool_calls":[{"id":"call_w1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}},{"id":"call_t2","type":"function","function":{"name":"get_time","arguments":""}}]},`+
			`{"role":"tool","tool_call_id":"call_w1","content":"18C, sunny"},{"role":"tool","tool_call_id":"call_t2","content":[{"type":"text","text":"{\"time\":\"14:05\"}"}]},`+
			`{"role":"user","content":"Summarise."}],`+weatherTools),
			scenario: ocifake.Scenario{Text: "It is 18C and sunny in Paris at 14:05."}})
		add(goldenCase{name: "tool_results_last", body: body(m, `"messages":[{"role":"user","content":"Weather in Paris?"},`+
			`{"role":"assistant","content":"Checking.","tool_calls":[{"id":"call_w1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},`+
			`{"role":"tool","tool_call_id":"call_w1","content":"18C, sunny"}],`+weatherTools),
			scenario: ocifake.Scenario{Text: "It is 18C and sunny."}})
		img := goldenCase{name: "image", body: body(m, `"messages":[{"role":"user","content":[{"type":"text","text":"Compare these images."},`+
			`{"type":"image_url","image_url":{"url":"`+pngDataURL+`","detail":"high"}},{"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}}]}]`),
			scenario: ocifake.Scenario{Text: "Both show a single pixel and a cat."}}
		img.refused = cohere
		add(img)
		add(goldenCase{name: "pdf_document", body: body(m, `"messages":[{"role":"user","content":[{"type":"text","text":"Summarise the documents."},`+
			`{"type":"document","document":{"id":"doc_0","name":"report.pdf"}},{"type":"document","document":{"id":"doc_1","name":"notes.md"}}`+
			map[bool]string{false: `,{"type":"file","file":{"filename":"inline.pdf","file_data":"data:application/pdf;base64,` + base64.StdEncoding.EncodeToString(pdfBytes) + `"}}`, true: ""}[cohere]+`]}]`),
			docs: []provider.Document{
				{ID: "doc_0", Name: "report.pdf", MIMEType: "application/pdf", Data: pdfBytes, Text: "Quarterly report"},
				{ID: "doc_1", Name: "notes.md", MIMEType: "text/markdown; charset=utf-8", Data: []byte("# Notes\nQubits are fun.\n"), Text: "Notes\nQubits are fun."},
			},
			scenario: ocifake.Scenario{Text: "The report is quarterly; the notes are about qubits."}})
		add(goldenCase{name: "stop_sequence", body: body(m, `"messages":[{"role":"user","content":"Count to ten."}],"stop":["five","six"]`),
			scenario: ocifake.Scenario{Text: "one, two, three, four, "}})
		add(goldenCase{name: "length", body: body(m, `"messages":[{"role":"user","content":"Write an essay."}],"max_tokens":5`),
			scenario: ocifake.Scenario{Text: "Essays are a form", FinishReason: finish("length", "MAX_TOKENS"), Usage: ocifake.Usage{Prompt: 11, Completion: 5}}})
		add(goldenCase{name: "json_object", body: body(m, `"messages":[{"role":"user","content":"Give me a JSON greeting."}],"response_format":{"type":"json_object"}`),
			scenario: ocifake.Scenario{Text: `{"greeting":"hello, world"}`}})
		add(goldenCase{name: "json_schema", body: body(m, `"messages":[{"role":"user","content":"Capital of France, as JSON."}],`+
			`"response_format":{"type":"json_schema","json_schema":{"name":"capital","description":"A capital city.","schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"strict":true}}`),
			scenario: ocifake.Scenario{Text: `{"city":"Paris"}`}})
		add(goldenCase{name: "error_400", body: body(m, hello), fail: &ocifake.Failure{Status: 400, Code: "InvalidParameter", Message: "Please pass a valid value for temperature."}})
		add(goldenCase{name: "error_401", body: body(m, hello), fail: &ocifake.Failure{Status: 401}})
		add(goldenCase{name: "error_404", body: body(m, hello), fail: &ocifake.Failure{Status: 404}})
		add(goldenCase{name: "error_429", body: body(m, hello), fail: &ocifake.Failure{Status: 429, RetryAfter: "7"}})
		add(goldenCase{name: "error_500", body: body(m, hello), fail: &ocifake.Failure{Status: 500}})
		add(goldenCase{name: "error_503", body: body(m, hello), fail: &ocifake.Failure{Status: 503, RetryAfter: "2"}})
		add(goldenCase{name: "error_mid_stream", body: body(m, hello), scenario: ocifake.Scenario{Text: "This answer will not finish."},
			stream: &ocifake.Scenario{Text: "This answer will not finish.", ErrorAfter: 2}, streamFails: true})
		add(goldenCase{name: "cut_off_stream", body: body(m, hello), scenario: ocifake.Scenario{Text: "This answer is cut off."},
			stream: &ocifake.Scenario{Text: "This answer is cut off.", CutAfter: 2}, streamFails: true})
	}
	cases = append(cases,
		goldenCase{name: "generic_tool_calls_without_ids", body: body("google.gemini-2.5-flash", `"messages":[{"role":"user","content":"Weather and time in Paris?"}],`+weatherTools+`,"tool_choice":"required","parallel_tool_calls":true`),
			scenario: ocifake.Scenario{ToolCalls: []ocifake.ToolCall{{Name: "get_weather", Arguments: `{"city":"Paris"}`}, {Name: "get_time", Arguments: `{"city":"Paris"}`}}},
			stream:   &ocifake.Scenario{ToolCalls: []ocifake.ToolCall{{Name: "get_weather", Arguments: `{"city":"Paris"}`}, {Name: "get_time", Arguments: `{"city":"Paris"}`}}, ChunkSize: 3}},
		goldenCase{name: "generic_named_tool_choice", body: body(genericModel, `"messages":[{"role":"user","content":"Weather in Paris?"}],`+weatherTools+`,"tool_choice":{"type":"function","function":{"name":"get_weather"}},"parallel_tool_calls":false`),
			scenario: ocifake.Scenario{ToolCalls: []ocifake.ToolCall{{ID: "call_w1", Name: "get_weather", Arguments: `{"city":"Paris"}`}}}},
		goldenCase{name: "generic_openai_max_completion_tokens", body: body("openai.gpt-oss-120b", `"messages":[{"role":"user","content":"Think, then answer."}],"max_tokens":300,"reasoning_effort":"low"`),
			scenario: ocifake.Scenario{Text: "42.", Usage: ocifake.Usage{Prompt: 10, Completion: 60, Reasoning: 55}}},
		goldenCase{name: "generic_default_max_tokens_openai", body: body("openai.gpt-oss-20b", hello),
			scenario: ocifake.Scenario{Text: "Hi."}},
		goldenCase{name: "generic_reasoning_without_message", body: body("openai.gpt-oss-120b", `"messages":[{"role":"user","content":"Prove it."}],"max_completion_tokens":20`),
			scenario: ocifake.Scenario{NoMessage: true, FinishReason: "length", Usage: ocifake.Usage{Prompt: 10, Completion: 20, Reasoning: 20}}},
		goldenCase{name: "generic_dedicated_endpoint", body: body("ocid1.generativeaiendpoint.oc1.us-chicago-1.llama1", hello),
			scenario: ocifake.Scenario{Text: "Hello from a dedicated cluster."}},
		goldenCase{name: "generic_n_choices_refused_audio", body: body(genericModel, `"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]`), refused: true},
		goldenCase{name: "cohere_dedicated_endpoint", body: body("ocid1.generativeaiendpoint.oc1.us-chicago-1.cohere1", hello),
			scenario: ocifake.Scenario{Text: "Hello from a dedicated Cohere cluster."}},
		goldenCase{name: "cohere_content_filter", body: body(cohereModel, hello), scenario: ocifake.Scenario{Text: "I can't", FinishReason: "ERROR_TOXIC"}},
		goldenCase{name: "cohere_model_error", body: body(cohereModel, hello), scenario: ocifake.Scenario{Text: "Partial", FinishReason: "ERROR", ErrorMessage: "generation failed"}, streamFails: true},
		goldenCase{name: "cohere_tool_choice_refused", body: body(cohereModel, `"messages":[{"role":"user","content":"Weather?"}],`+weatherTools+`,"tool_choice":"required"`), refused: true},
		goldenCase{name: "cohere_n_refused", body: body(cohereModel, `"messages":[{"role":"user","content":"Hi"}],"n":2`), refused: true},
		goldenCase{name: "cohere_tool_calls_final_only", body: body(cohereModel, `"messages":[{"role":"user","content":"Weather and time in Paris?"}],`+weatherTools),
			scenario: ocifake.Scenario{Text: "I will look both up.", ToolCalls: []ocifake.ToolCall{{Name: "get_weather", Arguments: `{"city":"Paris"}`}, {Name: "get_time", Arguments: `{"city":"Paris"}`}}, NoCohereToolEvents: true}},
	)
	return cases
}

func TestGolden(t *testing.T) {
	f := startFake(t)
	o := newProvider(t, f, "")
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join("testdata", tc.name)
			ctx := context.Background()
			req := &provider.Request{Body: []byte(tc.body), Documents: tc.docs}

			// Non-streamed.
			f.Reset()
			f.SetScenario(tc.scenario)
			if tc.fail != nil {
				f.FailNext(1, *tc.fail)
			}
			resp, unaryErr := o.ChatCompletion(ctx, req)
			upstream := f.LastRequest()
			if tc.refused {
				if len(f.Requests()) != 0 {
					t.Fatalf("a refused request reached the upstream")
				}
			} else {
				golden.Compare(t, dir, "upstream.json", golden.JSON(t, upstream.Body))
				want := 200
				if tc.fail != nil {
					want = tc.fail.Status
				}
				checkSigned(t, f, upstream, want)
			}
			var unary openai.ChatCompletion
			if unaryErr != nil {
				golden.Compare(t, dir, "error.json", golden.Error(t, unaryErr))
			} else {
				golden.Compare(t, dir, "response.json", golden.JSON(t, resp.Body))
				if err := json.Unmarshal(resp.Body, &unary); err != nil {
					t.Fatal(err)
				}
			}

			// Streamed, with usage.
			f.Reset()
			sc := tc.scenario
			if tc.stream != nil {
				sc = *tc.stream
			}
			f.SetScenario(sc)
			if tc.fail != nil {
				f.FailNext(1, *tc.fail)
			}
			sreq := *req
			sreq.Body = golden.Streamed(t, req.Body)
			var got chunks
			streamErr := o.ChatCompletionStream(ctx, &sreq, &got)
			var lines bytes.Buffer
			for _, c := range got {
				lines.Write(c)
				lines.WriteByte('\n')
			}
			if streamErr != nil {
				lines.WriteString("error: ")
				lines.Write(bytes.TrimSpace(golden.Error(t, streamErr)))
				lines.WriteByte('\n')
			}
			golden.Compare(t, dir, "stream.jsonl", lines.Bytes())
			if !tc.refused {
				sameUpstream(t, upstream.Body, f.LastRequest().Body)
			}

			switch {
			case tc.streamFails:
				if streamErr == nil {
					t.Errorf("stream: want an error, got none")
				}
			case unaryErr != nil:
				// The stream fails before any chunk, the same way.
				if streamErr == nil || len(got) != 0 || golden.Status(streamErr) != golden.Status(unaryErr) {
					t.Errorf("stream: %d chunks, error %v; want no chunks and %v", len(got), streamErr, unaryErr)
				}
			default:
				if streamErr != nil {
					t.Fatalf("stream: %v", streamErr)
				}
				checkFold(t, got, &unary)
			}
		})
	}
}

// checkSigned checks the Authorization header the upstream accepted.
func checkSigned(t *testing.T, f *ocifake.Server, r ocifake.Request, status int) {
	t.Helper()
	auth := r.Header.Get("Authorization")
	want := `Signature version="1",headers="date (request-target) host content-length content-type x-content-sha256",keyId="` + f.KeyID() + `",algorithm="rsa-sha256",signature="`
	if !strings.HasPrefix(auth, want) {
		t.Errorf("upstream Authorization = %q, want it to start with %q", auth, want)
	}
	if r.Status != status {
		t.Errorf("the fake answered %d, want %d (a 401 here means it refused the signature)", r.Status, status)
	}
}

// checkFold folds the chunks and compares them with the non-streamed
// completion.
func checkFold(t *testing.T, got chunks, unary *openai.ChatCompletion) {
	t.Helper()
	var acc openai.Accumulator
	for _, c := range got {
		if err := acc.Add(c); err != nil {
			t.Fatalf("stream breaks the chunk rules: %v", err)
		}
	}
	if acc.UsageChunks != 1 {
		t.Errorf("usage chunks = %d, want 1", acc.UsageChunks)
	}
	var last openai.ChatChunk
	if err := json.Unmarshal(got[len(got)-1], &last); err != nil || len(last.Choices) != 0 || last.Usage == nil {
		t.Errorf("last chunk is not the usage chunk: %s", got[len(got)-1])
	}
	var fin openai.ChatChunk
	if err := json.Unmarshal(got[len(got)-2], &fin); err != nil || len(fin.Choices) != 1 || fin.Choices[0].FinishReason == nil ||
		fin.Choices[0].Delta.Content != nil || fin.Choices[0].Delta.ToolCalls != nil || fin.Choices[0].Delta.Role != "" {
		t.Errorf("second to last chunk is not a finishing chunk with an empty delta: %s", got[len(got)-2])
	}
	folded := acc.Completion()
	for i := range folded.Choices {
		folded.Choices[i].Logprobs = json.RawMessage("null")
	}
	fb, _ := json.Marshal(folded)
	want, _ := json.Marshal(unary)
	if !bytes.Equal(fb, want) {
		t.Errorf("folded stream differs from the non-streamed completion:\nstream: %s\nunary:  %s", fb, want)
	}
}

// sameUpstream checks that the streamed upstream request is the
// non-streamed one plus isStream and streamOptions.
func sameUpstream(t *testing.T, unary, stream []byte) {
	t.Helper()
	var u, s map[string]map[string]any
	var ur, sr map[string]any
	if err := json.Unmarshal(unary, &ur); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(stream, &sr); err != nil {
		t.Fatal(err)
	}
	u = map[string]map[string]any{"cr": ur["chatRequest"].(map[string]any)}
	s = map[string]map[string]any{"cr": sr["chatRequest"].(map[string]any)}
	if s["cr"]["isStream"] != true || u["cr"]["isStream"] != false {
		t.Errorf("isStream: unary %v, stream %v", u["cr"]["isStream"], s["cr"]["isStream"])
	}
	if so, _ := s["cr"]["streamOptions"].(map[string]any); so == nil || so["isIncludeUsage"] != true {
		t.Errorf("streamed upstream request lacks streamOptions.isIncludeUsage")
	}
	for _, m := range []map[string]any{u["cr"], s["cr"]} {
		delete(m, "isStream")
		delete(m, "streamOptions")
	}
	ub, _ := json.Marshal(ur)
	sb, _ := json.Marshal(sr)
	if !bytes.Equal(ub, sb) {
		t.Errorf("streamed upstream request differs:\n%s\n%s", ub, sb)
	}
}

func TestGoldenFilesHaveNoStrayCases(t *testing.T) {
	names := map[string]bool{}
	for _, tc := range goldenCases() {
		names[tc.name] = true
	}
	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && !names[e.Name()] && e.Name() != "fuzz" && !strings.HasPrefix(e.Name(), ".") {
			t.Errorf("testdata/%s belongs to no golden case", e.Name())
		}
	}
}
