package storage

import (
	"net/http"
	"time"

	pluginv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/plugin/v1"
	storagev1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/storage/v1"
)

func metaToProto(m Meta) *pluginv1.Meta {
	p := &pluginv1.Meta{RequestId: m.RequestID, Instance: m.Instance, Trace: m.Trace}
	if !m.Deadline.IsZero() {
		p.DeadlineUnixNano = m.Deadline.UnixNano()
	}
	return p
}

func metaFromProto(p *pluginv1.Meta) Meta {
	if p == nil {
		return Meta{}
	}
	m := Meta{RequestID: p.RequestId, Instance: p.Instance, Trace: p.Trace}
	if p.DeadlineUnixNano != 0 {
		m.Deadline = time.Unix(0, p.DeadlineUnixNano)
	}
	return m
}

func rangeToProto(r *ByteRange) *storagev1.ByteRange {
	if r == nil {
		return nil
	}
	return &storagev1.ByteRange{Start: r.Start, End: r.End}
}

func rangeFromProto(p *storagev1.ByteRange) *ByteRange {
	if p == nil {
		return nil
	}
	return &ByteRange{Start: p.Start, End: p.End}
}

func infoToProto(i *ObjectInfo) *storagev1.ObjectInfo {
	if i == nil {
		return &storagev1.ObjectInfo{}
	}
	p := &storagev1.ObjectInfo{
		Bucket:       i.Bucket,
		Key:          i.Key,
		Size:         i.Size,
		Etag:         i.ETag,
		ContentType:  i.ContentType,
		Metadata:     i.Metadata,
		ContentRange: rangeToProto(i.ContentRange),
	}
	if !i.LastModified.IsZero() {
		p.LastModifiedUnixNano = i.LastModified.UnixNano()
	}
	return p
}

func infoFromProto(p *storagev1.ObjectInfo) *ObjectInfo {
	if p == nil {
		return &ObjectInfo{}
	}
	i := &ObjectInfo{
		Bucket:       p.Bucket,
		Key:          p.Key,
		Size:         p.Size,
		ETag:         p.Etag,
		ContentType:  p.ContentType,
		Metadata:     p.Metadata,
		ContentRange: rangeFromProto(p.ContentRange),
	}
	if p.LastModifiedUnixNano != 0 {
		i.LastModified = time.Unix(0, p.LastModifiedUnixNano).UTC()
	}
	return i
}

func headerToProto(h http.Header) []*storagev1.Header {
	out := make([]*storagev1.Header, 0, len(h))
	for k, v := range h {
		out = append(out, &storagev1.Header{Name: k, Values: v})
	}
	return out
}

func headerFromProto(hs []*storagev1.Header) http.Header {
	h := make(http.Header, len(hs))
	for _, x := range hs {
		k := http.CanonicalHeaderKey(x.Name)
		h[k] = append(h[k], x.Values...)
	}
	return h
}
