package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/llmproxy/llmproxy/plugins/provider-oci/ocifake"
	"github.com/llmproxy/llmproxy/plugins/provider-vertex/vertexfake"
	"github.com/llmproxy/llmproxy/plugins/provider-watsonx/watsonxfake"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/test/harness"
)

// routeBlocks matches the top-level route blocks of a harness config, so
// that the per-provider configs above can be combined into one.
var routeBlocks = regexp.MustCompile(`(?s)\nroute "[^"]*" \{.*?\n\}\n`)

// instancesOnly keeps the provider blocks of one provider's test config:
// its API key block and routes removed.
func instancesOnly(hcl string) string {
	return routeBlocks.ReplaceAllString(strings.TrimPrefix(hcl, harness.APIKeyBlock), "\n")
}

// TestCrossProviderFailover routes gemini-2.5-flash over vertex → watsonx →
// oci, each in front of its own wire-protocol fake, and checks that a
// failure of the first target (503, JSON and stream) is served by the
// second, that a failure of the first two is served by the third, and that
// each target received the model name it knows.
func TestCrossProviderFailover(t *testing.T) {
	vx, vxRec := newVertexFake(t)
	wx := watsonxfake.New(watsonxfake.Options{APIKey: wxAPIKey, ProjectID: wxProject})
	wxRec := newProvRecorder(t, wx.Handler())
	oc := ocifake.New(ocifake.Options{Key: ociTestKey(t)})
	t.Cleanup(func() { oc.Close() })
	ocRec := newProvRecorder(t, oc.Handler())

	wxInstance := fmt.Sprintf(`
provider "ibm_watsonx" {
  type = "ibm"
  credential "api_key" {
    from "value" { value = %q }
  }
  config {
    url        = %q
    iam_url    = %q
    project_id = %q
  }
}
`, wxAPIKey, wxRec.URL(), wxRec.URL(), wxProject)
	hcl := harness.APIKeyBlock +
		instancesOnly(vertexHCL(vx, vxRec.URL(), nil)) +
		wxInstance +
		instancesOnly(ociHCL(oc, ocRec, oc.Key().PrivatePEM)) + `
route "gemini-2.5-flash" {
  strategy = "failover"
  target "vertex_us" {}
  target "ibm_watsonx" { model = "` + wxModel + `" }
  target "oracle_ai" { model = "` + ociGenericModel + `" }
}
`
	h := harness.Start(t, hcl, harness.Options{WaitFor: []string{"vertex_us", "ibm_watsonx", "oracle_ai"}})

	const (
		fromVertex  = "Served by Vertex AI."
		fromWatsonx = "Served by watsonx.ai."
		fromOCI     = "Served by OCI Generative AI."
	)
	vx.SetScenario(vertexfake.Scenario{Parts: []vertexfake.Part{vertexfake.Text(fromVertex)}})
	wx.SetScenario(watsonxfake.Scenario{Text: fromWatsonx})
	oc.SetScenario(ocifake.Scenario{Text: fromOCI, KeepOpen: true})

	for _, tc := range []struct {
		name       string
		stream     bool
		failFirst  int
		failSecond bool
		want       string
	}{
		{"vertex 503 → watsonx", false, 1, false, fromWatsonx},
		{"vertex 503 → watsonx, streamed", true, 1, false, fromWatsonx},
		{"vertex and watsonx 503 → oci", false, 1, true, fromOCI},
		{"vertex and watsonx 503 → oci, streamed", true, 1, true, fromOCI},
		{"vertex healthy", false, 0, false, fromVertex},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vxRec.Reset()
			wxRec.Reset()
			ocRec.Reset()
			if tc.failFirst > 0 {
				vx.FailNext(tc.failFirst, vertexfake.Failure{Status: http.StatusServiceUnavailable})
			}
			if tc.failSecond {
				wx.FailNext(1, watsonxfake.Failure{Status: http.StatusServiceUnavailable})
			}
			body := fmt.Sprintf(`{"model":"gemini-2.5-flash","stream":%v,"max_tokens":64,"messages":[{"role":"user","content":"Who answers?"}]}`, tc.stream)
			status, _, resp := h.Do(t, "POST", "/v1/chat/completions", body)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, resp)
			}
			var content string
			if tc.stream {
				content = provStr(foldProvSSE(t, resp).Choices[0].Message.Content)
			} else {
				var cc openai.ChatCompletion
				if err := json.Unmarshal(resp, &cc); err != nil || len(cc.Choices) != 1 {
					t.Fatalf("bad completion %s: %v", resp, err)
				}
				content = provStr(cc.Choices[0].Message.Content)
			}
			if content != fmt.Sprintf("%q", tc.want) {
				t.Errorf("answer %q, want %q", content, tc.want)
			}
			// Each target saw its own model name, and only the targets up to
			// the one that served were tried.
			if tc.want != fromVertex {
				if got := wxModelPosts(wxRec); len(got) != 1 || !strings.Contains(string(got[0].Body), `"model_id":"`+wxModel+`"`) {
					t.Errorf("watsonx model calls %d, want 1 naming %s", len(got), wxModel)
				}
			}
			ociCalls := 0
			for _, r := range ocRec.Posts() {
				if strings.HasSuffix(r.Path, "/actions/chat") {
					ociCalls++
					if !strings.Contains(string(r.Body), ociGenericModel) {
						t.Errorf("oci was asked for another model: %s", r.Body)
					}
				}
			}
			if want := map[bool]int{true: 1, false: 0}[tc.want == fromOCI]; ociCalls != want {
				t.Errorf("oci chat calls %d, want %d", ociCalls, want)
			}
		})
	}
}

// wxModelPosts are rec's POSTs to the watsonx.ai API, token exchanges left out.
func wxModelPosts(rec *provRecorder) []provRecord {
	var out []provRecord
	for _, r := range rec.Posts() {
		if r.Path != "/identity/token" {
			out = append(out, r)
		}
	}
	return out
}
