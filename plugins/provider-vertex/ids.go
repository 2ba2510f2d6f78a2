package main

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
)

// Gemini function calls carry no id, so the plugin invents one per call:
// "call_" plus 96 random bits, unique across turns. When the call came
// with a thought signature (Gemini 2.5 and 3 attach one to the first
// function call of a turn, and Gemini 3 refuses the next turn without
// it), the signature rides in the id after a dot: OpenAI clients echo
// tool-call ids back verbatim, in the assistant message and in each tool
// message, so the signature returns with them and is put back on its
// functionCall part. Base64 has no dots, so the split is unambiguous.

// callIDPrefix starts every id the plugin issues.
const callIDPrefix = "call_"

// sigSep separates an id's random part from its thought signature.
const sigSep = "."

// randomCallID returns "call_" and 16 random base64url characters.
func randomCallID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return callIDPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// withSignature adds a thought signature to an id.
func withSignature(id, sig string) string {
	if sig == "" {
		return id
	}
	return id + sigSep + sig
}

// signatureOf returns the thought signature an id carries, or "" for ids
// the plugin did not issue or that carry none.
func signatureOf(id string) string {
	if !strings.HasPrefix(id, callIDPrefix) {
		return ""
	}
	_, sig, ok := strings.Cut(id, sigSep)
	if !ok {
		return ""
	}
	return sig
}
