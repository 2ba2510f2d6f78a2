package main

import (
	"fmt"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// chunker turns the block events of a Bedrock stream (ConverseStream or
// Anthropic InvokeModelWithResponseStream) into chat.completion.chunk
// objects. OpenAI numbers tool calls among tool calls only, so it maps each
// tool block's index to the next tool-call index; text blocks, which may
// arrive without a start event, never take one.
type chunker struct {
	w       provider.ChunkWriter
	conv    *conversation
	id      string
	created int64

	started bool
	// texted records that content was sent, so a reply with neither text
	// nor tool calls can still end with content "" as its twin does.
	texted bool
	// tools maps a block index to its OpenAI tool-call index.
	tools map[int32]int
	// jsonBlocks are blocks of the JSON-mode tool, streamed as content.
	jsonBlocks map[int32]bool
	// compactors strip the whitespace of each block's streamed input.
	compactors map[int32]*openai.JSONCompactor
	stop       string
	stopped    bool
	usage      *tokens
}

func newChunker(w provider.ChunkWriter, conv *conversation, id string, created int64) *chunker {
	return &chunker{w: w, conv: conv, id: id, created: created, tools: map[int32]int{}, jsonBlocks: map[int32]bool{},
		compactors: map[int32]*openai.JSONCompactor{}}
}

func (c *chunker) send(d openai.Delta, finish *string) error {
	return provider.WriteChunk(c.w, &openai.ChatChunk{
		ID: c.id, Object: openai.ObjectChatChunk, Created: c.created, Model: c.conv.model,
		Choices: []openai.ChunkChoice{{Delta: d, FinishReason: finish}},
	})
}

// start sends the role chunk once. It carries no content, as the reply
// may consist of tool calls only.
func (c *chunker) start() error {
	if c.started {
		return nil
	}
	c.started = true
	return c.send(openai.Delta{Role: openai.RoleAssistant}, nil)
}

// text sends a content delta.
func (c *chunker) text(s string) error {
	if err := c.start(); err != nil {
		return err
	}
	if s == "" {
		return nil
	}
	c.texted = true
	return c.send(openai.Delta{Content: &s}, nil)
}

// toolStart opens the tool call of block.
func (c *chunker) toolStart(block int32, id, name string) error {
	if err := c.start(); err != nil {
		return err
	}
	if c.conv.jsonTool != "" && name == c.conv.jsonTool {
		c.jsonBlocks[block] = true
		return nil
	}
	if _, dup := c.tools[block]; dup {
		return streamCut(fmt.Sprintf("malformed: block %d started twice", block))
	}
	i := len(c.tools)
	c.tools[block] = i
	return c.send(openai.Delta{ToolCalls: []openai.ToolCall{{
		Index: &i, ID: id, Type: "function", Function: openai.FunctionCall{Name: name, Arguments: ""},
	}}}, nil)
}

// toolArgs sends a fragment of block's tool-call arguments, compacted so
// that the fragments add up to the arguments of a non-streamed response.
func (c *chunker) toolArgs(block int32, s string) error {
	comp := c.compactors[block]
	if comp == nil {
		comp = &openai.JSONCompactor{}
		c.compactors[block] = comp
	}
	s = comp.Compact(s)
	if c.jsonBlocks[block] {
		return c.text(s)
	}
	i, ok := c.tools[block]
	if !ok {
		return streamCut(fmt.Sprintf("malformed: tool input for block %d before its start", block))
	}
	if s == "" {
		return nil
	}
	return c.send(openai.Delta{ToolCalls: []openai.ToolCall{{Index: &i, Function: openai.FunctionCall{Arguments: s}}}}, nil)
}

// finish sends the finishing chunk for a stop reason.
func (c *chunker) finish(stop string) error {
	if c.stopped {
		return nil
	}
	if err := c.start(); err != nil {
		return err
	}
	c.stop, c.stopped = stop, true
	if !c.texted && len(c.tools) == 0 {
		empty := ""
		c.texted = true
		if err := c.send(openai.Delta{Content: &empty}, nil); err != nil {
			return err
		}
	}
	f := finishReason(stop, len(c.tools), c.conv.jsonTool != "")
	return c.send(openai.Delta{}, &f)
}

// setUsage records the stream's token accounting.
func (c *chunker) setUsage(t tokens) { c.usage = &t }

// end completes a stream that Bedrock closed without error: it must have
// stopped, and when the client asked for usage the usage chunk follows.
func (c *chunker) end() error {
	if !c.stopped {
		return streamCut("before the model finished its message")
	}
	if !c.conv.includeUsage {
		return nil
	}
	if c.usage == nil {
		return streamCut("before its usage metadata")
	}
	return provider.WriteChunk(c.w, &openai.ChatChunk{
		ID: c.id, Object: openai.ObjectChatChunk, Created: c.created, Model: c.conv.model,
		Choices: []openai.ChunkChoice{}, Usage: c.usage.openAI(),
	})
}
