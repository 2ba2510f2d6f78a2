package responses

import (
	"encoding/json"
	"fmt"
)

// Stored is what a store keeps for one response: the response and the
// whole input it answered — the items of the responses it follows
// included — so that previous_response_id can replay the conversation
// from one record. Instructions are not kept: as in OpenAI's API, they
// apply to the request that carries them only.
type Stored struct {
	Response *Response         `json:"response"`
	Input    []json.RawMessage `json:"input"`
}

// Encode returns the record's bytes.
func (s *Stored) Encode() []byte { return marshal(s) }

// DecodeStored reads a record written by Encode.
func DecodeStored(b []byte) (*Stored, error) {
	var s Stored
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("responses: stored response: %w", err)
	}
	if s.Response == nil {
		return nil, fmt.Errorf("responses: stored response has no response")
	}
	return &s, nil
}

// Items returns the conversation up to and including the response: its
// input items followed by its output items, as input items for the next
// request.
func (s *Stored) Items() []json.RawMessage {
	out := make([]json.RawMessage, 0, len(s.Input)+len(s.Response.Output))
	out = append(out, s.Input...)
	for _, it := range s.Response.Output {
		out = append(out, marshal(it))
	}
	return out
}
