package secrets

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
	pluginv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/plugin/v1"
	secretsv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/secrets/v1"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// server adapts a Store to the generated gRPC service.
type server struct {
	secretsv1.UnimplementedSecretsServer
	impl Store
}

func (s *server) Describe(ctx context.Context, _ *secretsv1.DescribeRequest) (*secretsv1.DescribeResponse, error) {
	d, err := s.impl.Describe(ctx)
	if err != nil {
		return nil, rpc.ToStatus(err)
	}
	refs := rpc.SchemaToProto(schema.Schema{Attributes: d.References})
	return &secretsv1.DescribeResponse{
		Name:                d.Name,
		Version:             d.Version,
		Capabilities:        capabilities(s.impl, d.Capabilities),
		ConfigSchema:        rpc.SchemaToProto(d.ConfigSchema),
		Credentials:         rpc.CredentialsToProto(d.Credentials),
		ReferenceAttributes: refs.Attributes,
	}, nil
}

// capabilities adds the capabilities implied by the implemented
// interfaces to the declared ones.
func capabilities(s Store, declared []string) []string {
	has := map[string]bool{}
	out := []string{}
	add := func(c string) {
		if !has[c] {
			has[c] = true
			out = append(out, c)
		}
	}
	if _, ok := s.(Renewer); ok {
		add(CapRenew)
	}
	if _, ok := s.(Revoker); ok {
		add(CapRevoke)
	}
	if _, ok := s.(HealthChecker); ok {
		add(CapHealth)
	}
	if _, ok := s.(Watcher); ok {
		add(CapWatch)
	}
	for _, c := range declared {
		add(c)
	}
	return out
}

func (s *server) Configure(ctx context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	err := s.impl.Configure(ctx, &Config{
		Instance:    req.Instance,
		JSON:        req.ConfigJson,
		Credentials: req.Credentials,
		Settings:    req.Settings,
	})
	return &pluginv1.ConfigureResponse{Diagnostics: rpc.DiagnosticsToProto(err)}, nil
}

func (s *server) Resolve(ctx context.Context, req *secretsv1.ResolveRequest) (*secretsv1.ResolveResponse, error) {
	sec, err := s.impl.Resolve(ctx, Reference(req.Reference))
	return secretToProto(sec, err)
}

func (s *server) Renew(ctx context.Context, req *secretsv1.RenewRequest) (*secretsv1.ResolveResponse, error) {
	r, ok := s.impl.(Renewer)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this store does not renew leases")
	}
	sec, err := r.Renew(ctx, req.LeaseId, time.Duration(req.IncrementSeconds)*time.Second)
	return secretToProto(sec, err)
}

func (s *server) Revoke(ctx context.Context, req *secretsv1.RevokeRequest) (*secretsv1.RevokeResponse, error) {
	r, ok := s.impl.(Revoker)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this store does not revoke leases")
	}
	if err := r.Revoke(ctx, req.LeaseId); err != nil {
		return nil, toStatus(err)
	}
	return &secretsv1.RevokeResponse{}, nil
}

func (s *server) Watch(req *secretsv1.WatchRequest, stream grpc.ServerStreamingServer[secretsv1.WatchEvent]) error {
	w, ok := s.impl.(Watcher)
	if !ok {
		return status.Error(codes.Unimplemented, "this store does not watch")
	}
	ctx := stream.Context()
	var sendErr error
	err := w.Watch(ctx, Reference(req.Reference), func(version string) {
		if sendErr == nil {
			sendErr = stream.Send(&secretsv1.WatchEvent{Version: version})
		}
	})
	switch {
	case ctx.Err() != nil:
		return nil
	case err != nil:
		return toStatus(err)
	case sendErr != nil:
		return sendErr
	}
	return status.Error(codes.Aborted, "the store ended the watch")
}

func (s *server) Health(ctx context.Context, _ *pluginv1.HealthRequest) (*pluginv1.HealthResponse, error) {
	h, ok := s.impl.(HealthChecker)
	if !ok {
		return &pluginv1.HealthResponse{Ok: true}, nil
	}
	if err := rpc.CheckHealth(ctx, h.Health); err != nil {
		return &pluginv1.HealthResponse{Ok: false, Message: err.Error()}, nil
	}
	return &pluginv1.HealthResponse{Ok: true}, nil
}

func secretToProto(sec *Secret, err error) (*secretsv1.ResolveResponse, error) {
	if err != nil {
		return nil, toStatus(err)
	}
	if sec == nil {
		return nil, status.Error(codes.Internal, "the store returned no secret and no error")
	}
	out := &secretsv1.ResolveResponse{Values: sec.Values, Version: sec.Version, LeaseId: sec.LeaseID, Renewable: sec.Renewable}
	if !sec.Expires.IsZero() {
		out.ExpiresUnixNano = sec.Expires.UnixNano()
	}
	if !sec.RefreshAfter.IsZero() {
		out.RefreshAfterUnixNano = sec.RefreshAfter.UnixNano()
	}
	return out, nil
}

// toStatus keeps "unavailable" apart from every other failure: it travels
// as NOT_FOUND.
func toStatus(err error) error {
	if errors.Is(err, ErrUnavailable) {
		return status.Error(codes.NotFound, err.Error())
	}
	return rpc.ToStatus(err)
}
