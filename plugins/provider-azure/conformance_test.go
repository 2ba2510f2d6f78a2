package main

import (
	"testing"

	"github.com/llmproxy/llmproxy/sdk/sdktest"
)

func TestConformance(t *testing.T) {
	f := startFake(t, fakeOptions())
	tests := []struct {
		name string
		cfg  func() *sdktest.ProviderSuite
	}{
		{"api_key", func() *sdktest.ProviderSuite {
			return &sdktest.ProviderSuite{Config: apiKeyConfig(f, "")}
		}},
		{"entra", func() *sdktest.ProviderSuite {
			return &sdktest.ProviderSuite{Config: entraConfig(f)}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.cfg()
			s.Provider = &Azure{}
			s.Model = "gpt-4o"
			s.Deterministic = true
			s.EmbeddingModel = "text-embedding-3-small"
			sdktest.RunProvider(t, *s)
		})
	}
}
