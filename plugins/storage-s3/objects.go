package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/llmproxy/llmproxy/sdk/storage"
)

// Put uploads body with one PutObject when it fits in one part, and as a
// multipart upload otherwise. Either way it holds at most one part in
// memory.
func (p *S3) Put(ctx context.Context, obj *storage.Object, body io.Reader) (*storage.ObjectInfo, error) {
	st, err := p.current()
	if err != nil {
		return nil, err
	}
	partSize := st.partSize
	if obj.Size > 0 {
		partSize = max(partSize, (obj.Size+maxParts-1)/maxParts)
	}
	bufSize := partSize
	if obj.Size >= 0 && obj.Size < partSize {
		bufSize = obj.Size
	}
	buf := make([]byte, bufSize)
	n, err := io.ReadFull(body, buf)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return p.putSingle(ctx, st, obj, buf[:n])
	case err != nil:
		return nil, fmt.Errorf("read body of %s/%s: %w", obj.Bucket, obj.Key, err)
	}
	// The buffer is full: the body ends here or continues in parts.
	var one [1]byte
	m, err := io.ReadFull(body, one[:])
	switch {
	case m == 0 && errors.Is(err, io.EOF):
		return p.putSingle(ctx, st, obj, buf)
	case err != nil:
		return nil, fmt.Errorf("read body of %s/%s: %w", obj.Bucket, obj.Key, err)
	}
	return p.putMultipart(ctx, st, obj, buf, one[0], body)
}

func (p *S3) putSingle(ctx context.Context, st *state, obj *storage.Object, data []byte) (*storage.ObjectInfo, error) {
	out, err := st.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(obj.Bucket),
		Key:           aws.String(obj.Key),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   contentType(obj.ContentType),
		Metadata:      obj.Metadata,
	})
	if err != nil {
		return nil, mapError(err, obj.Bucket, obj.Key)
	}
	return &storage.ObjectInfo{
		Bucket: obj.Bucket, Key: obj.Key, Size: int64(len(data)), ETag: unquote(aws.ToString(out.ETag)),
		ContentType: aws.ToString(contentType(obj.ContentType)), Metadata: obj.Metadata,
	}, nil
}

// putMultipart uploads buf (a full part), then next and the rest of body,
// one part at a time, and aborts the upload when anything fails.
func (p *S3) putMultipart(ctx context.Context, st *state, obj *storage.Object, buf []byte, next byte, body io.Reader) (_ *storage.ObjectInfo, err error) {
	created, err := st.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:      aws.String(obj.Bucket),
		Key:         aws.String(obj.Key),
		ContentType: contentType(obj.ContentType),
		Metadata:    obj.Metadata,
	})
	if err != nil {
		return nil, mapError(err, obj.Bucket, obj.Key)
	}
	uploadID := created.UploadId
	defer func() {
		if err == nil {
			return
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, aerr := st.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(obj.Bucket), Key: aws.String(obj.Key), UploadId: uploadID,
		}); aerr != nil {
			storage.Logger().Warn("cannot abort multipart upload", "bucket", obj.Bucket, "error", aerr)
		}
	}()

	var parts []types.CompletedPart
	var total int64
	upload := func(data []byte) error {
		num := int32(len(parts) + 1)
		if num > maxParts {
			return fmt.Errorf("upload %s/%s: more than %d parts of %d bytes", obj.Bucket, obj.Key, maxParts, len(buf))
		}
		out, err := st.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: aws.String(obj.Bucket), Key: aws.String(obj.Key), UploadId: uploadID,
			PartNumber: aws.Int32(num), Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
		})
		if err != nil {
			return mapError(err, obj.Bucket, obj.Key)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
		total += int64(len(data))
		return nil
	}
	if err := upload(buf); err != nil {
		return nil, err
	}
	buf[0] = next
	for {
		n, rerr := io.ReadFull(body, buf[1:])
		n++
		if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("read body of %s/%s: %w", obj.Bucket, obj.Key, rerr)
		}
		if err := upload(buf[:n]); err != nil {
			return nil, err
		}
		if rerr != nil {
			break
		}
		// Peek one byte so that a body ending on a part boundary does
		// not produce an empty last part.
		m, perr := io.ReadFull(body, buf[:1])
		if m == 0 && errors.Is(perr, io.EOF) {
			break
		}
		if perr != nil {
			return nil, fmt.Errorf("read body of %s/%s: %w", obj.Bucket, obj.Key, perr)
		}
	}
	done, err := st.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(obj.Bucket), Key: aws.String(obj.Key), UploadId: uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return nil, mapError(err, obj.Bucket, obj.Key)
	}
	return &storage.ObjectInfo{
		Bucket: obj.Bucket, Key: obj.Key, Size: total, ETag: unquote(aws.ToString(done.ETag)),
		ContentType: aws.ToString(contentType(obj.ContentType)), Metadata: obj.Metadata,
	}, nil
}

// Get downloads the object or the range asked for.
func (p *S3) Get(ctx context.Context, req *storage.GetRequest) (*storage.ObjectInfo, io.ReadCloser, error) {
	st, err := p.current()
	if err != nil {
		return nil, nil, err
	}
	in := &s3.GetObjectInput{Bucket: aws.String(req.Bucket), Key: aws.String(req.Key)}
	if r := req.Range; r != nil {
		if r.Start < 0 || (r.End >= 0 && r.End < r.Start) {
			return nil, nil, storage.RangeNotSatisfiable(*r, -1)
		}
		in.Range = aws.String(rangeHeader(*r))
	}
	out, err := st.client.GetObject(ctx, in)
	if err != nil {
		return nil, nil, mapError(err, req.Bucket, req.Key)
	}
	info := &storage.ObjectInfo{
		Bucket: req.Bucket, Key: req.Key, Size: aws.ToInt64(out.ContentLength), ETag: unquote(aws.ToString(out.ETag)),
		ContentType: aws.ToString(out.ContentType), LastModified: aws.ToTime(out.LastModified), Metadata: out.Metadata,
	}
	if req.Range == nil {
		return info, out.Body, nil
	}
	if cr := aws.ToString(out.ContentRange); cr != "" {
		rng, total, err := parseContentRange(cr)
		if err != nil {
			out.Body.Close()
			return nil, nil, mapError(err, req.Bucket, req.Key)
		}
		info.Size, info.ContentRange = total, &rng
		return info, out.Body, nil
	}
	// The service ignored the range and sent the whole object: cut the
	// range out of it.
	rng, err := storage.ResolveRange(*req.Range, info.Size)
	if err != nil {
		out.Body.Close()
		return nil, nil, err
	}
	if _, err := io.CopyN(io.Discard, out.Body, rng.Start); err != nil {
		out.Body.Close()
		return nil, nil, mapError(err, req.Bucket, req.Key)
	}
	info.ContentRange = &rng
	return info, readCloser{Reader: io.LimitReader(out.Body, rng.Length()), Closer: out.Body}, nil
}

// Head returns the object's info.
func (p *S3) Head(ctx context.Context, bucket, key string) (*storage.ObjectInfo, error) {
	st, err := p.current()
	if err != nil {
		return nil, err
	}
	out, err := st.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		err = mapError(err, bucket, key)
		if isObjectNotFound(err) && !p.bucketExists(ctx, st, bucket) {
			return nil, storage.BucketNotFound(bucket)
		}
		return nil, err
	}
	return &storage.ObjectInfo{
		Bucket: bucket, Key: key, Size: aws.ToInt64(out.ContentLength), ETag: unquote(aws.ToString(out.ETag)),
		ContentType: aws.ToString(out.ContentType), LastModified: aws.ToTime(out.LastModified), Metadata: out.Metadata,
	}, nil
}

// bucketExists tells a missing bucket from a missing key after a HEAD
// answered 404 without saying which.
func (p *S3) bucketExists(ctx context.Context, st *state, bucket string) bool {
	_, err := st.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
	return err == nil || !isBucketNotFound(mapError(err, bucket, ""))
}

// Delete removes the object; S3 itself treats a missing key as success.
func (p *S3) Delete(ctx context.Context, bucket, key string) error {
	st, err := p.current()
	if err != nil {
		return err
	}
	_, err = st.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	return mapError(err, bucket, key)
}

// List returns one page of ListObjectsV2.
func (p *S3) List(ctx context.Context, req *storage.ListRequest) (*storage.ListResult, error) {
	st, err := p.current()
	if err != nil {
		return nil, err
	}
	in := &s3.ListObjectsV2Input{Bucket: aws.String(req.Bucket), MaxKeys: aws.Int32(int32(req.MaxKeys))}
	if req.Prefix != "" {
		in.Prefix = aws.String(req.Prefix)
	}
	if req.Delimiter != "" {
		in.Delimiter = aws.String(req.Delimiter)
	}
	if req.PageToken != "" {
		in.ContinuationToken = aws.String(req.PageToken)
	}
	out, err := st.client.ListObjectsV2(ctx, in)
	if err != nil {
		return nil, mapError(err, req.Bucket, "")
	}
	res := &storage.ListResult{}
	for _, o := range out.Contents {
		res.Objects = append(res.Objects, storage.ObjectInfo{
			Bucket: req.Bucket, Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size),
			ETag: unquote(aws.ToString(o.ETag)), LastModified: aws.ToTime(o.LastModified),
		})
	}
	for _, cp := range out.CommonPrefixes {
		res.CommonPrefixes = append(res.CommonPrefixes, aws.ToString(cp.Prefix))
	}
	if aws.ToBool(out.IsTruncated) {
		res.NextPageToken = aws.ToString(out.NextContinuationToken)
	}
	return res, nil
}

// rangeHeader renders r as an HTTP Range header value.
func rangeHeader(r storage.ByteRange) string {
	if r.End < 0 {
		return fmt.Sprintf("bytes=%d-", r.Start)
	}
	return fmt.Sprintf("bytes=%d-%d", r.Start, r.End)
}

// parseContentRange reads "bytes start-end/total".
func parseContentRange(v string) (storage.ByteRange, int64, error) {
	spec, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return storage.ByteRange{}, 0, fmt.Errorf("malformed Content-Range %q", v)
	}
	rng, total, ok := strings.Cut(spec, "/")
	a, b, ok2 := strings.Cut(rng, "-")
	if !ok || !ok2 {
		return storage.ByteRange{}, 0, fmt.Errorf("malformed Content-Range %q", v)
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	size, err3 := strconv.ParseInt(total, 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil || start < 0 || end < start || end >= size {
		return storage.ByteRange{}, 0, fmt.Errorf("malformed Content-Range %q", v)
	}
	return storage.ByteRange{Start: start, End: end}, size, nil
}

func contentType(ct string) *string {
	if ct == "" {
		return aws.String("application/octet-stream")
	}
	return aws.String(ct)
}

func unquote(etag string) string { return strings.Trim(etag, `"`) }

func isObjectNotFound(err error) bool { return hasCode(err, storage.CodeObjectNotFound) }

func isBucketNotFound(err error) bool { return hasCode(err, storage.CodeBucketNotFound) }

type readCloser struct {
	io.Reader
	io.Closer
}
