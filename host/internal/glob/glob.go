// Package glob matches names against patterns where "*" stands for any
// run of characters, as used for model names ("claude-*") and instance
// names in access rules.
package glob

import "strings"

// Match reports whether name matches pattern. It does not allocate: it
// is on the request path (key rights, prices) of every request.
func Match(pattern, name string) bool {
	head, rest, wild := strings.Cut(pattern, "*")
	if !wild {
		return pattern == name
	}
	if !strings.HasPrefix(name, head) {
		return false
	}
	name = name[len(head):]
	for {
		part, more, ok := strings.Cut(rest, "*")
		if !ok {
			// part is the last piece: it must end the name.
			return strings.HasSuffix(name, part)
		}
		i := strings.Index(name, part)
		if i < 0 {
			return false
		}
		name = name[i+len(part):]
		rest = more
	}
}

// Any reports whether name matches any of patterns.
func Any(patterns []string, name string) bool {
	for _, p := range patterns {
		if Match(p, name) {
			return true
		}
	}
	return false
}
