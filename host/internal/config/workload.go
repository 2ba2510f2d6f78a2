package config

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Values of server.platform.
const (
	PlatformAuto  = "auto"
	PlatformProbe = "probe"
	PlatformOff   = "off"
)

// AuthWorkloadIdentity is the value of a plugin config's auth attribute
// that makes the plugin take its identity from the platform (IRSA, GKE
// metadata, AKS federated token, OKE workload identity …).
const AuthWorkloadIdentity = "workload_identity"

// platformAuth are the auth values whose identity the platform provides:
// workload_identity, and OCI's resource and instance principals.
var platformAuth = map[string]bool{AuthWorkloadIdentity: true, "resource_principal": true, "instance_principal": true}

// PlatformIdentity reports whether the instance takes its identity from
// the platform (auth = "workload_identity", or OCI's
// "resource_principal" / "instance_principal"): the host then forwards
// its cloud's identity variables to the plugin.
func (i *Instance) PlatformIdentity() bool { return platformAuth[i.Auth()] }

// Auth returns the string value of the auth attribute of the instance's
// config block, or "" when it has none or it is not a plain string. The
// host reads it before the plugin runs (to forward the platform's
// workload-identity environment); the plugin's own schema still decodes
// and validates the block.
func (i *Instance) Auth() string {
	if i.Config == nil || i.Config.Body == nil {
		return ""
	}
	content, _, diags := i.Config.Body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "auth"}}})
	if diags.HasErrors() || content.Attributes["auth"] == nil {
		return ""
	}
	v, diags := content.Attributes["auth"].Expr.Value(EvalContext(""))
	if diags.HasErrors() || !v.IsKnown() || v.IsNull() || v.Type() != cty.String {
		return ""
	}
	return v.AsString()
}

// UsesWorkloadIdentity reports whether any enabled provider or storage
// instance takes its identity from the platform.
func (f *File) UsesWorkloadIdentity() bool {
	for _, list := range [][]Instance{f.Providers, f.Storage} {
		for i := range list {
			if list[i].IsEnabled() && list[i].PlatformIdentity() {
				return true
			}
		}
	}
	return false
}
