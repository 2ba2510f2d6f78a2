package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	smithybearer "github.com/aws/smithy-go/auth/bearer"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/relay"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// Version is the bedrock plugin's version.
const Version = "0.1.0"

// signingService is the SigV4 service name of Bedrock's runtime and
// control-plane hosts.
const signingService = "bedrock"

// API values of the "api" config attribute.
const (
	apiConverse = "converse"
	apiInvoke   = "invoke"
)

// Values of the "auth" config attribute.
const (
	// authAuto uses the credentials when given, else the AWS default chain.
	authAuto = ""
	// authStatic requires the credentials (SigV4 keys or an API key).
	authStatic = "static"
	// authWorkloadIdentity takes the pod's or machine's identity: IRSA
	// web identity, EKS Pod Identity or the instance role (IMDSv2).
	authWorkloadIdentity = "workload_identity"
)

// Credential names the plugin asks the host for.
const (
	credAccessKeyID     = "access_key_id"
	credSecretAccessKey = "secret_access_key"
	credSessionToken    = "session_token"
	credAPIKey          = "api_key"
)

// Bedrock is the Amazon Bedrock Runtime provider. Its zero value is not
// usable before Configure; New returns one with a real clock.
type Bedrock struct {
	inst atomic.Pointer[instance]
	// now stamps responses; tests replace it for reproducible output.
	now func() time.Time
}

var (
	_ provider.Provider      = (*Bedrock)(nil)
	_ provider.Embedder      = (*Bedrock)(nil)
	_ provider.Passthrougher = (*Bedrock)(nil)
	_ provider.HealthChecker = (*Bedrock)(nil)
)

// New returns an unconfigured Bedrock provider.
func New() *Bedrock { return &Bedrock{now: time.Now} }

// settings is the decoded config block.
type settings struct {
	Region   string `json:"region"`
	Endpoint string `json:"endpoint"`
	Timeout  string `json:"timeout"`
	Profile  string `json:"profile"`
	API      string `json:"api"`
	Auth     string `json:"auth"`
}

// instance is one configuration of the provider: swapped as a whole on
// Configure so that requests in flight keep the one they started with.
type instance struct {
	settings
	timeout time.Duration
	// endpoint is the runtime base URL, without a trailing slash.
	endpoint string
	client   *bedrockruntime.Client
	// creds signs SigV4 requests; nil when an API key is used.
	creds aws.CredentialsProvider
	// apiKey is the Bedrock API key sent as a bearer token.
	apiKey string
	http   *http.Client
}

// Describe implements provider.Provider.
func (b *Bedrock) Describe(context.Context) (*provider.Description, error) {
	return &provider.Description{
		Name:         "bedrock",
		Version:      Version,
		Capabilities: []string{provider.CapDocuments},
		ConfigSchema: schema.Schema{Attributes: []schema.Attribute{
			{Name: "region", Type: "string", Required: true, Description: "AWS region of the Bedrock runtime, e.g. us-east-1; also the SigV4 signing region."},
			{Name: "endpoint", Type: "string", Description: "Override of the runtime endpoint URL (default https://bedrock-runtime.{region}.amazonaws.com)."},
			{Name: "timeout", Type: "string", Description: `Limit on one upstream call including its stream, a Go duration such as "5m"; empty means the request's own deadline.`},
			{Name: "profile", Type: "string", Description: "Shared-config profile used when no static credentials or API key are given."},
			{Name: "auth", Type: "string", Description: `"static" (the credentials below), "workload_identity" (IRSA web identity token, EKS Pod Identity or the EC2 instance role, through the AWS SDK inside the plugin) or unset (the credentials when given, else the AWS default chain).`},
			{Name: "api", Type: "string", Description: `"converse" (default) sends chat through Converse for every model; "invoke" sends it through InvokeModel in the Anthropic Messages format and only serves anthropic.* models.`},
		}},
		Credentials: []schema.Credential{
			{Name: credAccessKeyID, Description: "AWS access key id for static SigV4 credentials."},
			{Name: credSecretAccessKey, Description: "AWS secret access key paired with access_key_id."},
			{Name: credSessionToken, Description: "Session token of temporary credentials."},
			{Name: credAPIKey, Description: "Bedrock API key, sent as Authorization: Bearer instead of SigV4."},
		},
	}, nil
}

// Configure implements provider.Provider. It validates the config block and
// credentials, builds a runtime client for the instance's region and swaps it
// in atomically.
func (b *Bedrock) Configure(ctx context.Context, cfg *provider.Config) error {
	var s settings
	if err := cfg.Decode(&s); err != nil {
		return err
	}
	inst, err := newInstance(ctx, s, cfg.Credentials)
	if err != nil {
		return err
	}
	b.inst.Store(inst)
	return nil
}

func newInstance(ctx context.Context, s settings, creds map[string]string) (*instance, error) {
	var diags schema.Diagnostics
	s.Region = strings.TrimSpace(s.Region)
	if s.Region == "" {
		diags = append(diags, schema.Diagnostic{Summary: "region is required", Detail: "set the AWS region of the Bedrock runtime, e.g. us-east-1", Path: []string{"region"}})
	}
	inst := &instance{settings: s}
	if s.Endpoint != "" {
		u, err := url.Parse(s.Endpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			diags = append(diags, schema.Diagnostic{Summary: "endpoint must be an http(s) URL", Detail: fmt.Sprintf("%q is not a URL such as https://bedrock-runtime.us-east-1.amazonaws.com", s.Endpoint), Path: []string{"endpoint"}})
		}
		inst.endpoint = strings.TrimRight(s.Endpoint, "/")
	} else if s.Region != "" {
		inst.endpoint = "https://bedrock-runtime." + s.Region + ".amazonaws.com"
	}
	if s.Timeout != "" {
		d, err := time.ParseDuration(s.Timeout)
		if err != nil || d <= 0 {
			diags = append(diags, schema.Diagnostic{Summary: "timeout must be a positive duration", Detail: fmt.Sprintf("%q is not a duration such as \"5m\"", s.Timeout), Path: []string{"timeout"}})
		}
		inst.timeout = d
	}
	switch s.API {
	case "":
		inst.API = apiConverse
	case apiConverse, apiInvoke:
	default:
		diags = append(diags, schema.Diagnostic{Summary: `api must be "converse" or "invoke"`, Detail: fmt.Sprintf("got %q", s.API), Path: []string{"api"}})
	}
	keyID, secret, token, apiKey := creds[credAccessKeyID], creds[credSecretAccessKey], creds[credSessionToken], creds[credAPIKey]
	if (keyID == "") != (secret == "") {
		diags = append(diags, schema.Diagnostic{Summary: "access_key_id and secret_access_key go together", Detail: "give both credentials or neither"})
	}
	if apiKey != "" && keyID != "" {
		diags = append(diags, schema.Diagnostic{Summary: "api_key and access_key_id are exclusive", Detail: "give either a Bedrock API key or SigV4 credentials"})
	}
	if token != "" && keyID == "" {
		diags = append(diags, schema.Diagnostic{Summary: "session_token needs access_key_id and secret_access_key"})
	}
	switch s.Auth {
	case authAuto:
	case authStatic:
		if keyID == "" && apiKey == "" {
			diags = append(diags, schema.Diagnostic{Summary: `auth = "static" needs access_key_id and secret_access_key, or api_key`, Path: []string{"auth"}})
		}
	case authWorkloadIdentity:
		if keyID != "" || apiKey != "" {
			diags = append(diags, schema.Diagnostic{Summary: `auth = "workload_identity" takes no credentials`,
				Detail: "the identity comes from the environment (IRSA, EKS Pod Identity or the instance role); remove the credential blocks", Path: []string{"auth"}})
		}
		if s.Profile != "" {
			diags = append(diags, schema.Diagnostic{Summary: `auth = "workload_identity" ignores profile`, Path: []string{"profile"}})
		}
	default:
		diags = append(diags, schema.Diagnostic{Summary: `auth must be "static" or "workload_identity"`, Detail: fmt.Sprintf("got %q", s.Auth), Path: []string{"auth"}})
	}
	if diags.HasErrors() {
		return nil, diags
	}

	// relay.Transport reads each body whole before sending it, so only
	// the calls it leaves to net/http need bodyBuffer.
	lean := relay.NewTransport(0)
	lean.Fallback = bodyBuffer{next: lean.Fallback}
	inst.http = &http.Client{Transport: provider.Transport(lean)}
	var awsCfg aws.Config
	switch {
	case apiKey != "":
		inst.apiKey = apiKey
		awsCfg = aws.Config{Region: s.Region}
	case keyID != "":
		inst.creds = aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(keyID, secret, token))
		awsCfg = aws.Config{Region: s.Region, Credentials: inst.creds}
	case s.Auth == authWorkloadIdentity:
		c, err := workloadIdentityConfig(ctx, s.Region)
		if err != nil {
			return nil, schema.Diagnostics{{Summary: "cannot set up AWS workload identity", Detail: err.Error(), Path: []string{"auth"}}}
		}
		awsCfg = c
		inst.creds = c.Credentials
	default:
		opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(s.Region)}
		if s.Profile != "" {
			opts = append(opts, awsconfig.WithSharedConfigProfile(s.Profile))
		}
		c, err := awsconfig.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			return nil, schema.Diagnostics{{Summary: "cannot load the AWS default configuration", Detail: err.Error(), Path: []string{"profile"}}}
		}
		awsCfg = c
		inst.creds = c.Credentials
	}
	awsCfg.HTTPClient = inst.http
	// The host's router owns retries; an SDK retry would multiply them.
	awsCfg.Retryer = func() aws.Retryer { return aws.NopRetryer{} }
	inst.client = bedrockruntime.NewFromConfig(awsCfg, func(o *bedrockruntime.Options) {
		o.BaseEndpoint = aws.String(inst.endpoint)
		if inst.apiKey != "" {
			key := inst.apiKey
			o.BearerAuthTokenProvider = smithybearer.TokenProviderFunc(func(context.Context) (smithybearer.Token, error) {
				return smithybearer.Token{Value: key}, nil
			})
			o.BearerAuthSigner = bearerSigner{}
			o.AuthSchemePreference = []string{"httpBearerAuth"}
		} else if keyID != "" {
			// Static keys win over an AWS_BEARER_TOKEN_BEDROCK in the
			// environment.
			o.AuthSchemePreference = []string{"sigv4"}
		}
	})
	return inst, nil
}

// current returns the configured instance or a 503 when Configure has not
// succeeded yet.
func (b *Bedrock) current() (*instance, error) {
	inst := b.inst.Load()
	if inst == nil {
		return nil, openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "not_configured", "the bedrock provider instance is not configured")
	}
	return inst, nil
}

// withTimeout applies the instance's timeout to ctx.
func (inst *instance) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if inst.timeout > 0 {
		return context.WithTimeout(ctx, inst.timeout)
	}
	return context.WithCancel(ctx)
}

// Health implements provider.HealthChecker: the instance is healthy when it
// is configured and its credentials resolve.
func (b *Bedrock) Health(ctx context.Context) error {
	inst, err := b.current()
	if err != nil {
		return err
	}
	if inst.creds == nil {
		return nil
	}
	if _, err := inst.creds.Retrieve(ctx); err != nil {
		return fmt.Errorf("resolve AWS credentials: %w", err)
	}
	return nil
}

func (b *Bedrock) clock() time.Time {
	if b.now == nil {
		return time.Now()
	}
	return b.now()
}
