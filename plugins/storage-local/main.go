// Command llmproxy-storage-local is the llmproxy storage plugin that keeps
// objects in a directory tree on the host's own disk.
package main

import "github.com/llmproxy/llmproxy/sdk/storage"

func main() { storage.Serve(&Local{}) }
