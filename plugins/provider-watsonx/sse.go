package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// maxEvent caps one server-sent event from watsonx.ai.
const maxEvent = 16 << 20

// event is one server-sent event of a chat_stream response: watsonx.ai
// sends an id, an event name ("message", or "error") and one data line.
type event struct {
	id   string
	name string
	data []byte
	// partial is set for an event the body ended in the middle of,
	// without its terminating blank line.
	partial bool
}

// eventReader reads server-sent events. It accepts LF and CRLF line ends,
// comment lines, data split over several lines, and a body that ends
// without a final blank line.
type eventReader struct {
	sc *bufio.Scanner
}

func newEventReader(r io.Reader) *eventReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxEvent)
	return &eventReader{sc: sc}
}

// Next returns the next event, or io.EOF after the last one.
func (er *eventReader) Next() (event, error) {
	var ev event
	has := false
	for er.sc.Scan() {
		line := bytes.TrimSuffix(er.sc.Bytes(), []byte("\r"))
		if len(line) == 0 {
			if has {
				return ev, nil
			}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "data":
			if ev.data != nil {
				ev.data = append(ev.data, '\n')
			}
			ev.data = append(ev.data, value...)
			if ev.data == nil {
				ev.data = []byte{}
			}
		case "event":
			ev.name = string(value)
		case "id":
			ev.id = string(value)
		default:
			continue
		}
		has = true
	}
	if err := er.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return event{}, streamBroken(fmt.Sprintf("an event is larger than %d bytes", maxEvent))
		}
		return event{}, err
	}
	if has {
		ev.partial = true
		return ev, nil
	}
	return event{}, io.EOF
}
