package openai_test

import (
	"fmt"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// An Accumulator folds the data payloads of a chat stream into the
// chat.completion they stand for, checking the stream's rules on the way:
// tests compare the result with the non-streamed answer.
func ExampleAccumulator() {
	stream := []string{
		`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\"q\":"}}]},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"qubits\"}"}}]},"finish_reason":"tool_calls"}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}`,
	}
	var acc openai.Accumulator
	for _, data := range stream {
		if err := acc.Add([]byte(data)); err != nil {
			fmt.Println("bad stream:", err)
			return
		}
	}
	cc := acc.Completion()
	msg := cc.Choices[0].Message
	fmt.Println(cc.Object, msg.Role, *msg.Content)
	fmt.Println(msg.ToolCalls[0].Function.Name, msg.ToolCalls[0].Function.Arguments)
	fmt.Println(cc.Choices[0].FinishReason, cc.Usage.TotalTokens, acc.UsageChunks)

	// A chunk from another stream is refused.
	err := acc.Add([]byte(`{"id":"c2","object":"chat.completion.chunk","created":1,"model":"m","choices":[]}`))
	fmt.Println(err != nil)
	// Output:
	// chat.completion assistant Hello
	// lookup {"q":"qubits"}
	// tool_calls 13 1
	// true
}
