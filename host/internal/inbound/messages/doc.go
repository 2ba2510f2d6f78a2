// Package messages translates the Anthropic Messages API
// (POST /v1/messages) to and from OpenAI chat completions, the shape the
// gateway's chat path and every provider plugin speak.
//
// Request turns a Messages request body into a chat completions body;
// Response turns a chat.completion into a Message; a Stream turns the
// chat.completion.chunk objects of a streamed answer into the Messages
// SSE events (message_start, content_block_start, content_block_delta,
// content_block_stop, message_delta, message_stop, ping); Error and
// StreamError write errors in Anthropic's shape. Every function is pure:
// bytes in, bytes out, no I/O.
//
// Tool-use ids the client sees are Anthropic-shaped (toolu_…). An id from
// a provider that is not is wrapped reversibly (ToolID) and unwrapped
// when the client sends it back in a tool_use or tool_result block
// (ChatToolID), so a second turn reaches the provider with the ids it
// issued.
package messages
