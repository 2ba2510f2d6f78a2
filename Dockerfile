# syntax=docker/dockerfile:1
#
# llmproxy image: the host and every plugin, statically linked, on a
# distroless base, running as a non-root user.
#
#   docker build -t llmproxy:dev .
#   docker run --rm -p 8080:8080 -e LLMPROXY_LISTEN=0.0.0.0:8080 -e LLMPROXY_API_KEY=sk-... \
#     -v $PWD/config.hcl:/etc/llmproxy/llmproxy.hcl:ro llmproxy:dev
#
# deployments/dockerfile_test.go checks this file's rules (multi-stage,
# static binaries, non-root, distroless, pinned bases).

ARG GO_VERSION=1.26.8

# ---- build: every module on its own, as `make build` does ----
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath GOWORK=off
# Module downloads into a cache mount shared by later builds.
COPY . .
RUN --mount=type=cache,target=/root/go/pkg/mod \
    set -e; for m in sdk host plugins/*/; do if [ -f "$m/go.mod" ]; then (cd "$m" && go mod download); fi; done
ARG VERSION=dev
RUN --mount=type=cache,target=/root/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    set -e; \
    mkdir -p /out/plugins; \
    (cd host && go build -ldflags "-s -w -X main.Version=${VERSION}" -o /out/llmproxy ./cmd/llmproxy); \
    for d in plugins/provider-* plugins/storage-*; do \
      [ -f "$d/go.mod" ] || continue; \
      (cd "$d" && go build -ldflags "-s -w" -o "/out/plugins/llmproxy-$(basename "$d")" .); \
    done
# The image's own config: listen on every interface, plugins beside the
# host. Mount another over it (a ConfigMap in Kubernetes).
RUN mkdir -p /out/etc && /out/llmproxy -print-default-config > /out/etc/llmproxy.hcl

# ---- run ----
FROM gcr.io/distroless/static-debian12:nonroot AS run
COPY --from=build /out/llmproxy /opt/llmproxy/llmproxy
COPY --from=build /out/plugins/ /opt/llmproxy/plugins/
COPY --from=build /out/etc/llmproxy.hcl /etc/llmproxy/llmproxy.hcl
ENV LLMPROXY_CONFIG=/etc/llmproxy/llmproxy.hcl
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/opt/llmproxy/llmproxy"]
