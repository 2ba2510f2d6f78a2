package main

import (
	"context"
	"fmt"
	"io"

	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/relay"
)

// relayStream reads OpenAI's data-only SSE from body with relay.Events
// (the reader the host uses for streams it forwards on the plan) and
// writes each event's data to w, in order, until "data: [DONE]". A data
// payload with a top-level "error" key ends the stream with that error; a
// stream that ends without [DONE] is a 502 upstream_stream_truncated.
//
// The slice passed to w.WriteChunk is reused after WriteChunk returns.
func relayStream(ctx context.Context, body io.Reader, w provider.ChunkWriter) error {
	ev := relay.NewEvents("openai", body)
	defer ev.Release()
	for {
		data, err := ev.Next(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if ev.Buffered() {
			err = provider.WriteChunkMore(w, data)
		} else {
			err = w.WriteChunk(data)
		}
		if err != nil {
			return fmt.Errorf("openai: relay chunk: %w", err)
		}
	}
}
