package main

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

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

// workloadIdentityConfig loads the AWS configuration of auth =
// "workload_identity": the SDK's own chain restricted to the identities a
// workload is given by its platform, in the SDK's order: the IRSA web
// identity token (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, exchanged with
// STS AssumeRoleWithWebIdentity), container credentials (EKS Pod Identity:
// AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)
// and the EC2 instance role over IMDSv2. Shared config files are not read,
// so a stray ~/.aws profile cannot stand in for the workload's identity.
// The SDK caches what it obtains and refreshes it before it expires.
func workloadIdentityConfig(ctx context.Context, region string) (aws.Config, error) {
	if os.Getenv("AWS_ACCESS_KEY_ID") != "" {
		return aws.Config{}, fmt.Errorf("AWS_ACCESS_KEY_ID is set in the plugin's environment: static keys are not a workload identity")
	}
	return awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region),
		awsconfig.WithSharedConfigFiles([]string{}), awsconfig.WithSharedCredentialsFiles([]string{}))
}
