#!/usr/bin/env bash
# Regenerate python/silo/bench/_pb/ (Google protobuf messages for the bench's grpcio client) from
# proto/. Needs grpcio-tools (the test extra). Run from anywhere: bash python/silo/bench/regen.sh
#
# Why not the betterproto code in silo._proto: the load generator must spend < 1 µs per message,
# which the C (upb) protobuf runtime does and betterproto does not.
# Why a private descriptor pool: another module (or a test) may register the same `silo.v1`
# symbols in protobuf's default pool; our own pool keeps both importable in one process.
# Why flat module names (silo_pb2, admin_pb2): a generated `silo/v1/silo_pb2.py` would import as
# `silo.v1...` and clash with the `silo` package.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="$here/_pb"
python="${PYTHON:-python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cp "$root/proto/silo/v1/silo.proto" "$tmp/silo.proto"
cp "$root/proto/silo/admin/v1/admin.proto" "$tmp/admin.proto"
rm -f "$out"/silo_pb2.py* "$out"/admin_pb2.py*
"$python" -m grpc_tools.protoc -I "$tmp" --python_out="$out" --pyi_out="$out" \
    "$tmp/silo.proto" "$tmp/admin.proto"
for f in "$out/silo_pb2.py" "$out/admin_pb2.py"; do
    sed -i 's/^from google.protobuf import descriptor_pool as _descriptor_pool$/from silo.bench._pb._pool import POOL as _POOL/; s/_descriptor_pool\.Default()/_POOL/' "$f"
    grep -q '_POOL.AddSerializedFile' "$f" || { echo "regen.sh: pool rewrite failed in $f" >&2; exit 1; }
done
echo "regenerated $out"
