// Command llmproxy-storage-gcs is a storage plugin that keeps objects in
// Google Cloud Storage (or fake-gcs-server): a bucket is a GCS bucket, a
// key an object name.
package main

import "github.com/llmproxy/llmproxy/sdk/storage"

func main() { storage.Serve(&Store{}) }
