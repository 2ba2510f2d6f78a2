package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// maxPresignTTL is the longest validity a presigned URL may ask for. A user
// delegation key lives at most seven days, and the plugin holds a service
// SAS to the same bound.
const maxPresignTTL = 7 * 24 * time.Hour

// clockSkew backdates the SAS start time so a server whose clock runs a
// little behind still accepts a fresh URL.
const clockSkew = 5 * time.Minute

// Presign implements storage.Presigner. It returns a SAS URL for one blob:
// a service SAS signed with the account key, or a user delegation SAS when
// the plugin authenticates with an Azure identity. A presigned PUT must
// send x-ms-blob-type: BlockBlob, which the returned Header carries.
func (s *Store) Presign(ctx context.Context, req *storage.PresignRequest) (*storage.PresignedURL, error) {
	b, err := s.backend()
	if err != nil {
		return nil, err
	}
	if req.TTL <= 0 || req.TTL > maxPresignTTL {
		return nil, openai.InvalidRequest("ttl", fmt.Sprintf("ttl must be between 1s and %s, got %s", maxPresignTTL, req.TTL))
	}
	t := time.Now().UTC()
	expires := t.Add(req.TTL).Truncate(time.Second)
	v := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPS,
		StartTime:     t.Add(-clockSkew),
		ExpiryTime:    expires,
		ContainerName: req.Bucket,
		BlobName:      req.Key,
	}
	if b.insecure {
		v.Protocol = sas.ProtocolHTTPSandHTTP
	}
	header := http.Header{}
	switch req.Method {
	case http.MethodGet:
		v.Permissions = (&sas.BlobPermissions{Read: true}).String()
	case http.MethodPut:
		v.Permissions = (&sas.BlobPermissions{Create: true, Write: true}).String()
		header.Set("x-ms-blob-type", "BlockBlob")
		if req.ContentType != "" {
			header.Set("Content-Type", req.ContentType)
		}
	default:
		return nil, openai.InvalidRequest("method", fmt.Sprintf("presign method must be GET or PUT, got %q", req.Method))
	}
	var qp sas.QueryParameters
	switch {
	case b.key != nil:
		qp, err = v.SignWithSharedKey(b.key)
	case b.token != nil:
		var udc *service.UserDelegationCredential
		udc, err = b.svc.GetUserDelegationCredential(ctx, service.KeyInfo{
			Start:  ptr(v.StartTime.Format(sas.TimeFormat)),
			Expiry: ptr(expires.Format(sas.TimeFormat)),
		}, nil)
		if err != nil {
			return nil, mapError(err, opPresign, req.Bucket, req.Key)
		}
		qp, err = v.SignWithUserDelegation(udc)
	default:
		return nil, openai.NewError(http.StatusNotImplemented, openai.TypeInvalidRequest, storage.CodePresignDisabled,
			"presigned URLs need the account_key credential or an Azure identity; this instance uses a SAS token")
	}
	if err != nil {
		return nil, fmt.Errorf("azure blob presign %s/%s: sign: %w", req.Bucket, req.Key, err)
	}
	return &storage.PresignedURL{
		URL:     b.blob(req.Bucket, req.Key).URL() + "?" + qp.Encode(),
		Method:  req.Method,
		Header:  header,
		Expires: expires,
	}, nil
}
