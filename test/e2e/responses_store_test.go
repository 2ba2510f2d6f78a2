package e2e

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/llmproxy/llmproxy/test/harness"
)

// TestResponsesOnSharedStore: with `responses { store = "store" }` the
// responses of /v1/responses live in the store block's database, so a
// conversation begun on replica A continues on replica B (both on one real
// PostgreSQL server), for the key that began it only.
func TestResponsesOnSharedStore(t *testing.T) {
	pg := harness.StartPostgres(t)
	cfg := harness.APIKeyBlock + harness.EchoBlock + storeBlock("postgres", pg.URL) + fmt.Sprintf(`
api_key "other" {
  key    = %q
  models = ["*"]
}

responses {
  store     = "store"
  retention = "1h"
}
`, respOtherKey)
	a := harness.Start(t, cfg, harness.Options{WaitFor: []string{"echo"}})
	b := harness.Start(t, cfg, harness.Options{WaitFor: []string{"echo"}})

	status, _, body := a.Do(t, "POST", "/v1/responses", `{"model":"echo","input":"first turn"}`)
	var first struct {
		ID     string `json:"id"`
		Store  bool   `json:"store"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &first); status != 200 || err != nil || first.ID == "" || !first.Store || first.Status != "completed" {
		t.Fatalf("first turn on A: %d %s", status, body)
	}
	if status, _, body := b.Do(t, "GET", "/v1/responses/"+first.ID, ""); status != 200 {
		t.Fatalf("A's response read on B: %d %s", status, body)
	}
	status, _, body = b.Do(t, "POST", "/v1/responses",
		fmt.Sprintf(`{"model":"echo","input":"second turn","previous_response_id":%q}`, first.ID))
	var second struct {
		Previous string `json:"previous_response_id"`
		Status   string `json:"status"`
	}
	if err := json.Unmarshal(body, &second); status != 200 || err != nil || second.Previous != first.ID || second.Status != "completed" {
		t.Fatalf("second turn on B: %d %s", status, body)
	}
	// Another key cannot read or continue the conversation.
	if status, _, body := b.Do(t, "GET", "/v1/responses/"+first.ID, "", "Authorization", "Bearer "+respOtherKey); status != 404 {
		t.Errorf("another key reads the response: %d %s", status, body)
	}
	if status, _, body := a.Do(t, "POST", "/v1/responses",
		fmt.Sprintf(`{"model":"echo","input":"x","previous_response_id":%q}`, first.ID), "Authorization", "Bearer "+respOtherKey); status != 404 {
		t.Errorf("another key continues the conversation: %d %s", status, body)
	}
	// Deleted on B, gone on A.
	if status, _, body := b.Do(t, "DELETE", "/v1/responses/"+first.ID, ""); status != 200 {
		t.Fatalf("delete on B: %d %s", status, body)
	}
	if status, _, _ := a.Do(t, "GET", "/v1/responses/"+first.ID, ""); status != 404 {
		t.Errorf("deleted on B, read on A: %d", status)
	}
}
