package main

import (
	"context"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/llmproxy/llmproxy/host/internal/auth"
	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/platform"
)

// Environment variables that relocate platform detection, so that a test
// (or an unusual node) can present a pod's filesystem and a metadata
// service elsewhere.
const (
	// envPlatformRoot is prefixed to the paths detection reads
	// (/var/run/secrets/...).
	envPlatformRoot = "LLMPROXY_PLATFORM_ROOT"
	// envPlatformMetadata replaces http://169.254.169.254 in every
	// metadata probe.
	envPlatformMetadata = "LLMPROXY_PLATFORM_METADATA_URL"
)

// linkLocalMetadata is the address every cloud's metadata service uses.
const linkLocalMetadata = "http://169.254.169.254"

// detectPlatform runs platform detection as server.platform asks and logs
// its one-line summary; nil when detection is off.
func detectPlatform(ctx context.Context, cfg *config.File, log hclog.Logger) *platform.Report {
	mode := cfg.Server.Platform
	if mode == config.PlatformOff {
		return nil
	}
	// Probing costs up to 300 ms at start and sends requests to a
	// link-local address: only when asked, or when an instance needs a
	// workload identity on a host that serves beyond this machine.
	probe := mode == config.PlatformProbe || (cfg.UsesWorkloadIdentity() && !auth.Loopback(cfg.Server.Listen))
	o := platform.Options{Root: os.Getenv(envPlatformRoot), Probe: probe}
	if base := strings.TrimRight(os.Getenv(envPlatformMetadata), "/"); base != "" {
		o.Endpoints = platform.DefaultEndpoints()
		for i := range o.Endpoints {
			o.Endpoints[i].URL = base + strings.TrimPrefix(o.Endpoints[i].URL, linkLocalMetadata)
		}
	}
	r := platform.Detect(ctx, o)
	log.Info("platform: "+r.String(), "kubernetes", r.Kubernetes != nil, "platforms", strings.Join(r.Platforms, ","),
		"metadata", strings.Join(r.Metadata, ","), "probed", r.Probed)
	if r.Probed {
		// Every place an identity can come from was looked at: say which
		// instance will find none.
		for _, list := range [][]config.Instance{cfg.Providers, cfg.Storage} {
			for i := range list {
				in := &list[i]
				cloud := platform.CloudOf(in.Type)
				if in.IsEnabled() && in.PlatformIdentity() && cloud != "" && !r.Has(cloud) {
					log.Warn("platform: no "+cloud+" workload identity here for this instance", "instance", in.Name, "type", in.Type)
				}
			}
		}
	}
	return r
}
