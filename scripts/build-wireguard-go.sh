#!/usr/bin/env bash
# Build bin/wireguard-go: the official userspace WireGuard (golang.zx2c4.com/wireguard) at a pinned
# version, for kernels without the wireguard module (the emulated gateways run it per interface).
#
# As for containerlab (scripts/docker-build-containerlab.sh): `go mod download` that exact
# version from the module proxy, copy the source, `go build` it with its own go.mod/go.sum.
# Nothing fetched is committed; the module cache keeps it between builds.
# Usage: build-wireguard-go.sh VERSION OUT   (skips when OUT already is that build)
set -euo pipefail

version=${1:?version, e.g. v0.0.0-20260522210424-ecfc5a8d5446}
out=${2:?output path, e.g. bin/wireguard-go}
module=golang.zx2c4.com/wireguard
stamp="$out.version"

if [ -x "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
    echo "wireguard-go $version already at $out"
    exit 0
fi
command -v go >/dev/null || { echo "go is missing: apt-get install golang-go (1.23 or later)" >&2; exit 1; }

info=$(go mod download -json "$module@$version")
src=$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
[ -d "$src" ] || { echo "go mod download gave no source dir for $module@$version" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/clabgen-wireguard-go.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -r "$src" "$work/src"
chmod -R u+w "$work/src"

start=$(date +%s)
mkdir -p "$(dirname "$out")"
go build -C "$work/src" -trimpath -o "$(realpath -m "$out")" -ldflags "-s -w" .
echo "$version" > "$stamp"
echo "built $out ($("$out" --version | head -1), $module@$version) in $(( $(date +%s) - start ))s"
