package openai

// JSONCompactor removes insignificant whitespace from JSON text that
// arrives in fragments — streamed tool-call arguments — so that the
// fragments concatenate to exactly what json.Compact makes of the whole
// text, which is what a non-streamed response carries. Use one per tool
// call; the zero value is ready.
type JSONCompactor struct {
	inString, escaped bool
}

// Compact returns fragment without the whitespace outside strings.
func (c *JSONCompactor) Compact(fragment string) string {
	out := make([]byte, 0, len(fragment))
	for i := 0; i < len(fragment); i++ {
		ch := fragment[i]
		if c.inString {
			switch {
			case c.escaped:
				c.escaped = false
			case ch == '\\':
				c.escaped = true
			case ch == '"':
				c.inString = false
			}
			out = append(out, ch)
			continue
		}
		switch ch {
		case ' ', '\t', '\n', '\r':
			continue
		case '"':
			c.inString = true
		}
		out = append(out, ch)
	}
	return string(out)
}
