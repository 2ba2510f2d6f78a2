package main

import "github.com/llmproxy/llmproxy/sdk/secrets"

func main() { secrets.Serve(&SecretManager{}) }
