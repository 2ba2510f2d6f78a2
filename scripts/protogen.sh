#!/usr/bin/env bash
# protogen.sh regenerates the SDK's gRPC code from sdk/proto into OUT
# (default: sdk/proto itself). It needs protoc, protoc-gen-go and
# protoc-gen-go-grpc on PATH; scripts/install-tools.sh installs them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/sdk/proto}
export PATH="$(go env GOPATH)/bin:$PATH"
cd "$root/sdk/proto"
protos=$(find llmproxy -name '*.proto' | sort)
protoc -I . \
  --go_out="$out" --go_opt=paths=source_relative \
  --go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
  $protos
