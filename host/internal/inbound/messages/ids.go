package messages

import (
	"encoding/base64"
	"strings"
)

// Prefixes of the tool-use ids made from chat tool-call ids. Anthropic's
// own ids are "toolu_" followed by letters and digits only, so a wrapped
// id can never be mistaken for one.
const (
	toolPrefix = "toolu_"
	// plainWrap wraps a chat id made of [A-Za-z0-9_-] as it is.
	plainWrap = toolPrefix + "llmp_"
	// encodedWrap wraps any other chat id base64url-encoded, so the
	// client sees only the characters Anthropic allows in ids.
	encodedWrap = toolPrefix + "llmpb_"
)

// ToolID returns the tool-use id the client sees for a chat tool-call id:
// an Anthropic id as it is, any other wrapped so that ChatToolID restores
// it.
func ToolID(chatID string) string {
	if strings.HasPrefix(chatID, toolPrefix) && !strings.HasPrefix(chatID, plainWrap) && !strings.HasPrefix(chatID, encodedWrap) {
		return chatID
	}
	if idSafe(chatID) {
		return plainWrap + chatID
	}
	return encodedWrap + base64.RawURLEncoding.EncodeToString([]byte(chatID))
}

// ChatToolID returns the chat tool-call id a tool-use id the client sent
// stands for: the reverse of ToolID, and any other id as it is.
func ChatToolID(id string) string {
	switch {
	case strings.HasPrefix(id, plainWrap):
		return id[len(plainWrap):]
	case strings.HasPrefix(id, encodedWrap):
		if b, err := base64.RawURLEncoding.DecodeString(id[len(encodedWrap):]); err == nil {
			return string(b)
		}
	}
	return id
}

// MessageID returns the message id the client sees for a chat
// completion id.
func MessageID(chatID string) string {
	if strings.HasPrefix(chatID, "msg_") {
		return chatID
	}
	if chatID == "" {
		return "msg_llmp"
	}
	if idSafe(chatID) {
		return "msg_" + chatID
	}
	return "msg_" + base64.RawURLEncoding.EncodeToString([]byte(chatID))
}

// idSafe reports whether s is non-empty and made of [A-Za-z0-9_-].
func idSafe(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
