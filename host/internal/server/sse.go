package server

import (
	"bytes"
	"encoding/json"
)

// appendEvent appends chunk to dst as one SSE event: "data: <chunk>\n\n".
// SSE ends a field at CR, LF or CRLF, so a chunk holding a raw line break
// would otherwise split into a broken event and a stray line. A chunk that
// is valid JSON is compacted, which removes every raw line break (JSON
// strings cannot hold one); anything else is framed line by line, "data: "
// on each, which a client joins back with LF.
func appendEvent(dst, chunk []byte) []byte {
	if bytes.IndexAny(chunk, "\r\n") < 0 {
		dst = append(dst, "data: "...)
		dst = append(dst, chunk...)
		return append(dst, "\n\n"...)
	}
	if json.Valid(chunk) {
		var b bytes.Buffer
		b.Grow(len(chunk))
		if json.Compact(&b, chunk) == nil {
			dst = append(dst, "data: "...)
			dst = append(dst, b.Bytes()...)
			return append(dst, "\n\n"...)
		}
	}
	for {
		i := bytes.IndexAny(chunk, "\r\n")
		if i < 0 {
			dst = append(dst, "data: "...)
			dst = append(dst, chunk...)
			dst = append(dst, '\n')
			break
		}
		dst = append(dst, "data: "...)
		dst = append(dst, chunk[:i]...)
		dst = append(dst, '\n')
		if chunk[i] == '\r' && i+1 < len(chunk) && chunk[i+1] == '\n' {
			i++
		}
		chunk = chunk[i+1:]
	}
	return append(dst, '\n')
}
