package main

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/llmproxy/llmproxy/sdk/provider"
)

// ChatCompletion implements provider.Provider through Converse, or through
// InvokeModel when the instance's api is "invoke".
func (b *Bedrock) ChatCompletion(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	inst, err := b.current()
	if err != nil {
		return nil, err
	}
	conv, err := translate(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := inst.withTimeout(ctx)
	defer cancel()
	if inst.API == apiInvoke {
		return b.invokeChat(ctx, inst, conv)
	}
	out, err := inst.client.Converse(ctx, conv.converseInput())
	if err != nil {
		return nil, clientError(err)
	}
	r, err := converseReply(conv, out)
	if err != nil {
		return nil, err
	}
	return provider.JSONResponse(conv.completion(completionID(out.ResultMetadata), b.clock().Unix(), r))
}

// ChatCompletionStream implements provider.Provider through ConverseStream,
// or through InvokeModelWithResponseStream when the instance's api is
// "invoke".
func (b *Bedrock) ChatCompletionStream(ctx context.Context, req *provider.Request, w provider.ChunkWriter) error {
	inst, err := b.current()
	if err != nil {
		return err
	}
	conv, err := translate(req)
	if err != nil {
		return err
	}
	ctx, cancel := inst.withTimeout(ctx)
	defer cancel()
	if inst.API == apiInvoke {
		return b.invokeChatStream(ctx, inst, conv, w)
	}
	out, err := inst.client.ConverseStream(ctx, conv.converseStreamInput())
	if err != nil {
		return clientError(err)
	}
	stream := out.GetStream()
	defer stream.Close()
	c := newChunker(w, conv, completionID(out.ResultMetadata), b.clock().Unix())
	for ev := range stream.Events() {
		if err := converseEvent(c, ev); err != nil {
			return err
		}
	}
	if err := stream.Err(); err != nil {
		return clientError(err)
	}
	if err := ctx.Err(); err != nil {
		return clientError(err)
	}
	return c.end()
}

// converseEvent feeds one ConverseStream event to the chunker.
func converseEvent(c *chunker, ev types.ConverseStreamOutput) error {
	switch e := ev.(type) {
	case *types.ConverseStreamOutputMemberMessageStart:
		return c.start()
	case *types.ConverseStreamOutputMemberContentBlockStart:
		if tu, ok := e.Value.Start.(*types.ContentBlockStartMemberToolUse); ok {
			return c.toolStart(aws.ToInt32(e.Value.ContentBlockIndex), aws.ToString(tu.Value.ToolUseId), aws.ToString(tu.Value.Name))
		}
	case *types.ConverseStreamOutputMemberContentBlockDelta:
		switch d := e.Value.Delta.(type) {
		case *types.ContentBlockDeltaMemberText:
			return c.text(d.Value)
		case *types.ContentBlockDeltaMemberToolUse:
			return c.toolArgs(aws.ToInt32(e.Value.ContentBlockIndex), aws.ToString(d.Value.Input))
		}
	case *types.ConverseStreamOutputMemberMessageStop:
		return c.finish(string(e.Value.StopReason))
	case *types.ConverseStreamOutputMemberMetadata:
		c.setUsage(converseTokens(e.Value.Usage))
	}
	return nil
}
