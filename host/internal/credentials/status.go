package credentials

import "time"

// Rotation says how a credential's value can change while the instance
// runs.
type Rotation string

// Rotations.
const (
	// RotationStatic values (environment variables, inline values) never
	// change for the life of the process.
	RotationStatic Rotation = "static"
	// RotationWatched values are re-read when a file of their chain
	// changes (see Watcher).
	RotationWatched Rotation = "watched"
)

// SourceState is what one source of a chain said the last time the chain
// was resolved.
type SourceState string

// Source states.
const (
	// SourceUsed produced the value.
	SourceUsed SourceState = "used"
	// SourceUnavailable had nothing here (an unset variable, a missing
	// file); the next source was tried.
	SourceUnavailable SourceState = "unavailable"
	// SourceFailed should have worked but did not (an unreadable file, a
	// malformed JSON document); the chain stopped there and the error
	// was reported.
	SourceFailed SourceState = "failed"
	// SourceNotTried comes after the source that was used.
	SourceNotTried SourceState = "not_tried"
)

// Status is the outcome of resolving one credential. It names sources and
// says why they were passed over, and never holds a value.
type Status struct {
	// Name is the credential's name, e.g. "api_key".
	Name string `json:"name"`
	// Source describes the source that produced the value, if any.
	Source string `json:"source,omitempty"`
	// Rotation is "static", "watched", "leased" or "polled".
	Rotation Rotation `json:"rotation"`
	// Sources are the chain's sources in order, with what each said.
	Sources []SourceStatus `json:"sources"`
	// Version and Expires describe a value from a secrets backend.
	Version string    `json:"version,omitempty"`
	Expires time.Time `json:"expires,omitzero"`

	// refreshAfter is when the store asked to be polled.
	refreshAfter time.Time
	// lease is the store's lease on the value, if any.
	lease *Lease
}

// SourceStatus is what one source said.
type SourceStatus struct {
	Source string      `json:"source"`
	State  SourceState `json:"state"`
	Reason string      `json:"reason,omitempty"`
}

// tried lists the sources that were asked.
func (s Status) tried() []string {
	var out []string
	for _, x := range s.Sources {
		if x.State != SourceNotTried {
			out = append(out, x.Source)
		}
	}
	return out
}
