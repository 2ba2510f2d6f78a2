package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// runKeys is the keys command. `keys hash` prints the key_sha256 value of
// an API key, so that a config can hold the digest instead of the key:
//
//	api_key "ci" {
//	  key_sha256 = "<the printed value>"
//	}
//
// The key is read from the argument or, better (it then stays out of the
// shell history and the process list), from the first line of stdin.
func runKeys(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "hash" {
		fmt.Fprintln(stderr, "usage: llmproxy keys hash [key]   (without key, the first line of stdin)")
		return 2
	}
	var key string
	switch len(args) {
	case 1:
		line, err := bufio.NewReader(io.LimitReader(stdin, 64<<10)).ReadString('\n')
		if err != nil && err != io.EOF {
			fmt.Fprintln(stderr, "llmproxy keys hash: read stdin:", err)
			return 1
		}
		key = strings.TrimRight(line, "\r\n")
	case 2:
		key = args[1]
	default:
		fmt.Fprintln(stderr, "llmproxy keys hash: want one key")
		return 2
	}
	if key == "" {
		fmt.Fprintln(stderr, "llmproxy keys hash: the key is empty")
		return 1
	}
	// The host compares the SHA-256 of a presented key with this digest.
	sum := sha256.Sum256([]byte(key))
	fmt.Fprintln(stdout, hex.EncodeToString(sum[:]))
	return 0
}
