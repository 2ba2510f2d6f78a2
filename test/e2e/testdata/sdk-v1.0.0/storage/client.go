package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
	pluginv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/plugin/v1"
	storagev1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/storage/v1"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// Client is the host's handle on a running storage plugin. go-plugin
// dispenses it for PluginName; sdktest drives plugins through it too.
// Errors it returns are *openai.Error values (or context errors),
// whatever went wrong on the way: a backend error, a plugin panic, or a
// plugin that died mid-call (502 plugin_unavailable). The Meta carried by
// ctx (ContextWithMeta) travels with every data-plane call.
type Client struct {
	rpc storagev1.StorageClient
}

// NewClient returns a Client over an established gRPC connection to a
// storage plugin.
func NewClient(cc grpc.ClientConnInterface) *Client {
	return &Client{rpc: storagev1.NewStorageClient(cc)}
}

func ctxMeta(ctx context.Context) *pluginv1.Meta {
	m, _ := MetaFromContext(ctx)
	if m.Deadline.IsZero() {
		if d, ok := ctx.Deadline(); ok {
			m.Deadline = d
		}
	}
	return metaToProto(m)
}

// Describe asks the plugin what it is.
func (c *Client) Describe(ctx context.Context) (*Description, error) {
	r, err := c.rpc.Describe(ctx, &storagev1.DescribeRequest{})
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	return &Description{
		Name:         r.Name,
		Version:      r.Version,
		Capabilities: r.Capabilities,
		ConfigSchema: rpc.SchemaFromProto(r.ConfigSchema),
		Credentials:  rpc.CredentialsFromProto(r.Credentials),
	}, nil
}

// Configure sends an instance's config; the diagnostics say what is wrong.
// The error is for transport failures only.
func (c *Client) Configure(ctx context.Context, cfg *Config) (schema.Diagnostics, error) {
	r, err := c.rpc.Configure(ctx, &pluginv1.ConfigureRequest{
		Instance:    cfg.Instance,
		ConfigJson:  cfg.JSON,
		Credentials: cfg.Credentials,
		Settings:    cfg.Settings,
	})
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	return rpc.DiagnosticsFromProto(r.Diagnostics), nil
}

// Put streams body to the plugin in pieces of PieceSize and returns the
// stored object's info. obj.Size is the body length or -1 when unknown;
// a body that does not match a known size fails with 400 size_mismatch.
// When reading body fails the upload is aborted and nothing is stored.
func (c *Client) Put(ctx context.Context, obj *Object, body io.Reader) (*ObjectInfo, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.rpc.Put(ctx)
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	hdr := &storagev1.PutHeader{
		Meta: ctxMeta(ctx), Bucket: obj.Bucket, Key: obj.Key,
		ContentType: obj.ContentType, Size: obj.Size, Metadata: obj.Metadata,
	}
	if err := st.Send(&storagev1.PutRequest{Part: &storagev1.PutRequest_Header{Header: hdr}}); err != nil {
		return nil, putStatus(st, err)
	}
	buf := make([]byte, PieceSize)
	for {
		n, rerr := io.ReadFull(body, buf)
		if n > 0 {
			if err := st.Send(&storagev1.PutRequest{Part: &storagev1.PutRequest_Data{Data: buf[:n]}}); err != nil {
				return nil, putStatus(st, err)
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			// Cancelling (not half-closing) the stream makes the plugin
			// see an error instead of the end of the body.
			cancel()
			return nil, fmt.Errorf("read body of %s/%s: %w", obj.Bucket, obj.Key, rerr)
		}
	}
	r, err := st.CloseAndRecv()
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	return infoFromProto(r.Info), nil
}

// putStatus returns the status that ended a Put stream early: Send only
// reports io.EOF, the status itself comes from receiving.
func putStatus(st storagev1.Storage_PutClient, err error) error {
	if errors.Is(err, io.EOF) {
		_, err = st.CloseAndRecv()
		if err == nil {
			err = errors.New("storage plugin ended the upload early")
		}
	}
	return rpc.FromStatus(err)
}

// Get returns the info of an object and a reader over its bytes (or over
// req.Range). The reader streams from the plugin; close it to release the
// call, also when not reading to the end.
func (c *Client) Get(ctx context.Context, req *GetRequest) (*ObjectInfo, io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	st, err := c.rpc.Get(ctx, &storagev1.GetRequest{
		Meta: ctxMeta(ctx), Bucket: req.Bucket, Key: req.Key, Range: rangeToProto(req.Range),
	})
	if err != nil {
		cancel()
		return nil, nil, rpc.FromStatus(err)
	}
	first, err := st.Recv()
	if err != nil {
		cancel()
		if errors.Is(err, io.EOF) {
			return nil, nil, rpc.FromStatus(errors.New("storage plugin ended Get without object info"))
		}
		return nil, nil, rpc.FromStatus(err)
	}
	return infoFromProto(first.Info), &getReader{st: st, cancel: cancel, piece: first.Data}, nil
}

// getReader reads the body pieces of a Get stream.
type getReader struct {
	st     storagev1.Storage_GetClient
	cancel context.CancelFunc
	piece  []byte
	err    error
}

func (r *getReader) Read(p []byte) (int, error) {
	for len(r.piece) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		m, err := r.st.Recv()
		if errors.Is(err, io.EOF) {
			r.err = io.EOF
			continue
		}
		if err != nil {
			r.err = rpc.FromStatus(err)
			continue
		}
		r.piece = m.Data
	}
	n := copy(p, r.piece)
	r.piece = r.piece[n:]
	return n, nil
}

// Close ends the call; the plugin stops reading the object.
func (r *getReader) Close() error {
	r.cancel()
	if r.err == nil {
		r.err = errors.New("storage: read from closed object body")
	}
	return nil
}

// Head returns an object's info.
func (c *Client) Head(ctx context.Context, bucket, key string) (*ObjectInfo, error) {
	r, err := c.rpc.Head(ctx, &storagev1.HeadRequest{Meta: ctxMeta(ctx), Bucket: bucket, Key: key})
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	return infoFromProto(r.Info), nil
}

// List returns one page of a bucket listing.
func (c *Client) List(ctx context.Context, req *ListRequest) (*ListResult, error) {
	r, err := c.rpc.List(ctx, &storagev1.ListRequest{
		Meta: ctxMeta(ctx), Bucket: req.Bucket, Prefix: req.Prefix, Delimiter: req.Delimiter,
		PageToken: req.PageToken, MaxKeys: int32(min(max(req.MaxKeys, -1), DefaultMaxKeys+1)),
	})
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	out := &ListResult{CommonPrefixes: r.CommonPrefixes, NextPageToken: r.NextPageToken}
	for _, o := range r.Objects {
		out.Objects = append(out.Objects, *infoFromProto(o))
	}
	return out, nil
}

// Delete removes an object; a missing object is not an error.
func (c *Client) Delete(ctx context.Context, bucket, key string) error {
	_, err := c.rpc.Delete(ctx, &storagev1.DeleteRequest{Meta: ctxMeta(ctx), Bucket: bucket, Key: key})
	return rpc.FromStatus(err)
}

// Presign asks for a presigned URL. Plugins without presigning answer
// 400 unsupported_operation.
func (c *Client) Presign(ctx context.Context, req *PresignRequest) (*PresignedURL, error) {
	ttl := int64(req.TTL / time.Second)
	if req.TTL > 0 && ttl == 0 {
		ttl = 1
	}
	r, err := c.rpc.Presign(ctx, &storagev1.PresignRequest{
		Meta: ctxMeta(ctx), Bucket: req.Bucket, Key: req.Key, Method: req.Method,
		TtlSeconds: ttl, ContentType: req.ContentType,
	})
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	return &PresignedURL{
		URL: r.Url, Method: r.Method, Header: headerFromProto(r.Headers), Expires: time.Unix(r.ExpiresAtUnix, 0),
	}, nil
}

// Health reports the plugin's own view of its backend.
func (c *Client) Health(ctx context.Context) error {
	r, err := c.rpc.Health(ctx, &pluginv1.HealthRequest{})
	if err != nil {
		return rpc.FromStatus(err)
	}
	if !r.Ok {
		return errors.New(r.Message)
	}
	return nil
}
