package platform

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// pod builds a fake pod filesystem under a temp root with the given files.
func pod(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func kinds(r *Report) []string {
	var out []string
	for _, id := range r.Identities {
		out = append(out, id.Cloud+"/"+id.Kind)
	}
	return out
}

func TestDetect(t *testing.T) {
	sa := map[string]string{ServiceAccountDir + "/token": "jwt", ServiceAccountDir + "/namespace": "llm\n"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range sa {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	k8sEnv := map[string]string{"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
	merge := func(a, b map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range a {
			m[k] = v
		}
		for k, v := range b {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name       string
		files      map[string]string
		env        map[string]string
		wantK8s    bool
		namespace  string
		platforms  []string
		identities []string
	}{
		{name: "bare machine"},
		{name: "plain kubernetes", files: sa, env: k8sEnv, wantK8s: true, namespace: "llm"},
		{name: "token without env", files: sa, wantK8s: true, namespace: "llm"},
		{name: "eks irsa", files: with(map[string]string{eksIRSATokenFile: "jwt"}), env: merge(k8sEnv, map[string]string{
			"AWS_WEB_IDENTITY_TOKEN_FILE": eksIRSATokenFile, "AWS_ROLE_ARN": "arn:aws:iam::1:role/r"}),
			wantK8s: true, namespace: "llm", platforms: []string{"eks"}, identities: []string{"aws/irsa"}},
		{name: "eks irsa file only", files: with(map[string]string{eksIRSATokenFile: "jwt"}), env: k8sEnv,
			wantK8s: true, namespace: "llm", platforms: []string{"eks"}, identities: []string{"aws/irsa"}},
		{name: "eks pod identity", files: with(map[string]string{eksPodIdentityFile: "jwt"}), env: merge(k8sEnv, map[string]string{
			"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": eksPodIdentityFile}),
			wantK8s: true, namespace: "llm", platforms: []string{"eks"}, identities: []string{"aws/eks_pod_identity"}},
		{name: "ecs task role, not kubernetes", env: map[string]string{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x"},
			identities: []string{"aws/container_credentials"}},
		{name: "gke metadata", files: sa, env: merge(k8sEnv, map[string]string{"GCE_METADATA_HOST": "169.254.169.254"}),
			wantK8s: true, namespace: "llm", platforms: []string{"gke"}, identities: []string{"gcp/gke_metadata"}},
		{name: "gcp federation", files: map[string]string{"/etc/gcp/cred.json": `{"type": "external_account"}`},
			env: map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": "/etc/gcp/cred.json"}, identities: []string{"gcp/federation"}},
		{name: "gcp service account key is no workload identity", files: map[string]string{"/etc/gcp/key.json": `{"type": "service_account"}`},
			env: map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": "/etc/gcp/key.json"}},
		{name: "aks workload identity", files: with(map[string]string{aksTokenFile: "jwt"}), env: merge(k8sEnv, map[string]string{
			"AZURE_FEDERATED_TOKEN_FILE": aksTokenFile, "AZURE_CLIENT_ID": "c", "AZURE_TENANT_ID": "t"}),
			wantK8s: true, namespace: "llm", platforms: []string{"aks"}, identities: []string{"azure/aks_workload_identity"}},
		{name: "app service managed identity", env: map[string]string{"IDENTITY_ENDPOINT": "http://127.0.0.1:41/msi/token", "IDENTITY_HEADER": "h"},
			identities: []string{"azure/managed_identity"}},
		{name: "oke workload identity", files: sa, env: merge(k8sEnv, map[string]string{"OCI_RESOURCE_PRINCIPAL_VERSION": "2.2", "OCI_RESOURCE_PRINCIPAL_REGION": "us-ashburn-1"}),
			wantK8s: true, namespace: "llm", platforms: []string{"oke"}, identities: []string{"oci/oke_workload_identity"}},
		{name: "oci functions resource principal", env: map[string]string{"OCI_RESOURCE_PRINCIPAL_VERSION": "2.2", "OCI_RESOURCE_PRINCIPAL_RPST": "/rp/rpst"},
			identities: []string{"oci/resource_principal"}},
		{name: "iks trusted profile", files: with(map[string]string{iksCRTokenFile: "cr"}), env: k8sEnv,
			wantK8s: true, namespace: "llm", platforms: []string{"iks"}, identities: []string{"ibm/trusted_profile"}},
		{name: "half an irsa setup", env: map[string]string{"AWS_ROLE_ARN": "arn:aws:iam::1:role/r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Detect(context.Background(), Options{Root: pod(t, tt.files), Getenv: envOf(tt.env)})
			if (r.Kubernetes != nil) != tt.wantK8s {
				t.Fatalf("kubernetes = %+v, want %v", r.Kubernetes, tt.wantK8s)
			}
			if tt.wantK8s && r.Kubernetes.Namespace != tt.namespace {
				t.Errorf("namespace = %q, want %q", r.Kubernetes.Namespace, tt.namespace)
			}
			if !slices.Equal(r.Platforms, tt.platforms) {
				t.Errorf("platforms = %v, want %v", r.Platforms, tt.platforms)
			}
			if got := kinds(r); !slices.Equal(got, tt.identities) {
				t.Errorf("identities = %v, want %v", got, tt.identities)
			}
			if r.Probed {
				t.Error("probed without Probe")
			}
		})
	}
}

// metadataFake answers like one cloud's metadata service.
func metadataFake(t *testing.T, cloud string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch cloud {
		case GCP:
			w.Header().Set("Metadata-Flavor", "Google")
			if r.Header.Get("Metadata-Flavor") != "Google" {
				w.WriteHeader(http.StatusForbidden)
			}
		case AWS:
			if r.Method != http.MethodPut {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
			_, _ = w.Write([]byte("token"))
		case "slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func TestProbe(t *testing.T) {
	gce, ec2, slow := metadataFake(t, GCP), metadataFake(t, AWS), metadataFake(t, "slow")
	eps := DefaultEndpoints()
	point := func(cloudURL map[string]string) []Endpoint {
		var out []Endpoint
		for _, ep := range eps {
			if u, ok := cloudURL[ep.Cloud]; ok {
				ep.URL = u + "/probe"
				out = append(out, ep)
			}
		}
		return out
	}
	tests := []struct {
		name string
		eps  []Endpoint
		want []string
	}{
		{"gce answers as google", point(map[string]string{GCP: gce.URL, AWS: slow.URL}), []string{GCP}},
		{"ec2 answers imdsv2", point(map[string]string{AWS: ec2.URL, GCP: slow.URL}), []string{AWS}},
		{"gce server is not azure or oci", point(map[string]string{Azure: gce.URL, OCI: gce.URL, IBM: gce.URL}), nil},
		{"nothing answers in time", point(map[string]string{AWS: slow.URL, GCP: slow.URL, Azure: slow.URL}), nil},
		{"closed port", point(map[string]string{AWS: "http://127.0.0.1:1"}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			r := Detect(context.Background(), Options{Root: t.TempDir(), Getenv: envOf(nil), Probe: true, Endpoints: tt.eps, Timeout: time.Minute})
			if took := time.Since(start); took > time.Second {
				t.Fatalf("probing took %v: the 300 ms bound was not applied", took)
			}
			if !r.Probed || !slices.Equal(r.Metadata, tt.want) {
				t.Fatalf("metadata = %v (probed %v), want %v", r.Metadata, r.Probed, tt.want)
			}
			if !strings.Contains(r.String(), "ms") {
				t.Errorf("summary %q does not say how long probing took", r.String())
			}
		})
	}
}

func TestEnvForwardsOnlyTheCloudsVariables(t *testing.T) {
	env := envOf(map[string]string{"AWS_ROLE_ARN": "arn", "AWS_SECRET_ACCESS_KEY": "never", "AZURE_CLIENT_ID": "c", "OPENAI_API_KEY": "never"})
	if got := Env(AWS, env); !slices.Equal(got, []string{"AWS_ROLE_ARN=arn"}) {
		t.Fatalf("Env(aws) = %v", got)
	}
	if got := Env(Azure, env); !slices.Equal(got, []string{"AZURE_CLIENT_ID=c"}) {
		t.Fatalf("Env(azure) = %v", got)
	}
	if got := Env(CloudOf("nodeecho"), env); got != nil {
		t.Fatalf("Env of an unknown plugin type = %v", got)
	}
}

func TestPlatformsFromMetadata(t *testing.T) {
	ec2, gce := metadataFake(t, AWS), metadataFake(t, GCP)
	var eps []Endpoint
	for _, ep := range DefaultEndpoints() {
		switch ep.Cloud {
		case AWS:
			ep.URL = ec2.URL
		case GCP:
			ep.URL = gce.URL
		default:
			continue
		}
		eps = append(eps, ep)
	}
	root := pod(t, map[string]string{ServiceAccountDir + "/token": "jwt"})
	r := Detect(context.Background(), Options{Root: root, Getenv: envOf(nil), Probe: true, Endpoints: eps})
	// GKE shows only through its metadata server; EC2's alone is a
	// self-managed cluster, not EKS.
	if !slices.Equal(r.Platforms, []string{"gke"}) || !slices.Equal(r.Metadata, []string{AWS, GCP}) {
		t.Fatalf("platforms %v, metadata %v; want [gke], [aws gcp]", r.Platforms, r.Metadata)
	}
}
