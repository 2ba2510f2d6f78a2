package main

import (
	"encoding/json"
	"regexp"
	"strings"
)

// Redacted replaces every value the logger must not write.
const Redacted = "[REDACTED]"

// JSON object keys whose values are always redacted, matched
// case-insensitively after removing '-' and '_': keys that contain one
// of secretWords or end with one of secretSuffixes ("api_key",
// "access_token", but not "max_tokens").
var (
	secretWords    = []string{"authorization", "secret", "password", "credential", "cookie"}
	secretSuffixes = []string{"key", "token", "signature"}
)

// secretRE finds secrets inside text: provider API keys, bearer tokens,
// AWS access key ids and long hex or base64 runs that look like keys.
var secretRE = regexp.MustCompile(`(?i)\b(?:sk|pk|rk|xai|gsk|hf)[-_][A-Za-z0-9_-]{8,}|\bBearer\s+[A-Za-z0-9._~+/=-]{8,}|\bAKIA[0-9A-Z]{16}\b|\bAIza[0-9A-Za-z_-]{20,}|\b[A-Fa-f0-9]{40,}\b`)

// isSecretKey reports whether an object key names a secret.
func isSecretKey(k string) bool {
	k = strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(k))
	for _, s := range secretWords {
		if strings.Contains(k, s) {
			return true
		}
	}
	for _, s := range secretSuffixes {
		if strings.HasSuffix(k, s) {
			return true
		}
	}
	return false
}

// redact returns v with the values of secret keys and secret-looking
// text replaced. v is what encoding/json decodes into an any.
func redact(v any, extra map[string]bool) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if isSecretKey(k) || extra[strings.ToLower(k)] {
				x[k] = Redacted
				continue
			}
			x[k] = redact(e, extra)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = redact(e, extra)
		}
		return x
	case string:
		return secretRE.ReplaceAllString(x, Redacted)
	}
	return v
}

// redactJSON decodes b and redacts it; text that is not JSON is
// redacted as a string.
func redactJSON(b []byte, extra map[string]bool) any {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return secretRE.ReplaceAllString(string(b), Redacted)
	}
	return redact(v, extra)
}
