package openai

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestJSONCompactor(t *testing.T) {
	inputs := []string{
		`{"city": "Paris", "days": [1, 2]}`,
		"{\n  \"q\": \"a \\\" b\",\n  \"n\": null\n}",
		`{"s": "keep  inner   spaces", "e": "\\\\"}`,
		`{ "nested" : { "x" : [ true , false ] } }`,
	}
	for _, in := range inputs {
		var want bytes.Buffer
		if err := json.Compact(&want, []byte(in)); err != nil {
			t.Fatal(err)
		}
		// Every split into fragments, down to one byte at a time.
		for size := 1; size <= len(in); size++ {
			var c JSONCompactor
			var got string
			for i := 0; i < len(in); i += size {
				got += c.Compact(in[i:min(i+size, len(in))])
			}
			if got != want.String() {
				t.Fatalf("fragments of %d: %q, want %q", size, got, want.String())
			}
		}
	}
}
