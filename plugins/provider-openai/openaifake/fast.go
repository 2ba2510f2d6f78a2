package openaifake

import (
	"bytes"
	"io"
	"net/http"
	"sync"
)

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// fastReplies are the precomputed answers of Options.Fast.
type fastReplies struct {
	completion []byte
	stream     []byte
}

func newFastReplies(model string) fastReplies {
	a := &answer{id: "chatcmpl-fast", model: model, text: "Hello from the fake.", finish: "stop", prompt: 10}
	var stream []byte
	for _, c := range a.chunks(false) {
		stream = append(stream, sseEvent(c)...)
	}
	stream = append(stream, "data: [DONE]\n\n"...)
	return fastReplies{completion: completionJSON(a), stream: stream}
}

var streamTrue = []byte(`"stream":true`)

// serveFast answers any request with the precomputed reply, streamed
// when the body asks for a stream.
func (s *Server) serveFast(w http.ResponseWriter, r *http.Request) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	_, _ = io.Copy(buf, r.Body)
	stream := bytes.Contains(buf.Bytes(), streamTrue)
	bufPool.Put(buf)
	if stream {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		_, _ = w.Write(s.fast.stream)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(s.fast.completion)
}
