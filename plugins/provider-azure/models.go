package main

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// ownedBy is the owned_by of every model the plugin lists.
const ownedBy = "azure"

// ListModels implements provider.ModelLister. With a deployments map the
// models are its keys, the names clients call; without one, they are the
// models the resource offers (GET /openai/models), each callable when a
// deployment of the same name exists.
func (a *Azure) ListModels(ctx context.Context, _ provider.Meta) ([]openai.Model, error) {
	in, err := a.instance()
	if err != nil {
		return nil, err
	}
	if len(in.deployments) > 0 {
		out := make([]openai.Model, 0, len(in.deployments))
		for m := range in.deployments {
			out = append(out, openai.Model{ID: m, Object: openai.ObjectModel, OwnedBy: ownedBy})
		}
		slices.SortFunc(out, func(x, y openai.Model) int { return strings.Compare(x.ID, y.ID) })
		return out, nil
	}
	raw, _, err := in.call(ctx, http.MethodGet, in.url("openai", "models"), nil)
	if err != nil {
		return nil, err
	}
	var list struct {
		Data []struct {
			ID        string `json:"id"`
			CreatedAt int64  `json:"created_at"`
			Created   int64  `json:"created"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "bad_upstream_response",
			"azure returned a model list that is not JSON: "+err.Error())
	}
	out := make([]openai.Model, 0, len(list.Data))
	for _, m := range list.Data {
		if m.ID == "" {
			continue
		}
		created := m.CreatedAt
		if created == 0 {
			created = m.Created
		}
		out = append(out, openai.Model{ID: m.ID, Object: openai.ObjectModel, Created: created, OwnedBy: ownedBy})
	}
	return out, nil
}
