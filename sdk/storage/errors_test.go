package storage

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

func TestValidateKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"a.txt", true},
		{"dir/ü sp+%#?.md", true},
		{strings.Repeat("k", MaxKeyBytes), true},
		{"", false},
		{strings.Repeat("k", MaxKeyBytes+1), false},
		{"nul\x00", false},
		{"del\x7f", false},
		{"c1\u0085", false},
		{"bad\xffutf8", false},
	}
	for _, tt := range tests {
		err := ValidateKey(tt.key)
		var oe *openai.Error
		if tt.ok != (err == nil) || (err != nil && (!errors.As(err, &oe) || oe.Status != http.StatusBadRequest || oe.Code != CodeInvalidKey)) {
			t.Errorf("ValidateKey(%q) = %v, want ok=%v", tt.key, err, tt.ok)
		}
	}
}

func TestValidateBucket(t *testing.T) {
	for _, tt := range []struct {
		bucket string
		ok     bool
	}{{"docs", true}, {"my.bucket-1", true}, {"", false}, {"..", false}, {"a/b", false}, {`a\b`, false}, {"tab\t", false}, {strings.Repeat("b", 256), false}} {
		if err := ValidateBucket(tt.bucket); tt.ok != (err == nil) {
			t.Errorf("ValidateBucket(%q) = %v, want ok=%v", tt.bucket, err, tt.ok)
		}
	}
}

func TestResolveRange(t *testing.T) {
	tests := []struct {
		name string
		in   ByteRange
		size int64
		want ByteRange
		err  bool
	}{
		{"closed", ByteRange{2, 5}, 10, ByteRange{2, 5}, false},
		{"open", ByteRange{7, -1}, 10, ByteRange{7, 9}, false},
		{"clamped", ByteRange{7, 100}, 10, ByteRange{7, 9}, false},
		{"start at end", ByteRange{10, -1}, 10, ByteRange{}, true},
		{"empty object", ByteRange{0, -1}, 0, ByteRange{}, true},
		{"negative", ByteRange{-1, 3}, 10, ByteRange{}, true},
		{"reversed", ByteRange{5, 2}, 10, ByteRange{}, true},
	}
	for _, tt := range tests {
		got, err := ResolveRange(tt.in, tt.size)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("%s: ResolveRange(%+v, %d) = %+v, %v", tt.name, tt.in, tt.size, got, err)
		}
		var oe *openai.Error
		if err != nil && (!errors.As(err, &oe) || oe.Status != http.StatusRequestedRangeNotSatisfiable) {
			t.Errorf("%s: error %v is not a 416", tt.name, err)
		}
	}
}

func TestParseRangeHeader(t *testing.T) {
	tests := []struct {
		in   string
		want *ByteRange
		err  bool
	}{
		{"", nil, false},
		{"bytes=0-99", &ByteRange{0, 99}, false},
		{"bytes=100-", &ByteRange{100, -1}, false},
		{"bytes=-100", &ByteRange{-100, -1}, false},
		{"bytes=-0", nil, true},
		{"bytes=x-y", nil, true},
		{"bytes=0-1,5-6", nil, true},
		{"bytes=9-2", nil, true},
		{"items=0-1", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseRangeHeader(tt.in)
		if (err != nil) != tt.err || (got == nil) != (tt.want == nil) || (got != nil && *got != *tt.want) {
			t.Errorf("ParseRangeHeader(%q) = %+v, %v", tt.in, got, err)
		}
	}
}
