#!/usr/bin/env bash
# Build bin/containerlab: upstream containerlab at a pinned release plus a small clabgen patch.
#
# Why not `go install github.com/srl-labs/containerlab@vX`: (1) the module proxy here answers
# 403 for .../@v/list, which `go install pkg@version` reads to check deprecation; (2) the
# module's go.mod has replace directives, which `go install pkg@version` refuses. Instead:
# `go mod download` that exact version (its .info/.zip are served), copy the source, patch,
# and `go build` inside it with its own go.mod/go.sum.
#
# Why the patch (docs/containerlab.md has the details):
#   * this kernel has no module support, so /proc/modules is missing and 0.69.3's deploy
#     stops with "open /proc/modules: no such file or directory";
#   * 0.69.3 makes every node --privileged, which fails here (the sandbox withholds
#     CAP_SYS_RESOURCE); the patch adds per-node `privileged:` and `security-opts:` with the
#     YAML names later upstream releases use, so topologies stay valid for them.
# Usage: docker-build-containerlab.sh VERSION OUT   (skips when OUT already is that build)
set -euo pipefail
export CLAB_VERSION_CHECK=disable   # every containerlab command would HEAD github.com otherwise

version=${1:?version, e.g. 0.69.3}
out=${2:?output path, e.g. bin/containerlab}
module=github.com/srl-labs/containerlab
patch_rev=clabgen.1
full="$version+$patch_rev"

if [ -x "$out" ] && "$out" version 2>/dev/null | grep -q "version: $full\$"; then
    echo "containerlab $full already at $out"
    exit 0
fi

info=$(go mod download -json "$module@v$version")
field() { printf '%s' "$info" | python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
src=$(field '["Dir"]')
commit=$(field '.get("Origin", {}).get("Hash", "")[:7]')
[ -d "$src" ] || { echo "go mod download gave no source dir for $module@v$version" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/clabgen-containerlab.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -r "$src" "$work/src"
chmod -R u+w "$work/src"
patch_file="$(cd "$(dirname "$0")/.." && pwd)/images/containerlab/$version.patch"
if [ ! -f "$patch_file" ]; then
    echo "no clabgen patch for containerlab $version ($patch_file)" >&2; exit 1
fi
(cd "$work/src" && patch -p1 --quiet --forward < "$patch_file")

start=$(date +%s)
mkdir -p "$(dirname "$out")"
go build -C "$work/src" -trimpath -o "$(realpath -m "$out")" -ldflags "-s -w \
    -X $module/cmd/version.Version=$full -X $module/cmd/version.commit=$commit" .
echo "built $out (containerlab $full, upstream $commit) in $(( $(date +%s) - start ))s"
