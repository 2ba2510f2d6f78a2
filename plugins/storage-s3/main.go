// Command llmproxy-storage-s3 is the llmproxy storage plugin for Amazon S3
// and S3-compatible object stores.
package main

import "github.com/llmproxy/llmproxy/sdk/storage"

func main() { storage.Serve(&S3{}) }
