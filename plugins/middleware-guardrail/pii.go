package main

import (
	"regexp"
	"strings"
)

// Kinds of personal data the guardrail masks, as named in mask.
const (
	KindEmail = "email"
	KindPhone = "phone"
	KindCard  = "card"
)

var (
	emailRE = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`)
	// cardRE finds 13 to 19 digits, optionally grouped by spaces or
	// dashes; the Luhn check decides.
	cardRE = regexp.MustCompile(`\b\d(?:[ -]?\d){12,18}\b`)
	// phoneRE finds an optional +country code, an optional (area code)
	// and two to five groups of digits; masked only with 7 to 15 digits
	// and, without + or parentheses, at least 10 (so dates and short
	// numbers stay).
	phoneRE = regexp.MustCompile(`(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}\b`)
)

// Masker replaces personal data in text by placeholders.
type Masker struct {
	email, phone, card bool
}

// NewMasker masks the given kinds.
func NewMasker(kinds []string) Masker {
	var m Masker
	for _, k := range kinds {
		switch k {
		case KindEmail:
			m.email = true
		case KindPhone:
			m.phone = true
		case KindCard:
			m.card = true
		}
	}
	return m
}

// Any reports whether m masks anything.
func (m Masker) Any() bool { return m.email || m.phone || m.card }

// Mask returns s with every masked kind replaced by [EMAIL], [PHONE] or
// [CARD], and how many replacements it made. Cards go first, so that a
// card number is never taken for a phone number.
func (m Masker) Mask(s string) (string, int) {
	n := 0
	if m.email {
		s = emailRE.ReplaceAllStringFunc(s, func(string) string { n++; return "[EMAIL]" })
	}
	if m.card {
		s = cardRE.ReplaceAllStringFunc(s, func(c string) string {
			if !luhn(c) {
				return c
			}
			n++
			return "[CARD]"
		})
	}
	if m.phone {
		s = phoneRE.ReplaceAllStringFunc(s, func(p string) string {
			d := digits(p)
			marked := strings.HasPrefix(p, "+") || strings.Contains(p, "(")
			if len(d) < 7 || len(d) > 15 || (!marked && len(d) < 10) {
				return p
			}
			n++
			return "[PHONE]"
		})
	}
	return s, n
}

func digits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// luhn reports whether the digits of s (13 to 19 of them) pass the Luhn
// check that every payment card number passes.
func luhn(s string) bool {
	d := digits(s)
	if len(d) < 13 || len(d) > 19 {
		return false
	}
	sum := 0
	for i := range len(d) {
		x := int(d[len(d)-1-i] - '0')
		if i%2 == 1 {
			x *= 2
			if x > 9 {
				x -= 9
			}
		}
		sum += x
	}
	return sum%10 == 0
}
