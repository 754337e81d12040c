#!/usr/bin/env bash
# start-gatehouse.sh — start bin/gatehouse (dev issuer) on free loopback ports in
# front of a server started by start-postgres.sh, and mint a client token.
#
# Usage:
#   scripts/start-gatehouse.sh [--bin PATH] [--connection NAME[=DATABASE]]...
#                              [--subject S] [--group G] [--policies FILE] DIR UPSTREAM_ENV
#   scripts/start-gatehouse.sh --stop DIR
#   scripts/start-gatehouse.sh --check [--bin PATH]   exit 0 if the binary can serve
#
# Connections default to one named "regression". Every connection points at
# the upstream from UPSTREAM_ENV (as its superuser; the password reaches
# gatehouse only through the environment, as env:GATEHOUSE_UPSTREAM_PASSWORD)
# and is open to group "testers". DIR/gatehouse.env holds client settings like
# pg.env: PGHOST/PGPORT of the gateway and PGPASSWORD=<token>; it is mode 0600
# and the token is never printed. GATEHOUSE_TOKEN_ARGS adds arguments to
# `gatehouse token` (e.g. a longer lifetime); GATEHOUSE_SERVE_ARGS adds
# arguments to `gatehouse serve` (e.g. --cpuprofile FILE); GATEHOUSE_AUDIT_YAML
# adds a line under audit: (e.g. "durability: off").
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/bin/gatehouse
conns=()
subject=regress
group=testers
policies=""
mode=start
while [[ $# -gt 0 ]]; do
	case $1 in
	--bin) bin=$2; shift 2 ;;
	--connection) conns+=("$2"); shift 2 ;;
	--subject) subject=$2; shift 2 ;;
	--group) group=$2; shift 2 ;;
	--policies) policies=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
	--stop) mode=stop; shift ;;
	--check) mode=check; shift ;;
	-h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "start-gatehouse: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done

# usable reports whether the binary exists and its serve command takes --config.
usable() { [[ -x $bin ]] && "$bin" serve --help 2>&1 | grep -q -- '--config'; }

case $mode in
check)
	usable
	exit
	;;
stop)
	dir=$(realpath -m "$1")
	if [[ -f $dir/gatehouse.pid ]]; then
		pid=$(cat "$dir/gatehouse.pid")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
		rm -f "$dir/gatehouse.pid"
	fi
	exit 0
	;;
esac

[[ $# -eq 2 ]] || { echo "usage: $0 [options] DIR UPSTREAM_ENV | --stop DIR | --check" >&2; exit 2; }
usable || { echo "start-gatehouse: $bin missing or 'serve --help' lacks --config (go build -o bin/gatehouse ./cmd/gatehouse)" >&2; exit 1; }
dir=$(realpath -m "$1")
upstream_env=$2
[[ ${#conns[@]} -gt 0 ]] || conns=(regression)
# shellcheck disable=SC1090
. "$upstream_env"
upstream_password=$PGPASSWORD

free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}
wait_port() { # port timeout_tenths
	for _ in $(seq 1 "$2"); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		kill -0 "$(cat "$dir/gatehouse.pid")" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

mkdir -p "$dir"
chmod 0700 "$dir"
(umask 077 && head -c 32 /dev/urandom | base64 >"$dir/secret.key")
(umask 077 && head -c 32 /dev/urandom | base64 >"$dir/audit-signing.key")

ok=0
for attempt in 1 2 3; do
	api=$(free_port)
	pgport=$(free_port)
	{
		echo "listen: { api: 127.0.0.1:$api, postgres: 127.0.0.1:$pgport }"
		echo "data_dir: $dir/data"
		echo "secret_key: file:$dir/secret.key"
		echo "audit:"
		echo "  signing_key: file:$dir/audit-signing.key"
		# GATEHOUSE_AUDIT_YAML: more audit keys, e.g. "durability: off".
		[[ -n ${GATEHOUSE_AUDIT_YAML:-} ]] && echo "  $GATEHOUSE_AUDIT_YAML"
		echo "identity: { dev_issuer: true }"
		echo 'admins: ["group:admins"]'
		[[ -n $policies ]] && echo "policies_file: $policies"
		echo "connections:"
		for c in "${conns[@]}"; do
			name=${c%%=*}
			db=${c#*=}
			echo "  - { name: $name, type: postgres, address: $PGHOST:$PGPORT, database: $db, username: $PGUSER, password: env:GATEHOUSE_UPSTREAM_PASSWORD, tls: disable, access: [\"group:$group\"] }"
		done
	} >"$dir/gatehouse.yaml"
	# setsid: the server outlives this script; --stop ends it by its pid.
	# shellcheck disable=SC2086
	GATEHOUSE_UPSTREAM_PASSWORD=$upstream_password PGPASSWORD="" \
		setsid "$bin" serve --config "$dir/gatehouse.yaml" ${GATEHOUSE_SERVE_ARGS:-} >>"$dir/gatehouse.log" 2>&1 </dev/null &
	echo $! >"$dir/gatehouse.pid"
	if wait_port "$pgport" 300 && wait_port "$api" 100; then
		ok=1
		break
	fi
	"$0" --stop "$dir"
	echo "start-gatehouse: attempt $attempt failed; log tail:" >&2
	tail -n 15 "$dir/gatehouse.log" >&2
done
[[ $ok -eq 1 ]] || exit 1

# shellcheck disable=SC2086
token=$("$bin" token --api "http://127.0.0.1:$api" --subject "$subject" --group "$group" ${GATEHOUSE_TOKEN_ARGS:-} 2>"$dir/token.err") || {
	cat "$dir/token.err" >&2
	"$0" --stop "$dir"
	exit 1
}
token=$(printf '%s' "$token" | tr -d '[:space:]')

umask 077
cat >"$dir/gatehouse.env" <<ENV
PGHOST=127.0.0.1
PGPORT=$pgport
PGUSER=$subject
PGPASSWORD=$token
PGDATABASE=${conns[0]%%=*}
PGSSLMODE=disable
GATEHOUSE_API=http://127.0.0.1:$api
export PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGSSLMODE GATEHOUSE_API
ENV
grep -v '^PGPASSWORD=' "$dir/gatehouse.env"
