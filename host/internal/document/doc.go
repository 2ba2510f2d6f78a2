// Package document resolves the document parts of chat requests before a
// provider plugin sees them.
//
// A chat message may carry a document by URL, inline as an OpenAI file part,
// or as a reference to an object of a configured storage instance. The
// Resolver fetches each one (URLs through an SSRF-safe Fetcher, storage
// objects through a StorageReader the host implements), enforces count,
// size and MIME limits, extracts text, caches the result, and replaces each
// part in the body by a reference the plugin finds in Request.Documents.
package document
