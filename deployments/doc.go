// Package deployments holds no code: its tests render the Kubernetes
// manifests (kustomize overlays under kubernetes/ and the Helm chart under
// helm/), check every object against the Kubernetes API types, check the
// rules that make a rollout safe (selectors, probes, grace periods, the
// canary's share), validate the HCL the ConfigMaps carry with the
// llmproxy binary, lint the Dockerfile, and run promtool on the alert
// rules. The module is separate so that the host does not depend on the
// Kubernetes libraries.
package deployments
