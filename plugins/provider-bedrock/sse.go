package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// invokeStreamOp is the path suffix of InvokeModelWithResponseStream.
const invokeStreamOp = "/invoke-with-response-stream"

// wantsSSE reports whether a transparent-mode request asks for the events
// of InvokeModelWithResponseStream as server-sent events (Accept:
// text/event-stream) instead of the binary event stream. For Claude the
// events are the Anthropic Messages API's own, so a client of that API
// (the host's POST /v1/messages) reads them without knowing Bedrock.
func wantsSSE(r *http.Request) bool {
	return strings.HasSuffix(r.URL.EscapedPath(), invokeStreamOp) && strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// relaySSE decodes the event stream of InvokeModelWithResponseStream and
// writes each chunk's event as "event: <type>\ndata: <json>\n\n", flushed
// as it arrives. An exception frame, or a stream cut inside a frame,
// becomes a last "event: error" in the Anthropic shape.
func relaySSE(w http.ResponseWriter, body io.Reader) {
	flusher, _ := w.(http.Flusher)
	dec := eventstream.NewDecoder()
	var (
		buf []byte
		out []byte
	)
	for {
		msg, err := dec.Decode(body, buf[:0])
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			w.Write(sseError(nil, "api_error", "the Bedrock event stream was cut or malformed: "+err.Error()))
			return
		}
		buf = msg.Payload
		switch msg.Headers.Get(":message-type").String() {
		case "event":
			if msg.Headers.Get(":event-type").String() != "chunk" {
				continue
			}
			if out, err = sseChunk(out[:0], msg.Payload); err != nil {
				w.Write(sseError(nil, "api_error", err.Error()))
				return
			}
		default:
			exc := msg.Headers.Get(":exception-type")
			if exc == nil {
				exc = msg.Headers.Get(":error-code")
			}
			name := ""
			if exc != nil {
				name = exc.String()
			}
			w.Write(sseError(nil, sseErrorType(name), exceptionMessage(name, msg.Payload)))
			return
		}
		if _, err := w.Write(out); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
}

// sseChunk appends the SSE event one chunk carries: its payload is
// {"bytes":"<base64 of the event JSON>"}.
func sseChunk(dst, payload []byte) ([]byte, error) {
	var c struct {
		Bytes []byte `json:"bytes"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return dst, errors.New("a stream chunk is not {\"bytes\":...}")
	}
	var ev struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(c.Bytes, &ev); err != nil || ev.Type == "" || strings.ContainsAny(ev.Type, "\r\n") {
		return dst, errors.New("a stream chunk does not hold an event with a type")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, c.Bytes); err != nil {
		return dst, err
	}
	dst = append(dst, "event: "...)
	dst = append(dst, ev.Type...)
	dst = append(dst, "\ndata: "...)
	dst = append(dst, compact.Bytes()...)
	return append(dst, "\n\n"...), nil
}

// sseErrorType is the Anthropic error type of a Bedrock stream exception.
func sseErrorType(exception string) string {
	switch exception {
	case "throttlingException":
		return "rate_limit_error"
	case "validationException":
		return "invalid_request_error"
	case "serviceUnavailableException", "modelNotReadyException":
		return "overloaded_error"
	}
	return "api_error"
}

func exceptionMessage(exception string, payload []byte) string {
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(payload, &e) == nil && e.Message != "" {
		return e.Message
	}
	if exception == "" {
		return "the Bedrock stream failed"
	}
	return exception
}

// sseError appends an Anthropic error event.
func sseError(dst []byte, typ, msg string) []byte {
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": msg}})
	dst = append(dst, "event: error\ndata: "...)
	dst = append(dst, b...)
	return append(dst, "\n\n"...)
}
