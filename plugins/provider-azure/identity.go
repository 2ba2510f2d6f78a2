package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// identityTransport carries the token requests of workload identity; nil
// (the SDK's default client) in production, a client that trusts a fake
// authority in tests.
var identityTransport policy.Transporter

// identityAuth sends an Entra access token of the workload's own identity,
// obtained and cached (refreshed ahead of expiry) by azidentity.
type identityAuth struct {
	cred  azcore.TokenCredential
	scope string
}

var _ authorizer = (*identityAuth)(nil)

// newIdentityAuth picks the workload identity the environment offers, the
// way the AKS webhook and Azure hosts set it up: with
// AZURE_FEDERATED_TOKEN_FILE, the federated client-assertion flow (the
// projected service-account token exchanged at the Entra authority of
// AZURE_AUTHORITY_HOST or authorityHost for the app AZURE_CLIENT_ID or
// clientID in AZURE_TENANT_ID or tenantID); otherwise the managed identity
// (IMDS, or IDENTITY_ENDPOINT on App Service and Container Apps), the
// user-assigned one named by clientID when set.
func newIdentityAuth(tenantID, clientID, authorityHost, scope string) (*identityAuth, error) {
	opts := azcore.ClientOptions{Transport: identityTransport}
	// The provider's router owns retries; the token call gets one more
	// try only (IMDS asks callers to retry, so keep a single one).
	opts.Retry = policy.RetryOptions{MaxRetries: 1}
	if authorityHost != "" {
		opts.Cloud.ActiveDirectoryAuthorityHost = authorityHost
	}
	if tokenFile := os.Getenv("AZURE_FEDERATED_TOKEN_FILE"); tokenFile != "" {
		cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: opts, ClientID: clientID, TenantID: tenantID, TokenFilePath: tokenFile,
			// A private authority (a sovereign cloud or a test) has no
			// instance discovery endpoint; the authority is trusted as
			// configured.
			DisableInstanceDiscovery: authorityHost != "" || os.Getenv("AZURE_AUTHORITY_HOST") != "",
		})
		if err != nil {
			return nil, fmt.Errorf("federated token: %w", err)
		}
		return &identityAuth{cred: cred, scope: scope}, nil
	}
	mi := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
	if clientID != "" {
		mi.ID = azidentity.ClientID(clientID)
	}
	cred, err := azidentity.NewManagedIdentityCredential(mi)
	if err != nil {
		return nil, fmt.Errorf("managed identity: %w", err)
	}
	return &identityAuth{cred: cred, scope: scope}, nil
}

func (a *identityAuth) authorize(ctx context.Context, h http.Header) error {
	tok, err := a.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{a.scope}})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var fail *azidentity.AuthenticationFailedError
		if errors.As(err, &fail) && fail.RawResponse != nil && fail.RawResponse.StatusCode < 500 {
			provider.Logger().Warn("azure: workload identity refused", "status", fail.RawResponse.StatusCode, "error", firstLine(err.Error()))
			return openai.NewError(http.StatusUnauthorized, openai.TypeAuthentication, "workload_identity_refused",
				fmt.Sprintf("azure: the identity endpoint refused the workload identity (status %d)", fail.RawResponse.StatusCode))
		}
		return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "workload_identity_unavailable",
			"azure: no workload identity token: "+firstLine(err.Error()))
	}
	h.Del("api-key")
	h.Set("Authorization", "Bearer "+tok.Token)
	return nil
}

// invalidate is a no-op: azidentity keeps its own cache and refreshes a
// token before it expires; a rejected token is not handed out again once
// it has been replaced.
func (a *identityAuth) invalidate() {}
