#!/usr/bin/env bash
# Regenerate the protobuf/gRPC code under daemon/ from protos/ (the generated files are committed).
# With --check, generate into a temporary directory and fail if the committed files differ (drift).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PY:-$root/.venv/bin/python}
out=$root/daemon
if [[ ${1:-} == --check ]]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
export PATH="$(dirname "$py"):$PATH"
cd "$root/protos"
mapfile -t protos < <(find . -name '*.proto' | sed 's|^\./||' | sort)
"$py" -m grpc_tools.protoc -I. --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" "${protos[@]}"
if [[ ${1:-} == --check ]]; then
  status=0
  while IFS= read -r f; do
    rel=${f#"$out"/}
    if ! cmp -s "$f" "$root/daemon/$rel"; then
      echo "generated code drift: daemon/$rel differs from what protos/ generates; run scripts/gen_protos.sh"
      status=1
    fi
  done < <(find "$out" -type f \( -name '*_pb2*.py' -o -name '*_pb2*.pyi' \))
  [[ $status -eq 0 ]] && echo "generated code matches protos/"
  exit $status
fi
