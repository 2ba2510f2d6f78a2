package relay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/tidwall/gjson"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// Event stream buffer sizes: lines up to readBufferSize are read without
// copying; longer ones are assembled, up to MaxEventSize. The buffer is
// small because a process may hold a thousand streams at once, and
// chunks are a few hundred bytes.
const (
	readBufferSize = 2 << 10
	// MaxEventSize bounds one event of an upstream stream.
	MaxEventSize = 32 << 20
)

var (
	prefixData   = []byte("data:")
	doneMarker   = []byte("[DONE]")
	eventEnd     = []byte("\n\n")
	eventEndCRLF = []byte("\r\n\r\n")
	errorKey     = []byte(`"error"`)
)

var errEventTooLarge = fmt.Errorf("an upstream SSE line exceeds %d bytes", MaxEventSize)

// Events reads OpenAI's data-only server-sent events: each event's data,
// in order, until "data: [DONE]". Get one with NewEvents and Release it
// after the last Next.
type Events struct {
	name    string
	r       *bufio.Reader
	event   []byte
	long    []byte
	pending bool
}

var eventsPool = sync.Pool{New: func() any {
	return &Events{r: bufio.NewReaderSize(nil, readBufferSize), event: make([]byte, 0, 512)}
}}

// NewEvents returns a reader of the event stream body from the upstream
// called name (which error messages mention).
func NewEvents(name string, body io.Reader) *Events {
	e := eventsPool.Get().(*Events)
	e.name = name
	e.r.Reset(body)
	e.event = e.event[:0]
	e.pending = false
	return e
}

// Release returns e to its pool; e must not be used afterwards.
func (e *Events) Release() {
	e.r.Reset(nil)
	if cap(e.long) > readBufferSize*4 {
		e.long = nil
	}
	eventsPool.Put(e)
}

// Next returns the data of the next event, valid until the following
// call. After "data: [DONE]" it returns io.EOF. A data payload with a
// top-level "error" key ends the stream with that error (502, code
// upstream_stream_error when the payload has none); a stream that ends
// without [DONE] is a 502 upstream_stream_truncated; an event longer than
// MaxEventSize a 502 upstream_bad_response; a failure to read is mapped
// by TransportError, and the caller's cancellation stays a context
// error. Comments and the event:, id: and retry: fields are skipped.
func (e *Events) Next(ctx context.Context) ([]byte, error) {
	e.event = e.event[:0]
	for {
		line, err := e.readLine()
		if err != nil {
			return nil, e.end(ctx, err, line)
		}
		if len(line) == 0 {
			if !e.pending {
				continue
			}
			e.pending = false
			return e.dispatch(e.event)
		}
		if !bytes.HasPrefix(line, prefixData) {
			continue
		}
		data := line[len(prefixData):]
		if len(data) > 0 && data[0] == ' ' {
			data = data[1:]
		}
		if e.pending {
			e.event = append(e.event, '\n')
		}
		e.event = append(e.event, data...)
		e.pending = true
	}
}

// Buffered reports whether the read buffer already holds the end of
// another event, so that a caller relaying the event at hand can hold it
// and send both together.
func (e *Events) Buffered() bool {
	b, _ := e.r.Peek(e.r.Buffered())
	return bytes.Contains(b, eventEnd) || bytes.Contains(b, eventEndCRLF)
}

// dispatch returns one complete event's data, io.EOF for [DONE], or the
// error the event carries.
func (e *Events) dispatch(data []byte) ([]byte, error) {
	if bytes.Equal(data, doneMarker) {
		return nil, io.EOF
	}
	// Only a payload that mentions "error" can carry the key; the check
	// spares parsing every chunk.
	if bytes.Contains(data, errorKey) && gjson.Get(view(data), "error").Exists() {
		oe := openai.ParseError(http.StatusBadGateway, data)
		if oe.Code == "" {
			oe.Code = "upstream_stream_error"
		}
		return nil, oe
	}
	return data, nil
}

// truncated is the error of a stream that ended before [DONE].
func (e *Events) truncated(detail string) error {
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_stream_truncated",
		"the "+e.name+" upstream stream ended before data: [DONE]"+detail)
}

// end decides how a stream that stopped with err ends: cleanly (io.EOF)
// when the last event was [DONE], else with the matching error. last is a
// final line cut off by the end of the body.
func (e *Events) end(ctx context.Context, err error, last []byte) error {
	switch {
	case err == io.EOF:
		if (e.pending && len(last) == 0 && bytes.Equal(e.event, doneMarker)) ||
			(!e.pending && bytes.Equal(bytes.TrimSpace(bytes.TrimPrefix(last, prefixData)), doneMarker)) {
			return io.EOF
		}
		return e.truncated("")
	case errors.Is(err, errEventTooLarge):
		return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_bad_response", err.Error())
	}
	te := TransportError(ctx, e.name, err)
	var oe *openai.Error
	if errors.As(te, &oe) && oe.Code == "upstream_unreachable" {
		return e.truncated(": " + err.Error())
	}
	return te
}

// readLine returns the next line without its line ending. The slice is
// valid until the next call.
func (e *Events) readLine() ([]byte, error) {
	line, err := e.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		e.long = append(e.long[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = e.r.ReadSlice('\n')
			e.long = append(e.long, line...)
			if len(e.long) > MaxEventSize {
				return nil, errEventTooLarge
			}
		}
		line = e.long
	}
	if err != nil {
		// A line cut off by the end of the body comes back with the error.
		return line, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}
