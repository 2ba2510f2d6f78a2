package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// Version is the plugin's version, reported by Describe.
const Version = "0.1.0"

const (
	defaultRegion      = "us-east-1"
	defaultPartSizeMiB = 8
	// minPartSize is S3's smallest part but the last.
	minPartSize = 5 << 20
	// maxParts is S3's largest number of parts in one upload.
	maxParts = 10000
)

// S3 is a storage plugin for Amazon S3 and S3-compatible services.
type S3 struct {
	state atomic.Pointer[state]
}

var (
	_ storage.Storage       = (*S3)(nil)
	_ storage.Presigner     = (*S3)(nil)
	_ storage.HealthChecker = (*S3)(nil)
)

// state is one configuration, swapped whole on Configure.
type state struct {
	client       *s3.Client
	presign      *s3.PresignClient
	partSize     int64
	healthBucket string
}

// config is the instance's config block.
type config struct {
	Region         string `json:"region"`
	Endpoint       string `json:"endpoint"`
	ForcePathStyle bool   `json:"force_path_style"`
	PartSizeMiB    int64  `json:"part_size_mib"`
	HealthBucket   string `json:"health_bucket"`
	Auth           string `json:"auth"`
}

// Values of the auth attribute.
const (
	authStatic           = "static"
	authWorkloadIdentity = "workload_identity"
)

// Describe returns the plugin's name, version, config schema and
// credentials.
func (p *S3) Describe(context.Context) (*storage.Description, error) {
	return &storage.Description{
		Name:         "s3",
		Version:      Version,
		Capabilities: []string{storage.CapRange},
		ConfigSchema: schema.Schema{Attributes: []schema.Attribute{
			{Name: "region", Type: "string", Description: "AWS region; defaults to the environment's, then us-east-1."},
			{Name: "endpoint", Type: "string", Description: "Custom endpoint URL of an S3-compatible service, e.g. http://127.0.0.1:7070."},
			{Name: "force_path_style", Type: "bool", Description: "Address buckets as path segments (endpoint/bucket/key) instead of host names."},
			{Name: "part_size_mib", Type: "number", Description: "Multipart part size in MiB (at least 5, default 8); uploads hold one part in memory."},
			{Name: "health_bucket", Type: "string", Description: "Bucket the health check probes with HeadBucket; without it the check lists buckets."},
			{Name: "auth", Type: "string", Description: `"static" (the access key credentials), "workload_identity" (IRSA web identity token, EKS Pod Identity or the EC2 instance role; no credentials) or unset (the credentials when given, else the AWS default chain).`},
		}},
		Credentials: []schema.Credential{
			{Name: "access_key_id", Description: "Static access key id; without it the AWS default credential chain is used."},
			{Name: "secret_access_key", Description: "Secret of the static access key."},
			{Name: "session_token", Description: "Session token of temporary static credentials."},
		},
	}, nil
}

// Configure builds the S3 client from the config block and credentials.
func (p *S3) Configure(ctx context.Context, cfg *storage.Config) error {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	var diags schema.Diagnostics
	if c.Endpoint != "" {
		if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			diags = append(diags, schema.Diagnostic{Summary: "endpoint must be an http or https URL", Detail: fmt.Sprintf("got %q", c.Endpoint), Path: []string{"endpoint"}})
		}
	}
	if c.PartSizeMiB == 0 {
		c.PartSizeMiB = defaultPartSizeMiB
	}
	if c.PartSizeMiB < minPartSize>>20 || c.PartSizeMiB > 5<<10 {
		diags = append(diags, schema.Diagnostic{Summary: "part_size_mib must be between 5 and 5120", Path: []string{"part_size_mib"}})
	}
	id, secret, token := cfg.Credentials["access_key_id"], cfg.Credentials["secret_access_key"], cfg.Credentials["session_token"]
	if (id == "") != (secret == "") {
		diags = append(diags, schema.Diagnostic{Summary: "access_key_id and secret_access_key go together", Detail: "Set both, or neither to use the default credential chain."})
	}
	switch c.Auth {
	case "":
	case authStatic:
		if id == "" {
			diags = append(diags, schema.Diagnostic{Summary: `auth = "static" needs access_key_id and secret_access_key`, Path: []string{"auth"}})
		}
	case authWorkloadIdentity:
		if id != "" {
			diags = append(diags, schema.Diagnostic{Summary: `auth = "workload_identity" takes no credentials`,
				Detail: "the identity comes from the environment (IRSA, EKS Pod Identity or the instance role); remove the credential blocks", Path: []string{"auth"}})
		}
		if os.Getenv("AWS_ACCESS_KEY_ID") != "" {
			diags = append(diags, schema.Diagnostic{Summary: `auth = "workload_identity" with AWS_ACCESS_KEY_ID in the plugin's environment`,
				Detail: "static keys are not a workload identity; do not pass them with inherit_env", Path: []string{"auth"}})
		}
	default:
		diags = append(diags, schema.Diagnostic{Summary: `auth must be "static" or "workload_identity"`, Detail: fmt.Sprintf("got %q", c.Auth), Path: []string{"auth"}})
	}
	if diags.HasErrors() {
		return diags
	}

	opts := []func(*awsconfig.LoadOptions) error{}
	if c.Auth == authWorkloadIdentity {
		// The SDK's chain without shared config files: IRSA web
		// identity, container credentials (EKS Pod Identity), then the
		// instance role over IMDSv2, each cached and refreshed ahead of
		// expiry by the SDK.
		opts = append(opts, awsconfig.WithSharedConfigFiles([]string{}), awsconfig.WithSharedCredentialsFiles([]string{}))
	}
	if c.Region != "" {
		opts = append(opts, awsconfig.WithRegion(c.Region))
	}
	if id != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(id, secret, token)))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return schema.Diagnostics{{Summary: "cannot load the AWS configuration", Detail: err.Error()}}
	}
	if awsCfg.Region == "" {
		awsCfg.Region = defaultRegion
	}
	// Checksums only where S3 requires them: S3-compatible services
	// differ in their support of the newer checksum headers.
	awsCfg.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	awsCfg.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		o.UsePathStyle = c.ForcePathStyle
	})
	p.state.Store(&state{
		client:       client,
		presign:      s3.NewPresignClient(client),
		partSize:     c.PartSizeMiB << 20,
		healthBucket: c.HealthBucket,
	})
	return nil
}

// current returns the configured state, or a 503 before Configure.
func (p *S3) current() (*state, error) {
	st := p.state.Load()
	if st == nil {
		return nil, errNotConfigured
	}
	return st, nil
}

// Health probes health_bucket with HeadBucket, or lists one bucket.
func (p *S3) Health(ctx context.Context) error {
	st, err := p.current()
	if err != nil {
		return err
	}
	if st.healthBucket != "" {
		_, err = st.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(st.healthBucket)})
	} else {
		_, err = st.client.ListBuckets(ctx, &s3.ListBucketsInput{MaxBuckets: aws.Int32(1)})
	}
	if err != nil {
		return fmt.Errorf("s3 health check: %w", mapError(err, st.healthBucket, ""))
	}
	return nil
}
