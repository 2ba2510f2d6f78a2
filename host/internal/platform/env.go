package platform

import (
	"slices"
	"strings"
)

// envByCloud lists, per cloud, the variables its workload identities are
// configured by. The host forwards the ones set to an instance whose
// config says auth = "workload_identity", and nothing else of its own
// environment: the plugin's cloud SDK then finds the identity itself.
var envByCloud = map[string][]string{
	AWS: {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_STS_REGIONAL_ENDPOINTS", "AWS_ENDPOINT_URL_STS", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
		"AWS_EC2_METADATA_DISABLED", "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
		"AWS_EC2_METADATA_V1_DISABLED"},
	GCP: {"GCE_METADATA_HOST", "GCE_METADATA_IP", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_UNIVERSE_DOMAIN"},
	Azure: {"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST",
		"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET"},
	OCI: {"OCI_RESOURCE_PRINCIPAL_VERSION", "OCI_RESOURCE_PRINCIPAL_RPST", "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM",
		"OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE", "OCI_RESOURCE_PRINCIPAL_REGION",
		"OCI_RESOURCE_PRINCIPAL_RPT_ENDPOINT", "OCI_RESOURCE_PRINCIPAL_RPST_ENDPOINT",
		"OCI_KUBERNETES_SERVICE_ACCOUNT_CERT_PATH", "OCI_METADATA_BASE_URL", "OCI_SDK_AUTH_CLIENT_REGION_URL",
		"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"},
	// IBM's compute-resource token is a file the plugin's config names.
	IBM: nil,
}

// typeCloud maps the shipped plugin types to their cloud.
var typeCloud = map[string]string{
	"bedrock": AWS, "s3": AWS,
	"vertex": GCP, "gcs": GCP,
	"azure": Azure, "azblob": Azure,
	"oci":     OCI,
	"watsonx": IBM,
}

// CloudOf returns the cloud of a plugin type, or "" for one the host does
// not know (a third-party plugin then names what it needs with
// inherit_env).
func CloudOf(pluginType string) string { return typeCloud[pluginType] }

// Env returns the cloud's workload-identity variables that getenv has a
// value for, as KEY=VALUE.
func Env(cloud string, getenv func(string) string) []string {
	var out []string
	for _, k := range envByCloud[cloud] {
		if v := getenv(k); v != "" {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// Variables returns the names Env forwards for cloud, sorted.
func Variables(cloud string) []string {
	v := slices.Clone(envByCloud[cloud])
	slices.SortFunc(v, strings.Compare)
	return v
}
