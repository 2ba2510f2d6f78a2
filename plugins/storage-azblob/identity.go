package main

import (
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// identityTransport carries the token requests of workload identity; nil
// (the SDK's default client) in production, a client that trusts a fake
// authority in tests.
var identityTransport policy.Transporter

// workloadIdentity returns the credential of auth = "workload_identity":
// with AZURE_FEDERATED_TOKEN_FILE (the AKS workload identity webhook sets
// it with AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_AUTHORITY_HOST), the
// federated client-assertion flow; otherwise the managed identity (IMDS,
// or IDENTITY_ENDPOINT on App Service and Container Apps), the
// user-assigned one named by clientID when set. azidentity caches the
// token and refreshes it before it expires.
func workloadIdentity(clientID string) (azcore.TokenCredential, error) {
	opts := azcore.ClientOptions{Transport: identityTransport}
	if f := os.Getenv("AZURE_FEDERATED_TOKEN_FILE"); f != "" {
		return azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: opts, ClientID: clientID, TokenFilePath: f,
			DisableInstanceDiscovery: os.Getenv("AZURE_AUTHORITY_HOST") != "",
		})
	}
	mi := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
	if clientID != "" {
		mi.ID = azidentity.ClientID(clientID)
	}
	return azidentity.NewManagedIdentityCredential(mi)
}
