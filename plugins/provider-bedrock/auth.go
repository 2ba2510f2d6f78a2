package main

import (
	"context"
	"fmt"
	"net"

	smithybearer "github.com/aws/smithy-go/auth/bearer"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// bearerSigner sets a Bedrock API key as "Authorization: Bearer". Like the
// SDK's own signer it refuses to send the key over plain HTTP, except to a
// loopback host (a local fake or proxy).
type bearerSigner struct{}

var _ smithybearer.Signer = bearerSigner{}

// SignWithBearerToken implements smithybearer.Signer.
func (bearerSigner) SignWithBearerToken(_ context.Context, token smithybearer.Token, msg smithybearer.Message) (smithybearer.Message, error) {
	req, ok := msg.(*smithyhttp.Request)
	if !ok {
		return nil, fmt.Errorf("bearer signer: want a smithy HTTP request, got %T", msg)
	}
	if !req.IsHTTPS() && !isLoopback(req.URL.Hostname()) {
		return nil, fmt.Errorf("bearer signer: refusing to send the API key over plain HTTP to %s", req.URL.Host)
	}
	out := req.Clone()
	out.Header.Set("Authorization", "Bearer "+token.Value)
	return out, nil
}

// isLoopback reports whether host names this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
