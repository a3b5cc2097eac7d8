#!/usr/bin/env bash
# Build the service image and solve one puzzle with it, using whichever container engine is
# present (docker, else podman). Usage: deploy/smoke.sh [IMAGE_TAG]
# Exits 0 only when the container answers /readyz and returns a verified solution.
set -euo pipefail
cd "$(dirname "$0")/.."

tag="${1:-trm-serve:smoke}"
engine="$(command -v docker || command -v podman || true)"
if [ -z "$engine" ]; then
    echo "smoke: neither docker nor podman is installed" >&2
    exit 2
fi
build_args=()
# podman builds OCI images by default, which drop HEALTHCHECK; docker format keeps it.
if [ "$(basename "$engine")" = podman ]; then
    build_args+=(--format docker)
fi

echo "smoke: building $tag with $engine"
"$engine" build "${build_args[@]}" -t "$tag" .

name="trm-smoke-$$"
port="${SMOKE_PORT:-18000}"
"$engine" run -d --rm --name "$name" -p "127.0.0.1:${port}:8000" -e TRM_MAX_BATCH_SIZE=4 "$tag" \
    >/dev/null
trap '"$engine" stop -t 5 "$name" >/dev/null 2>&1 || true' EXIT

for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:${port}/readyz" >/dev/null 2>&1; then
        break
    fi
    sleep 1
done
curl -fsS "http://127.0.0.1:${port}/readyz" >/dev/null

puzzle="..3.2.6..9..3.5..1..18.64....81.29..7.......8..67.82....26.95..8..2.3..9..5.1.3.."
answer="$(curl -fsS "http://127.0.0.1:${port}/v1/solve/sudoku" \
    -H 'content-type: application/json' -d "{\"puzzle\": \"${puzzle}\"}")"
echo "$answer"
case "$answer" in
    *'"status":"solved"'*|*'"status": "solved"'*) echo "smoke: solved and verified" ;;
    *) echo "smoke: the container did not return a verified solution" >&2; exit 1 ;;
esac
