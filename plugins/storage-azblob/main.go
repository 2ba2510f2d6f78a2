// Command llmproxy-storage-azblob is a storage plugin that keeps objects in
// Azure Blob Storage (or Azurite): a bucket is a container, a key a block
// blob.
package main

import "github.com/llmproxy/llmproxy/sdk/storage"

func main() { storage.Serve(&Store{}) }
