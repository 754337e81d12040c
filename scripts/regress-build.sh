#!/usr/bin/env bash
# regress-build.sh — fetch Debian's source of the installed postgresql-15 and
# build its regression suite (pg_regress + regress.so), caching the built tree.
#
# The source comes from the machine's own apt sources (turned into deb-src in a
# temporary list), so the suite matches the installed server exactly and no
# registry host is hard-coded here.
#
# Usage: scripts/regress-build.sh            prints the cached tree's path
# Env:   GATEHOUSE_CACHE  cache root (default ~/.cache/gatehouse)
#        PG_PACKAGE       source package (default postgresql-15)
set -euo pipefail

pkg=${PG_PACKAGE:-postgresql-15}
cache=${GATEHOUSE_CACHE:-$HOME/.cache/gatehouse}
ver=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null) || {
	echo "regress-build: $pkg is not installed" >&2
	exit 1
}
tree=$cache/pg-regress-$ver
if [[ -x $tree/src/test/regress/pg_regress && -f $tree/src/test/regress/regress.so ]]; then
	echo "$tree"
	exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.pg-regress-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
log() { echo "regress-build: [$((SECONDS))s] $*" >&2; }

# A throwaway apt state: deb-src entries from the machine's own sources.
mkdir -p "$work/apt/lists/partial" "$work/src"
srcs=()
if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
	mkdir -p "$work/apt/parts.d"
	sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$work/apt/parts.d/src.sources"
	srcs=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/apt/parts.d")
elif [[ -f /etc/apt/sources.list ]]; then
	sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >"$work/apt/src.list"
	srcs=(-o "Dir::Etc::SourceList=$work/apt/src.list" -o "Dir::Etc::SourceParts=/dev/null")
else
	log "no apt sources found"
	exit 1
fi
O=("${srcs[@]}" -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache" -o "APT::Sandbox::User=root")
log "fetching $pkg=$ver source"
apt-get -qq "${O[@]}" update >&2
srcver=$ver
if ! (cd "$work/src" && apt-get -qq "${O[@]}" source --download-only "$pkg=$ver" >&2 2>"$work/fetch.err"); then
	# A mirror may list a security update's source without serving it yet.
	# The same major's suite is close enough: pg_regress compares each test
	# with its own expected output, and the gateway leg is judged against the
	# direct leg on the same server, not against the expected files alone.
	cat "$work/fetch.err" >&2
	srcver=""
	for v in $(apt-cache "${O[@]}" showsrc "$pkg" | sed -n 's/^Version: //p' | sort -rV | uniq); do
		[[ $v == "$ver" ]] && continue
		log "falling back to $pkg=$v"
		rm -f "$work/src"/*
		if (cd "$work/src" && apt-get -qq "${O[@]}" source --download-only "$pkg=$v" >&2); then
			srcver=$v
			break
		fi
	done
	[[ -n $srcver ]] || { log "no source of $pkg could be fetched"; exit 1; }
	log "WARNING: built the suite from $srcver, the installed server is $ver"
fi
upstream=${srcver%%-*}
upstream=${upstream#*:}

orig=$(ls "$work/src"/*.orig.tar.* 2>/dev/null | head -n1)
[[ -n $orig ]] || { log "no .orig tarball downloaded"; exit 1; }
log "unpacking $(basename "$orig")"
tar --no-same-owner -xf "$orig" -C "$work"
srcdir=$(find "$work" -maxdepth 1 -type d -name "postgresql-$upstream*" | head -n1)
[[ -n $srcdir ]] || { log "unpacked tree not found"; exit 1; }

log "configuring"
(cd "$srcdir" && ./configure --without-readline --without-icu --without-zlib >"$work/configure.log" 2>&1) || {
	tail -n 30 "$work/configure.log" >&2
	exit 1
}
log "building src/test/regress"
make -s -j"$(nproc)" -C "$srcdir/src/test/regress" >"$work/make.log" 2>&1 || {
	tail -n 40 "$work/make.log" >&2
	exit 1
}
echo "$srcver" >"$srcdir/.gatehouse-source-version"
rm -rf "$tree"
mv "$srcdir" "$tree"
log "built $tree"
echo "$tree"
