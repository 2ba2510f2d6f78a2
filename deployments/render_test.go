package deployments

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// objects is one rendered set of manifests, decoded into the API types.
type objects struct {
	deployments     []*appsv1.Deployment
	services        []*corev1.Service
	configMaps      []*corev1.ConfigMap
	serviceAccounts []*corev1.ServiceAccount
	pdbs            []*policyv1.PodDisruptionBudget
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	netpols         []*networkingv1.NetworkPolicy
	monitors        []*monitoringv1.ServiceMonitor
}

// decodeStrict decodes one YAML document into out, refusing fields the
// type does not have: a misspelt or misplaced field is an error here as
// it is for the API server's schema validation.
func decodeStrict(doc []byte, out any) error {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return fmt.Errorf("yaml: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	return nil
}

// parse splits a YAML stream into documents and decodes each by its
// apiVersion and kind; an unknown kind is an error.
func parse(t *testing.T, stream string) *objects {
	t.Helper()
	o := &objects{}
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(stream, -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, doc)
		}
		var (
			into any
			err  error
		)
		switch head.APIVersion + " " + head.Kind {
		case "apps/v1 Deployment":
			x := &appsv1.Deployment{}
			into, o.deployments = x, append(o.deployments, x)
		case "v1 Service":
			x := &corev1.Service{}
			into, o.services = x, append(o.services, x)
		case "v1 ConfigMap":
			x := &corev1.ConfigMap{}
			into, o.configMaps = x, append(o.configMaps, x)
		case "v1 ServiceAccount":
			x := &corev1.ServiceAccount{}
			into, o.serviceAccounts = x, append(o.serviceAccounts, x)
		case "policy/v1 PodDisruptionBudget":
			x := &policyv1.PodDisruptionBudget{}
			into, o.pdbs = x, append(o.pdbs, x)
		case "autoscaling/v2 HorizontalPodAutoscaler":
			x := &autoscalingv2.HorizontalPodAutoscaler{}
			into, o.hpas = x, append(o.hpas, x)
		case "networking.k8s.io/v1 NetworkPolicy":
			x := &networkingv1.NetworkPolicy{}
			into, o.netpols = x, append(o.netpols, x)
		case "monitoring.coreos.com/v1 ServiceMonitor":
			x := &monitoringv1.ServiceMonitor{}
			into, o.monitors = x, append(o.monitors, x)
		default:
			t.Fatalf("document %d: unexpected %s %s", i, head.APIVersion, head.Kind)
		}
		if err = decodeStrict([]byte(doc), into); err != nil {
			t.Fatalf("%s document %d: %v\n%s", head.Kind, i, err, doc)
		}
	}
	return o
}

// kustomize renders the kustomization in dir.
func kustomize(t *testing.T, dir string) string {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	b, err := m.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// helmTemplate renders the chart as `helm template` would, with values
// merged over the chart's defaults.
func helmTemplate(t *testing.T, values map[string]any) string {
	t.Helper()
	ch, err := loader.Load("helm/llmproxy")
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	if err := ch.Validate(); err != nil {
		t.Fatalf("chart: %v", err)
	}
	vals, err := chartutil.ToRenderValues(ch, values, chartutil.ReleaseOptions{
		Name: "llmproxy", Namespace: "llmproxy", Revision: 1, IsInstall: true,
	}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	var out strings.Builder
	for name, body := range files {
		if !strings.HasSuffix(name, ".yaml") || strings.TrimSpace(body) == "" {
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", name, body)
	}
	return out.String()
}

// subset reports whether every label of sel is in labels with the same
// value.
func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// rendering is one way of producing the manifests and what it must hold.
type rendering struct {
	name   string
	render func(t *testing.T) string
	// replicas: stable + canary replicas; canary: the canary's.
	replicas, canary int32
}

func renderings() []rendering {
	k := func(dir string) func(t *testing.T) string {
		return func(t *testing.T) string { return kustomize(t, dir) }
	}
	h := func(v map[string]any) func(t *testing.T) string {
		return func(t *testing.T) string { return helmTemplate(t, v) }
	}
	return []rendering{
		{name: "kustomize base", render: k("kubernetes/base"), replicas: 2},
		{name: "kustomize dev", render: k("kubernetes/dev"), replicas: 1},
		{name: "kustomize staging", render: k("kubernetes/staging"), replicas: 2},
		{name: "kustomize prod", render: k("kubernetes/prod"), replicas: 10, canary: 1},
		{name: "helm defaults", render: h(nil), replicas: 2},
		{name: "helm canary", render: h(map[string]any{
			"autoscaling": map[string]any{"minReplicas": 9, "maxReplicas": 30},
			"canary":      map[string]any{"enabled": true, "image": map[string]any{"tag": "1.1.0-rc.1"}},
		}), replicas: 10, canary: 1},
	}
}

// TestManifests renders every overlay and the chart, decodes every object
// strictly into its API type and checks how the objects fit together.
func TestManifests(t *testing.T) {
	for _, r := range renderings() {
		t.Run(r.name, func(t *testing.T) {
			o := parse(t, r.render(t))
			checkObjects(t, o, r)
		})
	}
}

func checkObjects(t *testing.T, o *objects, r rendering) {
	t.Helper()
	for kind, n := range map[string]int{
		"Deployment": len(o.deployments), "Service": len(o.services), "ConfigMap": len(o.configMaps),
		"ServiceAccount": len(o.serviceAccounts), "PodDisruptionBudget": len(o.pdbs),
		"HorizontalPodAutoscaler": len(o.hpas), "NetworkPolicy": len(o.netpols), "ServiceMonitor": len(o.monitors),
	} {
		if n == 0 {
			t.Errorf("no %s rendered", kind)
		}
	}
	if len(o.services) != 1 || len(o.configMaps) != 1 {
		t.Fatalf("want one Service and one ConfigMap, got %d and %d", len(o.services), len(o.configMaps))
	}
	svc, cm := o.services[0], o.configMaps[0]
	grace := configGrace(t, cm.Data["llmproxy.hcl"])
	var total, canary int32
	for _, d := range o.deployments {
		checkDeployment(t, d, o, grace)
		// Without replicas, the Deployment has what its HPA's minimum
		// gives it.
		n := int32(1)
		if d.Spec.Replicas != nil {
			n = *d.Spec.Replicas
		}
		for _, h := range o.hpas {
			if d.Spec.Replicas == nil && h.Spec.ScaleTargetRef.Name == d.Name && h.Spec.MinReplicas != nil {
				n = *h.Spec.MinReplicas
			}
		}
		pod := d.Spec.Template.Labels
		if !subset(svc.Spec.Selector, pod) {
			t.Errorf("Service selector %v does not select %s's pods %v", svc.Spec.Selector, d.Name, pod)
		}
		if _, ok := svc.Spec.Selector["track"]; ok {
			t.Errorf("the Service selects by track; stable and canary pods must share it")
		}
		for _, p := range o.pdbs {
			if !subset(p.Spec.Selector.MatchLabels, pod) {
				t.Errorf("PDB %s does not cover %s", p.Name, d.Name)
			}
		}
		for _, np := range o.netpols {
			if !subset(np.Spec.PodSelector.MatchLabels, pod) {
				t.Errorf("NetworkPolicy %s does not select %s's pods", np.Name, d.Name)
			}
		}
		total += n
		if pod["track"] == "canary" {
			canary += n
		}
	}
	if r.replicas > 0 && (total != r.replicas || canary != r.canary) {
		t.Errorf("replicas: %d in all, %d canary; want %d and %d", total, canary, r.replicas, r.canary)
	}
	if canary > 0 && float64(canary)/float64(total) != 0.1 {
		t.Errorf("the canary has %d of %d pods, not 10 %%", canary, total)
	}
	for _, h := range o.hpas {
		ref := h.Spec.ScaleTargetRef
		found := false
		for _, d := range o.deployments {
			if ref.Kind == "Deployment" && ref.Name == d.Name && d.Spec.Template.Labels["track"] == "stable" {
				found = true
			}
		}
		if !found {
			t.Errorf("HPA %s targets %s %s, which is not the stable Deployment", h.Name, ref.Kind, ref.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
			t.Errorf("HPA %s replicas %v..%d", h.Name, h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		if b := h.Spec.Behavior; b == nil || b.ScaleDown == nil || b.ScaleDown.StabilizationWindowSeconds == nil ||
			*b.ScaleDown.StabilizationWindowSeconds < 300 {
			t.Errorf("HPA %s scales down faster than streams end", h.Name)
		}
	}
	for _, m := range o.monitors {
		if !subset(m.Spec.Selector.MatchLabels, svc.Labels) {
			t.Errorf("ServiceMonitor %s selector %v does not match the Service's labels %v", m.Name, m.Spec.Selector.MatchLabels, svc.Labels)
		}
		if len(m.Spec.Endpoints) == 0 || m.Spec.Endpoints[0].Path != "/metrics" || m.Spec.Endpoints[0].Port != "http" {
			t.Errorf("ServiceMonitor %s does not scrape http /metrics: %+v", m.Name, m.Spec.Endpoints)
		}
	}
	if np := o.netpols; len(np) > 0 && len(np[0].Spec.Ingress) == 0 {
		t.Errorf("NetworkPolicy allows no ingress")
	}
}

func checkDeployment(t *testing.T, d *appsv1.Deployment, o *objects, grace time.Duration) {
	t.Helper()
	spec := d.Spec.Template.Spec
	if d.Spec.Selector == nil || !subset(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("%s: selector does not match its pod labels", d.Name)
	}
	for k := range d.Spec.Selector.MatchLabels {
		if k == "helm.sh/chart" || k == "app.kubernetes.io/version" {
			t.Errorf("%s: selector uses %s, which changes on upgrade", d.Name, k)
		}
	}
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("%s: a rolling update may take pods down before new ones are ready", d.Name)
	}
	if spec.TerminationGracePeriodSeconds == nil || time.Duration(*spec.TerminationGracePeriodSeconds)*time.Second <= grace {
		t.Errorf("%s: terminationGracePeriodSeconds %v does not cover drain_delay + shutdown_grace (%v)", d.Name,
			spec.TerminationGracePeriodSeconds, grace)
	}
	if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("%s: pod may run as root", d.Name)
	}
	found := false
	for _, sa := range o.serviceAccounts {
		found = found || sa.Name == spec.ServiceAccountName
	}
	if !found {
		t.Errorf("%s: service account %q is not rendered", d.Name, spec.ServiceAccountName)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: want one container, got %d", d.Name, len(spec.Containers))
	}
	c := spec.Containers[0]
	if strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") {
		t.Errorf("%s: image %q is not pinned to a version", d.Name, c.Image)
	}
	probe := func(name string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "http" {
			t.Errorf("%s: %s probe is not GET %s on the http port: %+v", d.Name, name, path, p)
		}
	}
	probe("liveness", c.LivenessProbe, "/healthz")
	probe("readiness", c.ReadinessProbe, "/readyz")
	probe("startup", c.StartupProbe, "/readyz")
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: resources need cpu and memory requests and a memory limit: %+v", d.Name, c.Resources)
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: container security context too loose", d.Name)
	}
	// The config is a mounted ConfigMap directory (not subPath, which
	// never sees updates), and the host reads it from there.
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	var cfgVol *corev1.Volume
	for i, v := range spec.Volumes {
		if v.ConfigMap != nil {
			cfgVol = &spec.Volumes[i]
		}
	}
	if cfgVol == nil || cfgVol.ConfigMap.Name != o.configMaps[0].Name {
		t.Fatalf("%s: no volume of ConfigMap %s", d.Name, o.configMaps[0].Name)
	}
	m, ok := mounts[cfgVol.Name]
	if !ok || m.SubPath != "" {
		t.Errorf("%s: the config volume is not mounted as a directory: %+v", d.Name, m)
	}
	if !contains(c.Args, "-config="+m.MountPath+"/llmproxy.hcl") {
		t.Errorf("%s: args %v do not read the mounted config at %s", d.Name, c.Args, m.MountPath)
	}
	secret := false
	for _, e := range c.EnvFrom {
		secret = secret || (e.SecretRef != nil && e.SecretRef.Name != "")
	}
	if !secret {
		t.Errorf("%s: no Secret reference for the keys", d.Name)
	}
	for _, e := range c.Env {
		if e.Value != "" && regexp.MustCompile(`(?i)key|secret|token`).MatchString(e.Name) {
			t.Errorf("%s: env %s holds a secret inline", d.Name, e.Name)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// configGrace reads drain_delay + shutdown_grace from the HCL.
func configGrace(t *testing.T, hcl string) time.Duration {
	t.Helper()
	var total time.Duration
	for _, name := range []string{"shutdown_grace", "drain_delay"} {
		m := regexp.MustCompile(name + `\s*=\s*"([^"]+)"`).FindStringSubmatch(hcl)
		if m == nil {
			t.Fatalf("the config sets no %s", name)
		}
		d, err := time.ParseDuration(m[1])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		total += d
	}
	return total
}

// binDir is where `make build` put llmproxy and its plugins.
func binDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("LLMPROXY_BIN")
	if dir == "" {
		dir = "../bin"
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(abs, "llmproxy")); err != nil {
		t.Fatalf("llmproxy not found in %s: run `make build` first (or set LLMPROXY_BIN)", abs)
	}
	return abs
}

// TestConfigMapValidates runs `llmproxy validate -require-plugins` on the
// HCL of every rendered ConfigMap, with the environment its Secret would
// give, and checks that the chart ships the same file as the base.
func TestConfigMapValidates(t *testing.T) {
	bin := binDir(t)
	base, err := os.ReadFile("kubernetes/base/llmproxy.hcl")
	if err != nil {
		t.Fatal(err)
	}
	chart, err := os.ReadFile("helm/llmproxy/files/llmproxy.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(base, chart) {
		t.Errorf("helm/llmproxy/files/llmproxy.hcl differs from kubernetes/base/llmproxy.hcl")
	}
	for _, r := range renderings() {
		t.Run(r.name, func(t *testing.T) {
			o := parse(t, r.render(t))
			hcl := o.configMaps[0].Data["llmproxy.hcl"]
			if strings.TrimSpace(hcl) != strings.TrimSpace(string(base)) {
				t.Errorf("the rendered ConfigMap differs from kubernetes/base/llmproxy.hcl")
			}
			path := filepath.Join(t.TempDir(), "llmproxy.hcl")
			if err := os.WriteFile(path, []byte(hcl), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(filepath.Join(bin, "llmproxy"), "validate", "-require-plugins",
				"-config", path, "-plugins-dir", filepath.Join(bin, "plugins"))
			cmd.Env = append(os.Environ(),
				"LLMPROXY_API_KEY_SHA256=2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b",
				"LLMPROXY_ADMIN_KEY_SHA256=a1fce4363854ff888cff4b8e7875d600c2682390412a8cf79b37d0b11148b0fa",
				"LLMPROXY_PAGE_TOKEN_SECRET=page-token-secret-of-32-bytes-00")
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "config is valid") {
				t.Errorf("llmproxy validate: %v\n%s", err, out)
			}
		})
	}
}

// TestStrictDecodeRefuses shows that the schema check catches what the
// API server would refuse.
func TestStrictDecodeRefuses(t *testing.T) {
	tests := []struct{ name, doc string }{
		{"misspelt field", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n"},
		{"misplaced field", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports:\n    - port: 80\n      path: /\n"},
		{"wrong type", "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: x}\nspec:\n  maxReplicas: ten\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var into any
			switch {
			case strings.Contains(tt.doc, "Deployment"):
				into = &appsv1.Deployment{}
			case strings.Contains(tt.doc, "Service"):
				into = &corev1.Service{}
			default:
				into = &autoscalingv2.HorizontalPodAutoscaler{}
			}
			if err := decodeStrict([]byte(tt.doc), into); err == nil {
				t.Errorf("accepted:\n%s", tt.doc)
			}
		})
	}
}

// TestHelmRefusesBadValues renders the chart with values its schema or
// templates refuse.
func TestHelmRefusesBadValues(t *testing.T) {
	ch, err := loader.Load("helm/llmproxy")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		values map[string]any
	}{
		{"replicas not a number", map[string]any{"replicaCount": "two"}},
		{"unknown value", map[string]any{"replicas": 2}},
		{"no secret", map[string]any{"secrets": map[string]any{"existingSecret": ""}}},
		{"canary without its image", map[string]any{"canary": map[string]any{"enabled": true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vals, err := chartutil.ToRenderValues(ch, tt.values, chartutil.ReleaseOptions{Name: "llmproxy", Namespace: "x"},
				chartutil.DefaultCapabilities)
			if err == nil {
				_, err = engine.Render(ch, vals)
			}
			if err == nil {
				t.Errorf("rendered with %v", tt.values)
			}
		})
	}
}
