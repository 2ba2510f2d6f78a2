package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// requestTimeout bounds one request, so that a wedged target fails the
// run instead of hanging it.
const requestTimeout = 10 * time.Second

// target is one way of reaching a fake upstream.
type target struct {
	name string
	// proxied is true for targets behind llmproxy (the openai instance
	// and one per provider); their results are checked against the goals.
	proxied bool
	// chatAddr and streamAddr are host:port of the non-streaming and the
	// streaming endpoint.
	chatAddr, streamAddr string
	auth                 string
	// chatBody and streamBody are the requests sent.
	chatBody, streamBody []byte
}

func newTarget(name, chatURL, streamURL, key, chatModel, streamModel string) target {
	return target{
		name:       name,
		chatAddr:   strings.TrimPrefix(chatURL, "http://"),
		streamAddr: strings.TrimPrefix(streamURL, "http://"),
		auth:       "Bearer " + key,
		chatBody:   requestBody(chatModel, false),
		streamBody: requestBody(streamModel, true),
	}
}

// Parts of the benchmark's request: a realistic chat completion of 390
// bytes for chatModel (a system prompt, a user question of 18 words,
// temperature and max_tokens). The OpenAI fake streams its answer, "You
// said: " and the question, one content chunk per word: 20 chunks.
const (
	systemPrompt = "You are a concise assistant for an online bookshop. Answer in plain English, " +
		"in at most three sentences, and never invent prices, titles or author names."
	userQuestion = "Which of your poetry anthologies would suit a reader who likes short modern poems about cities at night?"
)

// requestBody is the chat request for model, streamed or not.
func requestBody(model string, stream bool) []byte {
	s := ""
	if stream {
		s = `"stream":true,`
	}
	return []byte(`{"model":"` + model + `",` + s + `"messages":[{"role":"system","content":"` + systemPrompt +
		`"},{"role":"user","content":"` + userQuestion + `"}],"temperature":0.25,"max_tokens":1024}`)
}

// newClient returns a keep-alive client of addr with at most conns
// connections.
func newClient(addr string, conns int, stream bool) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                     addr,
		MaxConns:                 conns,
		MaxIdleConnDuration:      time.Minute,
		ReadTimeout:              requestTimeout,
		WriteTimeout:             requestTimeout,
		StreamResponseBody:       stream,
		NoDefaultUserAgentHeader: true,
		MaxConnWaitTimeout:       requestTimeout,
	}
}

func setRequest(req *fasthttp.Request, addr, auth string, body []byte) {
	req.SetRequestURI("http://" + addr + "/v1/chat/completions")
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.Header.Set("Authorization", auth)
	req.SetBody(body)
}

// chatMarker is in every successful non-streaming answer.
var chatMarker = []byte(`"chat.completion"`)

// chatCaller sends the non-streaming request to one target.
type chatCaller struct {
	client *fasthttp.HostClient
	req    *fasthttp.Request
	resp   *fasthttp.Response
}

func newChatCaller(client *fasthttp.HostClient, t target) *chatCaller {
	c := &chatCaller{client: client, req: fasthttp.AcquireRequest(), resp: fasthttp.AcquireResponse()}
	setRequest(c.req, t.chatAddr, t.auth, t.chatBody)
	return c
}

// call sends one request and checks the answer.
func (c *chatCaller) call() error {
	if err := c.client.Do(c.req, c.resp); err != nil {
		return fmt.Errorf("request: %w", err)
	}
	if c.resp.StatusCode() != fasthttp.StatusOK || !bytes.Contains(c.resp.Body(), chatMarker) {
		return fmt.Errorf("status %d: %.300s", c.resp.StatusCode(), c.resp.Body())
	}
	return nil
}

func (c *chatCaller) release() {
	fasthttp.ReleaseRequest(c.req)
	fasthttp.ReleaseResponse(c.resp)
}

// sequential sends n requests one after the other on one connection and
// returns their latencies.
func sequential(ctx context.Context, c *chatCaller, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for range n {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		start := time.Now()
		if err := c.call(); err != nil {
			return out, err
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// loadResult is what a saturation run measured.
type loadResult struct {
	requests  int
	errors    int
	elapsed   time.Duration
	latencies []time.Duration
	firstErr  error
}

// saturate keeps conns requests in flight at t for d and counts what
// completes.
func saturate(ctx context.Context, t target, conns int, d time.Duration) loadResult {
	client := newClient(t.chatAddr, conns, false)
	defer client.CloseIdleConnections()
	results := make([]loadResult, conns)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			c := newChatCaller(client, t)
			defer c.release()
			r := &results[i]
			r.latencies = make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				s := time.Now()
				if s.After(deadline) {
					return
				}
				if err := c.call(); err != nil {
					r.errors++
					if r.firstErr == nil {
						r.firstErr = err
					}
					continue
				}
				r.requests++
				r.latencies = append(r.latencies, time.Since(s))
			}
		})
	}
	wg.Wait()
	total := loadResult{elapsed: time.Since(start)}
	for _, r := range results {
		total.requests += r.requests
		total.errors += r.errors
		total.latencies = append(total.latencies, r.latencies...)
		if total.firstErr == nil {
			total.firstErr = r.firstErr
		}
	}
	if total.firstErr == nil {
		total.firstErr = ctx.Err()
	}
	return total
}

// streamResult is one streamed answer as the client saw it.
type streamResult struct {
	// firstChunk is the time from sending the request to the first data
	// event; total is the time to the end of the body.
	firstChunk, total time.Duration
	// chunks counts data events other than [DONE].
	chunks int
}

// streamCaller sends the streaming request to one target.
type streamCaller struct {
	client *fasthttp.HostClient
	req    *fasthttp.Request
	resp   *fasthttp.Response
	br     *bufio.Reader
}

func newStreamCaller(t target) *streamCaller {
	c := &streamCaller{
		client: newClient(t.streamAddr, 1, true),
		req:    fasthttp.AcquireRequest(),
		resp:   fasthttp.AcquireResponse(),
		br:     bufio.NewReaderSize(nil, 16<<10),
	}
	setRequest(c.req, t.streamAddr, t.auth, t.streamBody)
	return c
}

// call sends one streamed request and reads the whole stream.
func (c *streamCaller) call() (streamResult, error) {
	start := time.Now()
	if err := c.client.Do(c.req, c.resp); err != nil {
		return streamResult{}, fmt.Errorf("request: %w", err)
	}
	defer c.resp.CloseBodyStream()
	if c.resp.StatusCode() != fasthttp.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(c.resp.BodyStream(), 300))
		return streamResult{}, fmt.Errorf("status %d: %s", c.resp.StatusCode(), b)
	}
	body := c.resp.BodyStream()
	if body == nil {
		body = bytes.NewReader(c.resp.Body())
	}
	c.br.Reset(body)
	return readEvents(c.br, start)
}

func (c *streamCaller) release() {
	c.client.CloseIdleConnections()
	fasthttp.ReleaseRequest(c.req)
	fasthttp.ReleaseResponse(c.resp)
}

var (
	dataPrefix = []byte("data: ")
	doneEvent  = []byte("[DONE]")
)

// readEvents reads an SSE body to its end and times it from start. The
// stream must end with data: [DONE] and carry no error event.
func readEvents(br *bufio.Reader, start time.Time) (streamResult, error) {
	var r streamResult
	done := false
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			data, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r\n"), dataPrefix)
			switch {
			case !ok:
			case done:
				return r, errors.New("data after [DONE]")
			case bytes.Equal(data, doneEvent):
				done = true
			case bytes.HasPrefix(data, []byte(`{"error"`)):
				return r, fmt.Errorf("error event: %.300s", data)
			default:
				if r.chunks == 0 {
					r.firstChunk = time.Since(start)
				}
				r.chunks++
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return r, fmt.Errorf("read stream: %w", err)
		}
	}
	r.total = time.Since(start)
	if !done {
		return r, fmt.Errorf("stream ended after %d chunks without [DONE]", r.chunks)
	}
	return r, nil
}

// streams reads n streamed answers one after the other.
func streams(ctx context.Context, c *streamCaller, n int) ([]streamResult, error) {
	out := make([]streamResult, 0, n)
	for range n {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		r, err := c.call()
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// streamLoad is what a concurrent stream run measured.
type streamLoad struct {
	chunks, streams, errors int
	elapsed                 time.Duration
	firstErr                error
}

// saturateStreams keeps conns streams in flight at t for d and counts the
// chunks that arrive.
func saturateStreams(ctx context.Context, t target, conns int, d time.Duration) streamLoad {
	results := make([]streamLoad, conns)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			c := newStreamCaller(t)
			defer c.release()
			r := &results[i]
			for ctx.Err() == nil && time.Now().Before(deadline) {
				sr, err := c.call()
				if err != nil {
					r.errors++
					if r.firstErr == nil {
						r.firstErr = err
					}
					continue
				}
				r.streams++
				r.chunks += sr.chunks
			}
		})
	}
	wg.Wait()
	total := streamLoad{elapsed: time.Since(start)}
	for _, r := range results {
		total.chunks += r.chunks
		total.streams += r.streams
		total.errors += r.errors
		if total.firstErr == nil {
			total.firstErr = r.firstErr
		}
	}
	return total
}
