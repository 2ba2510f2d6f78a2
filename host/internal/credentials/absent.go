package credentials

import (
	"strings"

	"github.com/llmproxy/llmproxy/host/internal/config"
)

// AbsentError is what Resolve returns when every problem is a credential
// that none of its sources holds a value for: nothing is broken, the
// operator has simply not provided the secret (yet). Any other failure,
// such as an unreadable file, is reported as a plain error instead.
type AbsentError struct {
	// Credentials are the credentials without a value.
	Credentials []config.Credential
	msg         string
}

// Error names each credential and the sources tried, never a value.
func (e *AbsentError) Error() string { return e.msg }

// Hint says what would provide the missing credentials, e.g. "set
// ANTHROPIC_API_KEY" or "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY":
// each credential's first environment variable, else its first file.
func (e *AbsentError) Hint() string {
	var envs, files []string
	for _, c := range e.Credentials {
		env, file := "", ""
		for _, s := range c.Sources {
			switch {
			case s.Kind == "env" && env == "":
				env = s.Name
			case s.Kind == "file" && file == "":
				file = s.Path
			}
		}
		switch {
		case env != "":
			envs = append(envs, env)
		case file != "":
			files = append(files, file)
		}
	}
	var parts []string
	if len(envs) > 0 {
		parts = append(parts, "set "+strings.Join(envs, " and "))
	}
	if len(files) > 0 {
		parts = append(parts, "create "+strings.Join(files, " and "))
	}
	if len(parts) == 0 {
		return "provide credential " + e.Credentials[0].Name
	}
	return strings.Join(parts, " and ")
}
