package main

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
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// Stream buffer sizes: lines up to readBufferSize are read without
// copying; longer ones are assembled, up to maxEventSize.
const (
	readBufferSize = 64 << 10
	maxEventSize   = 32 << 20
)

var (
	prefixData = []byte("data:")
	doneMarker = []byte("[DONE]")
)

// sseState is the reusable state of one stream relay.
type sseState struct {
	r     *bufio.Reader
	event []byte
	long  []byte
}

var ssePool = sync.Pool{New: func() any {
	return &sseState{r: bufio.NewReaderSize(nil, readBufferSize), event: make([]byte, 0, 4<<10)}
}}

// errTruncated is returned when the upstream stream ends without
// "data: [DONE]".
func errTruncated(detail string) error {
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_stream_truncated",
		"the openai upstream stream ended before data: [DONE]"+detail)
}

// relayStream reads OpenAI's data-only SSE from body and writes each
// event's data to w, in order, until "data: [DONE]". A data payload with
// a top-level "error" key ends the stream with that error; a stream that
// ends without [DONE] is a 502 upstream_stream_truncated.
//
// The slice passed to w.WriteChunk is reused after WriteChunk returns.
func relayStream(ctx context.Context, body io.Reader, w provider.ChunkWriter) error {
	st := ssePool.Get().(*sseState)
	st.r.Reset(body)
	st.event = st.event[:0]
	defer func() {
		st.r.Reset(nil)
		if cap(st.long) > readBufferSize*4 {
			st.long = nil
		}
		ssePool.Put(st)
	}()

	pending := false
	for {
		line, err := st.readLine()
		if err != nil {
			return streamEnd(ctx, err, line, pending, st.event)
		}
		if len(line) == 0 {
			if !pending {
				continue
			}
			pending = false
			if done, err := dispatch(st.event, w, st.nextEventBuffered()); done || err != nil {
				return err
			}
			st.event = st.event[:0]
			continue
		}
		if !bytes.HasPrefix(line, prefixData) {
			// Comments (": ping") and event:, id:, retry: fields carry
			// nothing for a data-only stream.
			continue
		}
		data := line[len(prefixData):]
		if len(data) > 0 && data[0] == ' ' {
			data = data[1:]
		}
		if pending {
			st.event = append(st.event, '\n')
		}
		st.event = append(st.event, data...)
		pending = true
	}
}

// nextEventBuffered reports whether the read buffer already holds the
// end of another event, so that the chunk at hand can wait for it and
// both cross to the host in one write.
func (st *sseState) nextEventBuffered() bool {
	b, _ := st.r.Peek(st.r.Buffered())
	return bytes.Contains(b, eventEnd) || bytes.Contains(b, eventEndCRLF)
}

var (
	eventEnd     = []byte("\n\n")
	eventEndCRLF = []byte("\r\n\r\n")
	errorKey     = []byte(`"error"`)
)

// dispatch handles one complete event; done is true after [DONE]. more
// tells that the next event is already at hand.
func dispatch(data []byte, w provider.ChunkWriter, more bool) (done bool, err error) {
	if bytes.Equal(data, doneMarker) {
		return true, nil
	}
	// Only a payload that mentions "error" can carry the key; the check
	// spares parsing every chunk.
	if bytes.Contains(data, errorKey) && gjson.Get(view(data), "error").Exists() {
		e := openai.ParseError(http.StatusBadGateway, data)
		if e.Code == "" {
			e.Code = "upstream_stream_error"
		}
		return true, e
	}
	if more {
		err = provider.WriteChunkMore(w, data)
	} else {
		err = w.WriteChunk(data)
	}
	if err != nil {
		return true, fmt.Errorf("openai: relay chunk: %w", err)
	}
	return false, nil
}

// streamEnd decides how a stream that stopped with err ends: cleanly
// when the last event was [DONE], else with the matching error. last is
// a final line cut off by the end of the body.
func streamEnd(ctx context.Context, err error, last []byte, pending bool, event []byte) error {
	switch {
	case err == io.EOF:
		if (pending && len(last) == 0 && bytes.Equal(event, doneMarker)) ||
			(!pending && bytes.Equal(bytes.TrimSpace(bytes.TrimPrefix(last, prefixData)), doneMarker)) {
			return nil
		}
		return errTruncated("")
	case errors.Is(err, errEventTooLarge):
		return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_bad_response", err.Error())
	}
	e := transportError(ctx, err)
	var oe *openai.Error
	if errors.As(e, &oe) && oe.Code == "upstream_unreachable" {
		return errTruncated(": " + err.Error())
	}
	return e
}

var errEventTooLarge = fmt.Errorf("an upstream SSE line exceeds %d bytes", maxEventSize)

// readLine returns the next line without its line ending. The slice is
// valid until the next call.
func (st *sseState) readLine() ([]byte, error) {
	line, err := st.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		st.long = append(st.long[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = st.r.ReadSlice('\n')
			st.long = append(st.long, line...)
			if len(st.long) > maxEventSize {
				return nil, errEventTooLarge
			}
		}
		line = st.long
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
