package relay

import (
	"fmt"
	"unsafe"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// view returns b as a string without copying; b is never changed while
// the string is in use.
func view(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// SetModel is the plan rewrite provider.RewriteModel: it rewrites the body's top-level "model" to model when they
// differ, patching the bytes rather than re-encoding the body. body is
// left unchanged; the result may share it.
func SetModel(body []byte, model string) ([]byte, error) {
	if model == "" || gjson.Get(view(body), "model").Str == model {
		return body, nil
	}
	out, err := sjson.SetBytes(body, "model", model)
	if err != nil {
		return nil, fmt.Errorf("rewrite model: %w", err)
	}
	return out, nil
}
