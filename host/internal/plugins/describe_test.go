package plugins

import (
	"errors"
	"strings"
	"testing"

	goplugin "github.com/hashicorp/go-plugin"
)

// TestStartError: go-plugin's refusal of a protocol version becomes an
// *IncompatibleError naming both sides and what to do; other start
// failures keep their cause.
func TestStartError(t *testing.T) {
	tests := []struct {
		name    string
		host    []int
		err     string
		want    []string
		refused bool
	}{
		{
			name: "plugin newer than the host", host: []int{1},
			err:  "incompatible API version with plugin. Plugin version: 2, Client versions: [1]",
			want: []string{"plugin /p/llmproxy-provider-x refused", "speaks plugin protocol v2, this host speaks v1", "upgrade llmproxy"}, refused: true,
		},
		{
			name: "plugin older than the host", host: []int{2, 3},
			err:  "Incompatible API version with plugin. Plugin version: 1, Client versions: [2 3]",
			want: []string{"speaks plugin protocol v1, this host speaks v2, v3", "build it against an SDK of a protocol version this host serves"}, refused: true,
		},
		{
			name: "not a plugin", host: []int{1},
			err:  "Unrecognized remote plugin message: hello",
			want: []string{"start plugin /p/llmproxy-provider-x: Unrecognized remote plugin message: hello"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			versions := map[int]goplugin.PluginSet{}
			for _, v := range tt.host {
				versions[v] = goplugin.PluginSet{}
			}
			cause := errors.New(tt.err)
			err := startError("/p/llmproxy-provider-x", versions, cause)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
			var inc *IncompatibleError
			if errors.As(err, &inc) != tt.refused {
				t.Errorf("IncompatibleError: got %v, want %v", errors.As(err, &inc), tt.refused)
			}
			if !errors.Is(err, cause) {
				t.Errorf("the cause is not wrapped")
			}
		})
	}
}
