// Package openai holds the OpenAI wire types that the llmproxy host and its
// plugins exchange: chat requests, completions, stream chunks, embeddings,
// models and errors.
//
// The types follow the OpenAI Chat Completions API. Fields that a
// translator rarely needs stay as json.RawMessage so that they survive a
// decode and re-encode unchanged. Plugins that forward OpenAI JSON verbatim
// (the openai plugin) need not decode at all: the SDK hands them the raw
// body too.
package openai
