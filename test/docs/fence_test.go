package docs

import (
	"reflect"
	"testing"
)

func TestBlocks(t *testing.T) {
	md := "# Title\n\n```hcl\nserver {}\n```\n\ntext\n\n  ~~~~hcl fragment invalid\n  route \"x\" {}\n  ```\n  ~~~~\n````sh\ncurl x\n"
	got := Blocks([]byte(md))
	want := []Block{
		{Lang: "hcl", Line: 4, Text: "server {}\n"},
		{Lang: "hcl", Flags: []string{"fragment", "invalid"}, Line: 10, Text: "  route \"x\" {}\n  ```\n"},
		{Lang: "sh", Line: 14, Text: "curl x\n"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Blocks:\n got %#v\nwant %#v", got, want)
	}
	if !got[1].Has("invalid") || got[0].Has("invalid") {
		t.Error("Has")
	}
}
