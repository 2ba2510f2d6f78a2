// Package platform finds out where the host runs: in a Kubernetes pod or
// not, on which managed Kubernetes (EKS, GKE, AKS, OKE, IKS), and which
// cloud's metadata endpoint answers. It reads the markers platforms inject
// (environment variables and projected token files) and, when asked,
// probes the metadata endpoints concurrently with a short timeout. It
// imports no cloud SDK: the plugins resolve the identities themselves;
// the host only reports what it found (one log line at start, the admin
// detail of /readyz) and forwards the workload-identity environment of a
// cloud to the instances that ask for it (see Env).
package platform

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Clouds, as named in reports and by CloudOf.
const (
	AWS   = "aws"
	GCP   = "gcp"
	Azure = "azure"
	OCI   = "oci"
	IBM   = "ibm"
)

// Well-known paths inside a pod.
const (
	ServiceAccountDir   = "/var/run/secrets/kubernetes.io/serviceaccount"
	eksIRSATokenFile    = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
	eksPodIdentityFile  = "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"
	aksTokenFile        = "/var/run/secrets/azure/tokens/azure-identity-token"
	iksCRTokenFile      = "/var/run/secrets/tokens/vault-token"
	iksCRTokenFileNewer = "/var/run/secrets/tokens/sa-token"
)

// DefaultProbeTimeout bounds every metadata probe.
const DefaultProbeTimeout = 300 * time.Millisecond

// Endpoint is a cloud metadata endpoint and how to recognise its answer.
type Endpoint struct {
	Cloud string
	// Method, URL and Header make the probe request.
	Method string
	URL    string
	Header map[string]string
	// Recognise tells a real answer of this cloud from another cloud's
	// metadata service answering on the same link-local address.
	Recognise func(*http.Response) bool
}

// DefaultEndpoints are the link-local metadata services of each cloud,
// probed with the request each one requires (so that another cloud's
// service answering on 169.254.169.254 is not mistaken for it).
func DefaultEndpoints() []Endpoint {
	return []Endpoint{
		{Cloud: AWS, Method: http.MethodPut, URL: "http://169.254.169.254/latest/api/token",
			Header: map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"},
			Recognise: func(r *http.Response) bool {
				return r.StatusCode == http.StatusOK && r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") != ""
			}},
		{Cloud: GCP, Method: http.MethodGet, URL: "http://169.254.169.254/computeMetadata/v1/",
			Header:    map[string]string{"Metadata-Flavor": "Google"},
			Recognise: func(r *http.Response) bool { return r.Header.Get("Metadata-Flavor") == "Google" }},
		{Cloud: Azure, Method: http.MethodGet, URL: "http://169.254.169.254/metadata/instance?api-version=2021-02-01",
			Header: map[string]string{"Metadata": "true"},
			Recognise: func(r *http.Response) bool {
				return r.StatusCode == http.StatusOK && r.Header.Get("Metadata-Flavor") == "" && strings.Contains(r.Header.Get("Content-Type"), "json")
			}},
		{Cloud: OCI, Method: http.MethodGet, URL: "http://169.254.169.254/opc/v2/instance/",
			Header: map[string]string{"Authorization": "Bearer Oracle"},
			Recognise: func(r *http.Response) bool {
				return r.StatusCode == http.StatusOK && strings.Contains(r.Header.Get("Content-Type"), "json")
			}},
		{Cloud: IBM, Method: http.MethodPut, URL: "http://169.254.169.254/instance_identity/v1/token?version=2022-03-01",
			Header: map[string]string{"Metadata-Flavor": "ibm", "Content-Type": "application/json"},
			Recognise: func(r *http.Response) bool {
				return r.StatusCode == http.StatusOK && r.Header.Get("Metadata-Flavor") == "" && strings.Contains(r.Header.Get("Content-Type"), "json")
			}},
	}
}

// Options says where to look.
type Options struct {
	// Root is prefixed to every file path (a test's fake pod
	// filesystem); empty means "/".
	Root string
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
	// Probe enables the metadata probes.
	Probe bool
	// Endpoints replaces DefaultEndpoints.
	Endpoints []Endpoint
	// Timeout bounds each probe (DefaultProbeTimeout when 0; never more).
	Timeout time.Duration
}

// Kubernetes describes the pod the host runs in.
type Kubernetes struct {
	// APIServer is KUBERNETES_SERVICE_HOST:PORT, when set.
	APIServer string `json:"api_server,omitempty"`
	// Namespace is read from the service account's namespace file.
	Namespace string `json:"namespace,omitempty"`
	// ServiceAccountToken reports whether the pod has a mounted token.
	ServiceAccountToken bool `json:"service_account_token"`
}

// Identity is one workload identity the environment offers.
type Identity struct {
	Cloud string `json:"cloud"`
	// Kind names the mechanism: irsa, eks_pod_identity, gke_metadata,
	// federation, aks_workload_identity, managed_identity,
	// resource_principal, oke_workload_identity, trusted_profile,
	// instance_metadata.
	Kind string `json:"kind"`
	// Evidence names the variables or files it was found by (never
	// their values).
	Evidence []string `json:"evidence"`
}

// Report is what Detect found.
type Report struct {
	Kubernetes *Kubernetes `json:"kubernetes,omitempty"`
	// Platforms are the managed Kubernetes services recognised: eks,
	// gke, aks, oke, iks.
	Platforms  []string   `json:"platforms,omitempty"`
	Identities []Identity `json:"identities,omitempty"`
	// Metadata lists the clouds whose metadata endpoint answered.
	Metadata []string `json:"metadata,omitempty"`
	// Probed reports whether the metadata endpoints were asked, and
	// ProbeMillis how long that took.
	Probed      bool  `json:"probed"`
	ProbeMillis int64 `json:"probe_ms,omitempty"`
}

// String is the one-line summary the host logs at start.
func (r *Report) String() string {
	var parts []string
	if r.Kubernetes != nil {
		k := "kubernetes"
		if r.Kubernetes.Namespace != "" {
			k += " (namespace " + r.Kubernetes.Namespace + ")"
		}
		parts = append(parts, k)
	} else {
		parts = append(parts, "not in kubernetes")
	}
	if len(r.Platforms) > 0 {
		parts = append(parts, "platform "+strings.Join(r.Platforms, ","))
	}
	var ids []string
	for _, id := range r.Identities {
		ids = append(ids, id.Cloud+"/"+id.Kind)
	}
	if len(ids) > 0 {
		parts = append(parts, "identities "+strings.Join(ids, ","))
	}
	switch {
	case !r.Probed:
		parts = append(parts, "metadata not probed")
	case len(r.Metadata) == 0:
		parts = append(parts, fmt.Sprintf("no metadata endpoint answered in %d ms", r.ProbeMillis))
	default:
		parts = append(parts, fmt.Sprintf("metadata %s (%d ms)", strings.Join(r.Metadata, ","), r.ProbeMillis))
	}
	return strings.Join(parts, "; ")
}

// Has reports whether the report names platform or identity cloud.
func (r *Report) Has(cloud string) bool {
	return slices.ContainsFunc(r.Identities, func(i Identity) bool { return i.Cloud == cloud }) || slices.Contains(r.Metadata, cloud)
}

// Detect looks at the environment, the filesystem and, with o.Probe, the
// metadata endpoints. It never fails: what cannot be read is absent.
func Detect(ctx context.Context, o Options) *Report {
	d := detector{o: o}
	if d.o.Getenv == nil {
		d.o.Getenv = os.Getenv
	}
	r := &Report{}
	d.kubernetes(r)
	d.identities(r)
	if o.Probe {
		start := time.Now()
		r.Metadata = d.probe(ctx)
		r.Probed, r.ProbeMillis = true, time.Since(start).Milliseconds()
		for _, c := range r.Metadata {
			r.Identities = append(r.Identities, Identity{Cloud: c, Kind: "instance_metadata", Evidence: []string{"metadata endpoint"}})
		}
	}
	d.platforms(r)
	return r
}

type detector struct{ o Options }

func (d detector) path(p string) string {
	if d.o.Root == "" {
		return p
	}
	return filepath.Join(d.o.Root, p)
}

func (d detector) exists(p string) bool {
	_, err := os.Stat(d.path(p))
	return err == nil
}

func (d detector) env(k string) bool { return d.o.Getenv(k) != "" }

func (d detector) kubernetes(r *Report) {
	host := d.o.Getenv("KUBERNETES_SERVICE_HOST")
	token := d.exists(ServiceAccountDir + "/token")
	if host == "" && !token {
		return
	}
	k := &Kubernetes{ServiceAccountToken: token}
	if host != "" {
		k.APIServer = host
		if port := d.o.Getenv("KUBERNETES_SERVICE_PORT"); port != "" {
			k.APIServer += ":" + port
		}
	}
	if b, err := os.ReadFile(d.path(ServiceAccountDir + "/namespace")); err == nil && len(b) < 254 {
		k.Namespace = strings.TrimSpace(string(b))
	}
	r.Kubernetes = k
}

// identities recognises the markers each platform's identity webhook or
// agent injects.
func (d detector) identities(r *Report) {
	add := func(cloud, kind string, evidence ...string) {
		r.Identities = append(r.Identities, Identity{Cloud: cloud, Kind: kind, Evidence: evidence})
	}
	if d.env("AWS_WEB_IDENTITY_TOKEN_FILE") && d.env("AWS_ROLE_ARN") {
		add(AWS, "irsa", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")
	} else if d.exists(eksIRSATokenFile) {
		add(AWS, "irsa", eksIRSATokenFile)
	}
	if d.env("AWS_CONTAINER_CREDENTIALS_FULL_URI") && (d.env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") || d.exists(eksPodIdentityFile)) {
		add(AWS, "eks_pod_identity", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
	} else if d.env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") || d.env("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
		add(AWS, "container_credentials", "AWS_CONTAINER_CREDENTIALS_*_URI")
	}
	if d.env("GCE_METADATA_HOST") {
		add(GCP, "gke_metadata", "GCE_METADATA_HOST")
	}
	if p := d.o.Getenv("GOOGLE_APPLICATION_CREDENTIALS"); p != "" {
		if b, err := os.ReadFile(d.path(p)); err == nil && strings.Contains(string(b), `"external_account"`) {
			add(GCP, "federation", "GOOGLE_APPLICATION_CREDENTIALS")
		}
	}
	if d.env("AZURE_FEDERATED_TOKEN_FILE") && d.env("AZURE_CLIENT_ID") && d.env("AZURE_TENANT_ID") {
		add(Azure, "aks_workload_identity", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID", "AZURE_TENANT_ID")
	} else if d.exists(aksTokenFile) {
		add(Azure, "aks_workload_identity", aksTokenFile)
	}
	if d.env("IDENTITY_ENDPOINT") && d.env("IDENTITY_HEADER") {
		add(Azure, "managed_identity", "IDENTITY_ENDPOINT", "IDENTITY_HEADER")
	}
	if v := d.o.Getenv("OCI_RESOURCE_PRINCIPAL_VERSION"); v != "" {
		if d.env("KUBERNETES_SERVICE_HOST") && !d.env("OCI_RESOURCE_PRINCIPAL_RPST") {
			add(OCI, "oke_workload_identity", "OCI_RESOURCE_PRINCIPAL_VERSION", "KUBERNETES_SERVICE_HOST")
		} else {
			add(OCI, "resource_principal", "OCI_RESOURCE_PRINCIPAL_VERSION")
		}
	}
	for _, f := range []string{iksCRTokenFile, iksCRTokenFileNewer} {
		if d.exists(f) {
			add(IBM, "trusted_profile", f)
			break
		}
	}
}

// platforms names the managed Kubernetes service from the identities and
// metadata found, when the host runs in a pod.
func (d detector) platforms(r *Report) {
	if r.Kubernetes == nil {
		return
	}
	for _, p := range []struct{ name, cloud string }{{"eks", AWS}, {"gke", GCP}, {"aks", Azure}, {"oke", OCI}, {"iks", IBM}} {
		// An EC2 metadata service alone does not make EKS: many
		// self-managed clusters run on EC2. EKS injects its own markers.
		pod := slices.ContainsFunc(r.Identities, func(i Identity) bool { return i.Cloud == p.cloud && i.Kind != "instance_metadata" })
		if pod || (p.cloud != AWS && slices.Contains(r.Metadata, p.cloud)) {
			r.Platforms = append(r.Platforms, p.name)
		}
	}
}

// probe asks every endpoint at once and returns the clouds that answered
// as themselves, in the order of the endpoints.
func (d detector) probe(ctx context.Context) []string {
	eps := d.o.Endpoints
	if eps == nil {
		eps = DefaultEndpoints()
	}
	timeout := d.o.Timeout
	if timeout <= 0 || timeout > DefaultProbeTimeout {
		timeout = DefaultProbeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// No proxy: a metadata service is link-local, and a proxy must not see
	// these requests.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	found := make([]bool, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, ep.Method, ep.URL, nil)
			if err != nil {
				return
			}
			for k, v := range ep.Header {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			found[i] = ep.Recognise == nil || ep.Recognise(resp)
		})
	}
	wg.Wait()
	var out []string
	for i, ok := range found {
		if ok && !slices.Contains(out, eps[i].Cloud) {
			out = append(out, eps[i].Cloud)
		}
	}
	return out
}
