package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCleanSchema(t *testing.T) {
	tests := []struct{ name, in, want, err string }{
		{"drops refused keywords", `{"$schema":"x","type":"object","additionalProperties":false,"strict":true,"properties":{"a":{"type":"string","examples":["x"]}},"required":["a"]}`,
			`{"properties":{"a":{"type":"string"}},"required":["a"],"type":"object"}`, ""},
		{"nullable type list", `{"type":["integer","null"]}`, `{"nullable":true,"type":"integer"}`, ""},
		{"several types", `{"type":["integer","string"]}`, `{"anyOf":[{"type":"integer"},{"type":"string"}]}`, ""},
		{"const", `{"const":"x"}`, `{"enum":["x"]}`, ""},
		{"oneOf", `{"oneOf":[{"type":"string"},{"type":"number"}]}`, `{"anyOf":[{"type":"string"},{"type":"number"}]}`, ""},
		{"local ref", `{"type":"object","properties":{"p":{"$ref":"#/$defs/P","description":"d"}},"$defs":{"P":{"type":"object","properties":{"x":{"type":"number"}}}}}`,
			`{"properties":{"p":{"description":"d","properties":{"x":{"type":"number"}},"type":"object"}},"type":"object"}`, ""},
		{"array items", `{"type":"array","items":{"type":"string","format":"date"},"minItems":1}`, `{"items":{"format":"date","type":"string"},"minItems":1,"type":"array"}`, ""},
		{"recursive ref", `{"$defs":{"n":{"type":"object","properties":{"next":{"$ref":"#/$defs/n"}}}},"$ref":"#/$defs/n"}`, "", "nested too deeply"},
		{"remote ref", `{"$ref":"https://example.com/x"}`, "", "only local"},
		{"missing ref", `{"$ref":"#/$defs/none"}`, "", "does not resolve"},
		{"not an object", `[1]`, "", "must be a JSON object"},
		{"tuple items", `{"type":"array","items":[{"type":"string"}]}`, "", "tuple"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cleanSchema(json.RawMessage(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
