#!/usr/bin/env bash
# Regenerates Sources/CurvineProto/*.pb.swift from Protos/*.proto.
# Needs protoc (apt-get install protobuf-compiler) and protoc-gen-swift built from
# the same swift-protobuf version that Package.swift depends on (1.39.x):
#   git clone <swift-protobuf> sp && cd sp && git checkout 1.39.0 &&
#   swift build -c release --product protoc-gen-swift
# then pass its path in PROTOC_GEN_SWIFT. The output is committed so that a build
# never needs the plugin (building it takes minutes).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
plugin=${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift || true)}
if [ -z "$plugin" ] || [ ! -x "$plugin" ]; then
  echo "generate-protos: protoc-gen-swift not found; set PROTOC_GEN_SWIFT=/path/to/protoc-gen-swift" >&2
  exit 2
fi
command -v protoc >/dev/null || { echo "generate-protos: protoc not found; apt-get install protobuf-compiler" >&2; exit 2; }
out="$here/Sources/CurvineProto"
rm -f "$out"/*.pb.swift
protoc --plugin=protoc-gen-swift="$plugin" \
  --swift_opt=Visibility=Public \
  --swift_out="$out" -I "$here/Protos" "$here"/Protos/*.proto
echo "generated: $(ls "$out")"
