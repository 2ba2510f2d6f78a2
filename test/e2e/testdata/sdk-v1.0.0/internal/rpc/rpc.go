// Package rpc holds what the provider and storage services share on the
// wire: the go-plugin handshake, gRPC options, error and schema
// conversion, and the common part of Serve.
package rpc

import (
	"context"
	"errors"
	"net/http"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/llmproxy/llmproxy/sdk/openai"
	pluginv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/plugin/v1"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// ProtocolVersion is the major version of the plugin protocol.
const ProtocolVersion = 1

// MaxMessageBytes bounds one gRPC message in either direction. Documents
// and images travel inside chat requests, so it is far above gRPC's 4 MiB
// default; object bodies are streamed in pieces well below it.
const MaxMessageBytes = 256 << 20

// Handshake is the go-plugin handshake every llmproxy plugin shares. The
// cookie only keeps a plugin binary from being run by hand by mistake; it
// is not a security measure.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "LLMPROXY_PLUGIN",
	MagicCookieValue: "d3c1c3b6-6f0c-4f52-9a53-llmproxy",
}

// DialOptions are the gRPC options the host dials plugins with.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(MaxMessageBytes),
			grpc.MaxCallSendMsgSize(MaxMessageBytes),
		),
		grpc.WithInitialWindowSize(4 << 20),
		grpc.WithInitialConnWindowSize(16 << 20),
		grpc.WithReadBufferSize(64 << 10),
		grpc.WithWriteBufferSize(64 << 10),
		grpc.WithSharedWriteBuffer(true),
	}
}

// ToStatus turns an error returned by plugin code into a gRPC status that
// carries an ErrorDetail. Plain errors become 502 upstream errors.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	var gs interface{ GRPCStatus() *status.Status }
	if errors.As(err, &gs) {
		return err
	}
	var e *openai.Error
	switch {
	case errors.As(err, &e):
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		e = openai.NewError(http.StatusGatewayTimeout, openai.TypeTimeout, "upstream_timeout", err.Error())
	default:
		e = openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_error", err.Error())
	}
	st := status.New(codeForHTTP(e.Status), e.Message)
	d := &pluginv1.ErrorDetail{
		HttpStatus:   int32(e.Status),
		Type:         e.Type,
		Code:         e.Code,
		Param:        e.Param,
		RetryAfterMs: e.RetryAfter.Milliseconds(),
	}
	if withDetail, derr := st.WithDetails(d); derr == nil {
		st = withDetail
	}
	return st.Err()
}

// FromStatus turns a gRPC error seen by the host into an *openai.Error.
// Transport failures (the plugin died or its connection broke) become
// 502 plugin_unavailable so that the router may fail over.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "plugin_unavailable", err.Error())
	}
	for _, d := range st.Details() {
		if ed, ok := d.(*pluginv1.ErrorDetail); ok {
			return &openai.Error{
				Status:     int(ed.HttpStatus),
				Message:    st.Message(),
				Type:       ed.Type,
				Code:       ed.Code,
				Param:      ed.Param,
				RetryAfter: time.Duration(ed.RetryAfterMs) * time.Millisecond,
			}
		}
	}
	switch st.Code() {
	case codes.Canceled:
		return context.Canceled
	case codes.DeadlineExceeded:
		return openai.NewError(http.StatusGatewayTimeout, openai.TypeTimeout, "plugin_timeout", st.Message())
	case codes.Unimplemented:
		return openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, "unsupported_operation",
			"this provider does not support the operation: "+st.Message())
	case codes.Unavailable:
		return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "plugin_unavailable",
			"the provider plugin is not reachable: "+st.Message())
	case codes.Internal:
		return openai.NewError(http.StatusInternalServerError, openai.TypeServer, "plugin_error", st.Message())
	}
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "plugin_error", st.Message())
}

func codeForHTTP(s int) codes.Code {
	switch s {
	case 400, 413, 422:
		return codes.InvalidArgument
	case 401:
		return codes.Unauthenticated
	case 403:
		return codes.PermissionDenied
	case 404:
		return codes.NotFound
	case 409:
		return codes.AlreadyExists
	case 412:
		return codes.FailedPrecondition
	case 416:
		return codes.OutOfRange
	case 429:
		return codes.ResourceExhausted
	case 499:
		return codes.Canceled
	case 501:
		return codes.Unimplemented
	case 503:
		return codes.Unavailable
	case 504:
		return codes.DeadlineExceeded
	}
	if s >= 500 {
		return codes.Internal
	}
	return codes.Unknown
}

// SchemaToProto converts a schema.Schema for the wire.
func SchemaToProto(s schema.Schema) *pluginv1.Schema {
	out := &pluginv1.Schema{}
	for _, a := range s.Attributes {
		out.Attributes = append(out.Attributes, &pluginv1.Attribute{
			Name: a.Name, Type: a.Type, Description: a.Description, Required: a.Required, Sensitive: a.Sensitive,
		})
	}
	for _, b := range s.Blocks {
		out.Blocks = append(out.Blocks, &pluginv1.Block{
			Name: b.Name, Nesting: string(b.Nesting), Schema: SchemaToProto(b.Schema), Description: b.Description,
		})
	}
	return out
}

// SchemaFromProto converts a wire schema back.
func SchemaFromProto(p *pluginv1.Schema) schema.Schema {
	var s schema.Schema
	if p == nil {
		return s
	}
	for _, a := range p.Attributes {
		s.Attributes = append(s.Attributes, schema.Attribute{
			Name: a.Name, Type: a.Type, Description: a.Description, Required: a.Required, Sensitive: a.Sensitive,
		})
	}
	for _, b := range p.Blocks {
		s.Blocks = append(s.Blocks, schema.Block{
			Name: b.Name, Nesting: schema.Nesting(b.Nesting), Schema: SchemaFromProto(b.Schema), Description: b.Description,
		})
	}
	return s
}

// CredentialsToProto converts credential specs for the wire.
func CredentialsToProto(cs []schema.Credential) []*pluginv1.Credential {
	out := make([]*pluginv1.Credential, 0, len(cs))
	for _, c := range cs {
		out = append(out, &pluginv1.Credential{Name: c.Name, Description: c.Description, Required: c.Required})
	}
	return out
}

// CredentialsFromProto converts wire credential specs back.
func CredentialsFromProto(ps []*pluginv1.Credential) []schema.Credential {
	out := make([]schema.Credential, 0, len(ps))
	for _, c := range ps {
		out = append(out, schema.Credential{Name: c.Name, Description: c.Description, Required: c.Required})
	}
	return out
}

// DiagnosticsToProto turns the error a plugin's Configure returned into
// wire diagnostics. A plain error becomes one diagnostic.
func DiagnosticsToProto(err error) []*pluginv1.Diagnostic {
	if err == nil {
		return nil
	}
	var ds schema.Diagnostics
	if !errors.As(err, &ds) {
		ds = schema.Diagnostics{{Summary: err.Error()}}
	}
	out := make([]*pluginv1.Diagnostic, 0, len(ds))
	for _, d := range ds {
		sev := pluginv1.Diagnostic_SEVERITY_ERROR
		if d.Warning {
			sev = pluginv1.Diagnostic_SEVERITY_WARNING
		}
		out = append(out, &pluginv1.Diagnostic{Severity: sev, Summary: d.Summary, Detail: d.Detail, AttributePath: d.Path})
	}
	return out
}

// DiagnosticsFromProto converts wire diagnostics back.
func DiagnosticsFromProto(ps []*pluginv1.Diagnostic) schema.Diagnostics {
	var out schema.Diagnostics
	for _, d := range ps {
		out = append(out, schema.Diagnostic{
			Warning: d.Severity == pluginv1.Diagnostic_SEVERITY_WARNING,
			Summary: d.Summary, Detail: d.Detail, Path: d.AttributePath,
		})
	}
	return out
}
