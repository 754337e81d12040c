#!/usr/bin/env bash
# Builds the Ory Hydra binary that internal/identity/hydratest runs in the
# interoperability tests, from the version pinned in tools/hydra/go.mod (a
# separate module, so Hydra's large dependency graph stays out of gatehouse's
# own go.mod). The binary is cached by version and only built when absent.
# Prints the binary's path on stdout; build output goes to stderr.
#
#   GATEHOUSE_CACHE  cache root (default $HOME/.cache/gatehouse)
set -euo pipefail

version=v2.3.0
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${GATEHOUSE_CACHE:-$HOME/.cache/gatehouse}
bin=$cache/bin/hydra-$version

if [[ -x $bin ]]; then
	echo "$bin"
	exit 0
fi

cd "$root/tools/hydra"
pinned=$(go list -m -f '{{.Version}}' github.com/ory/hydra/v2)
if [[ $pinned != "$version" ]]; then
	echo "build-hydra.sh: tools/hydra/go.mod pins $pinned, script expects $version" >&2
	exit 1
fi

mkdir -p "$cache/bin"
tmp=$(mktemp "$bin.XXXXXX")
trap 'rm -f "$tmp"' EXIT
# Hydra's in-memory database (DSN=memory) is SQLite through mattn/go-sqlite3,
# which needs cgo and the build tags Hydra's own Makefile uses.
echo "build-hydra.sh: building hydra $version (several minutes when cold)" >&2
start=$SECONDS
CGO_ENABLED=1 go build \
	-tags sqlite,sqlite_omit_load_extension \
	-trimpath \
	-ldflags "-s -w -X github.com/ory/hydra/v2/driver/config.Version=$version" \
	-o "$tmp" github.com/ory/hydra/v2
chmod 0755 "$tmp"
mv "$tmp" "$bin"
trap - EXIT
echo "build-hydra.sh: built in $((SECONDS - start))s" >&2
echo "$bin"
