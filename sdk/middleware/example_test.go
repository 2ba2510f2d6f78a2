package middleware_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/llmproxy/llmproxy/sdk/middleware"
)

// Redact replaces one word in every chat request; it has no chunk or
// response hook, so the host never calls it for answers.
type Redact struct{ word []byte }

func (r *Redact) Describe(context.Context) (*middleware.Description, error) {
	return &middleware.Description{Name: "redact", Version: "1.0.0"}, nil
}

func (r *Redact) Configure(context.Context, *middleware.Config) error {
	r.word = []byte("project-x")
	return nil
}

func (r *Redact) OnRequest(_ context.Context, _ *middleware.Call, body []byte) ([]byte, error) {
	if bytes.Contains(body, []byte("forbidden")) {
		return nil, middleware.Veto("this topic is not allowed here")
	}
	return bytes.ReplaceAll(body, r.word, []byte("[PROJECT]")), nil
}

// Example shows a request-only middleware. Its main function is
//
//	func main() { middleware.Serve(&Redact{}) }
func Example() {
	r := &Redact{}
	r.Configure(context.Background(), &middleware.Config{})
	out, _ := r.OnRequest(context.Background(), &middleware.Call{}, []byte(`{"messages":[{"role":"user","content":"status of project-x?"}]}`))
	fmt.Println(middleware.Hooks(r))
	fmt.Println(string(out))
	_, err := r.OnRequest(context.Background(), &middleware.Call{}, []byte(`{"messages":[{"role":"user","content":"forbidden"}]}`))
	fmt.Println(err)
	// Output:
	// [request]
	// {"messages":[{"role":"user","content":"status of [PROJECT]?"}]}
	// 400 invalid_request_error (content_policy_violation): this topic is not allowed here
}
